"""What every test shares: under pytest-xdist, the machine (tests/support/machine.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.machine import machine_share

INTEGRATION = Path(__file__).resolve().parent / "integration"


def _uses_an_emulator(item: pytest.Item) -> bool:
    return INTEGRATION in item.path.parents


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `load` tests first: they hold the machine alone early, before the long integration tests
    (which wait on hooks and hold it shared) begin. The unit tests next, so that the other workers run
    them while a load test holds the machine."""
    items.sort(key=lambda item: (item.get_closest_marker("load") is None, _uses_an_emulator(item)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Around a test's whole protocol, so that the module and session fixtures its setup starts (a
    worker's deploy, a module's own stack) share the machine too. A unit test starts no emulator and
    takes no share: measured during a load test, the emulator leaves most of the two cores idle (it
    serves the local stage's 2 requests per second), and the unit tests use them."""
    if not _uses_an_emulator(item):
        yield
        return
    with machine_share(exclusive=item.get_closest_marker("load") is not None):
        yield
