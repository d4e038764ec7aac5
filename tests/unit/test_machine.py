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
