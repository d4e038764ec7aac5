"""One machine, many test workers: the tests marked `load` hold it alone, before anything else runs.

Under pytest-xdist the workers share two cores. A `load` test measures what the emulator sustains, so
the load tests take the machine one at a time (an exclusive lock), and every other test (with the
deploy its setup starts) waits until all the run's load tests have finished. Waiting for them by count
rather than by a lock keeps a test that a worker starts first from taking the machine from under them.
Without xdist nothing is locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from typing import IO

from tests.support.template import ROOT

MACHINE_LOCK = ROOT / ".aws-sam" / "machine.lock"
# One line per finished load test, naming its run: lines of an earlier, killed run are ignored.
LOAD_DONE = ROOT / ".aws-sam" / "machine.load-done"
LOAD_WAIT_LIMIT_SECONDS = 900


@contextlib.contextmanager
def machine_share(exclusive: bool, load_tests: int) -> Iterator[None]:
    """Hold the machine for one test: alone if `exclusive`, else once the run's `load_tests` have run."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        yield
        return
    MACHINE_LOCK.parent.mkdir(exist_ok=True)
    deadline = time.monotonic() + LOAD_WAIT_LIMIT_SECONDS
    if not exclusive:
        while _load_tests_done(run) < load_tests:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the {load_tests} load tests did not finish within {LOAD_WAIT_LIMIT_SECONDS} s")
            time.sleep(0.5)
        yield
        return
    with MACHINE_LOCK.open("a") as handle:
        _lock_exclusive(handle, deadline)
        try:
            yield
        finally:
            _record_load_test_done(run)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock_exclusive(handle: IO[str], deadline: float) -> None:
    """flock, polled, so that a holder that never lets go fails this test by name instead of hanging."""
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no exclusive hold on {MACHINE_LOCK} within {LOAD_WAIT_LIMIT_SECONDS} s") from None
            time.sleep(0.2)


def _load_tests_done(run: str) -> int:
    try:
        return LOAD_DONE.read_text().splitlines().count(run)
    except OSError:
        return 0


def _record_load_test_done(run: str) -> None:
    """Appended while holding the exclusive lock, so two load tests never write at once."""
    with LOAD_DONE.open("a") as done:
        done.write(f"{run}\n")
