"""What every test shares: under pytest-xdist, the machine (tests/support/machine.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.machine import machine_share


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The `load` tests first: they hold the machine alone early, before the long integration tests
    (which wait on hooks and hold it shared) begin."""
    items.sort(key=lambda item: item.get_closest_marker("load") is None)


@pytest.fixture(autouse=True)
def _machine_share(request: pytest.FixtureRequest) -> Iterator[None]:
    with machine_share(exclusive=request.node.get_closest_marker("load") is not None):
        yield
