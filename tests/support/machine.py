"""One machine, many test workers: a test marked `load` holds it alone.

Under pytest-xdist the workers share two cores. A `load` test measures what the emulator sustains, so
it takes an exclusive lock, and every other test (and each worker's deploy) a shared one. A load test
waiting says so in a marker file that keeps new shared holders out until it has run; else the other
workers' tests, back to back, would starve it. Without xdist nothing is locked.
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
LOAD_WAITING = ROOT / ".aws-sam" / "machine.load-waiting"
LOAD_WAIT_LIMIT_SECONDS = 900


@contextlib.contextmanager
def machine_share(exclusive: bool) -> Iterator[None]:
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        yield
        return
    MACHINE_LOCK.parent.mkdir(exist_ok=True)
    deadline = time.monotonic() + LOAD_WAIT_LIMIT_SECONDS
    with MACHINE_LOCK.open("a") as handle:
        if exclusive:
            LOAD_WAITING.write_text(run)
            _lock(handle, fcntl.LOCK_EX, deadline)
        else:
            while time.monotonic() < deadline and _load_waiting(run):
                time.sleep(0.5)
            _lock(handle, fcntl.LOCK_SH, deadline)
        try:
            yield
        finally:
            if exclusive:
                LOAD_WAITING.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _lock(handle: IO[str], mode: int, deadline: float) -> None:
    """flock, polled, so that a holder that never lets go fails this test by name instead of hanging."""
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                kind = "exclusive" if mode == fcntl.LOCK_EX else "shared"
                raise TimeoutError(f"no {kind} hold on {MACHINE_LOCK} within {LOAD_WAIT_LIMIT_SECONDS} s") from None
            time.sleep(0.2)


def _load_waiting(run: str) -> bool:
    try:
        return LOAD_WAITING.read_text() == run  # a marker left by an earlier, killed run is ignored
    except OSError:
        return False
