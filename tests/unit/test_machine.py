"""Under pytest-xdist the load tests have the machine to themselves (tests/support/machine.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support import machine


@pytest.fixture(autouse=True)
def own_lock_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine, "MACHINE_LOCK", tmp_path / "machine.lock")
    monkeypatch.setattr(machine, "LOAD_DONE", tmp_path / "machine.load-done")
    monkeypatch.setenv("PYTEST_XDIST_TESTRUNUID", "this-run")


def test_a_test_starts_only_once_every_load_test_of_its_run_has_finished() -> None:
    events: list[str] = []

    def other_test() -> None:
        with machine.machine_share(exclusive=False, load_tests=2):
            events.append("other test")

    waiting = threading.Thread(target=other_test, daemon=True)  # a hang fails the assertion, not the run
    waiting.start()
    for name in ("first load test", "second load test"):
        time.sleep(0.7)  # longer than the waiting test's poll: it had its chance to start
        with machine.machine_share(exclusive=True, load_tests=2):
            events.append(name)
    waiting.join(timeout=5)
    assert events == ["first load test", "second load test", "other test"]


def test_load_tests_of_an_earlier_run_do_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    machine.LOAD_DONE.write_text("an-earlier-run\nan-earlier-run\n")
    monkeypatch.setattr(machine, "LOAD_WAIT_LIMIT_SECONDS", 0.2)
    with (
        pytest.raises(TimeoutError, match="the 1 load tests did not finish"),
        machine.machine_share(exclusive=False, load_tests=1),
    ):
        pass


def test_a_run_without_load_tests_waits_for_nothing() -> None:
    with machine.machine_share(exclusive=False, load_tests=0):
        pass
    assert not machine.LOAD_DONE.exists()


def test_without_xdist_nothing_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID")
    with machine.machine_share(exclusive=False, load_tests=5):
        pass


class Item:
    """A test as ordering sees it: its module and its markers."""

    def __init__(self, name: str, module: str, *, load: bool = False, long: float | None = None) -> None:
        self.name, self.module = name, module
        self.markers = {"load": pytest.mark.load.mark} if load else {}
        if long is not None:
            self.markers["long"] = pytest.mark.long(minutes=long).mark

    def get_closest_marker(self, name: str) -> object | None:
        return self.markers.get(name)

    def __repr__(self) -> str:
        return self.name


def names(items: list[Item]) -> list[str]:
    return [item.name for item in items]


def test_load_tests_come_first_then_the_longest_test() -> None:
    items = [
        Item("a1", "a"),
        Item("readme", "r", long=3),
        Item("a2", "a"),
        Item("load", "l", load=True),
        Item("hook", "h", long=0.5),
    ]
    # one module among the rest: both long tests go before it, the longer first
    assert names(machine.order_for_workers(items)) == ["load", "readme", "hook", "a1", "a2"]


def test_long_tests_are_spread_through_the_run_where_a_module_starts() -> None:
    modules = [[Item(f"{module}{number}", module) for number in range(10)] for module in "abcdefgh"]
    longs = [Item(f"long{number}", f"x{number}", long=0.5) for number in range(4)]
    ordered = names(machine.order_for_workers([item for module in modules for item in module] + longs))
    places = [ordered.index(f"long{number}") for number in range(4)]
    assert places == [0, 21, 42, 63]  # every 20 of the 80 others, each before a module's first test
    assert [ordered[place + 1] for place in places] == ["a0", "c0", "e0", "g0"]
    others = [name for name in ordered if not name.startswith("long")]
    assert others == [item.name for module in modules for item in module], "every other test keeps its place"


def test_a_run_of_long_tests_only_keeps_them_all() -> None:
    items = [Item("short", "s", long=0.5), Item("longer", "t", long=2)]
    assert names(machine.order_for_workers(items)) == ["longer", "short"]
