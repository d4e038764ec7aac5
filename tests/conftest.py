"""What every test shares: under pytest-xdist, the machine (tests/support/machine.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.machine import machine_share


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `load` tests first: they hold the machine alone early, before the long integration tests
    (which wait on hooks and hold it shared) begin."""
    items.sort(key=lambda item: item.get_closest_marker("load") is None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Around a test's whole protocol, so that the module and session fixtures its setup starts (a
    worker's deploy, a module's own stack) share the machine too."""
    with machine_share(exclusive=item.get_closest_marker("load") is not None):
        yield
