"""What every test shares: under pytest-xdist, the machine (tests/support/machine.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.machine import is_load, machine_share, order_for_workers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The run's order for the workers (tests/support/machine.py, `order_for_workers`)."""
    items[:] = order_for_workers(items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Around a test's whole protocol, so that the module and session fixtures its setup starts (a
    worker's deploy, a module's own stack) wait for the load tests too."""
    with machine_share(exclusive=is_load(item), load_tests=item.session.stash[LOAD_TESTS]):
        yield


LOAD_TESTS = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """How many load tests this run holds, once `-k`, `-m` and the like have chosen its tests."""
    session.stash[LOAD_TESTS] = sum(1 for item in session.items if is_load(item))
