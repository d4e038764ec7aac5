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
    with MACHINE_LOCK.open("a") as handle:
        if exclusive:
            LOAD_WAITING.write_text(run)
            fcntl.flock(handle, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + LOAD_WAIT_LIMIT_SECONDS
            while time.monotonic() < deadline and _load_waiting(run):
                time.sleep(0.5)
            fcntl.flock(handle, fcntl.LOCK_SH)
        try:
            yield
        finally:
            if exclusive:
                LOAD_WAITING.unlink(missing_ok=True)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_waiting(run: str) -> bool:
    try:
        return LOAD_WAITING.read_text() == run  # a marker left by an earlier, killed run is ignored
    except OSError:
        return False
