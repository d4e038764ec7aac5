"""One machine, many test workers: the tests marked `load` hold it alone, before anything else runs.

Under pytest-xdist the workers share two cores. A `load` test measures what the emulator sustains, so
the load tests take the machine one at a time (an exclusive lock), and every other test (with the
deploy its setup starts) waits until all the run's load tests have finished. Waiting for them by count
rather than by a lock keeps a test that a worker starts first from taking the machine from under them.
Without xdist nothing is locked.

The order of the run (`order_for_workers`) puts the load tests first, and spreads the tests marked
`long` (they mostly wait, on hooks, leases or the reconciler) through the rest.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from typing import IO, Protocol

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


class Marked(Protocol):
    """What ordering needs of a pytest item."""

    module: object

    def get_closest_marker(self, name: str) -> object | None: ...


def is_load[T: Marked](item: T) -> bool:
    return item.get_closest_marker("load") is not None


def long_minutes[T: Marked](item: T) -> float | None:
    """How long a test marked `long` is expected to take (`@pytest.mark.long(minutes=3)`; half a minute
    unless it says), None for any other test."""
    marker = item.get_closest_marker("long")
    return None if marker is None else float(marker.kwargs.get("minutes", 0.5))


def order_for_workers[T: Marked](items: Sequence[T]) -> list[T]:
    """The `load` tests first: under pytest-xdist every other test waits until they have run, so the
    worker handed them starts at once. Then the `long` tests, the longest first, each one where a module
    starts (a module's fixtures are set up once) at even distances through the rest: pytest-xdist hands
    each worker a contiguous share of this order, so each share holds a few of them, and no worker is
    left with a row of long waits after the others have ended. Every other test keeps its place."""
    load = [item for item in items if is_load(item)]
    long = sorted(
        (item for item in items if long_minutes(item) is not None and not is_load(item)),
        key=lambda item: long_minutes(item) or 0.0,
        reverse=True,
    )
    rest = [item for item in items if not is_load(item) and long_minutes(item) is None]
    if not rest:
        return load + long
    module_starts = [index for index, item in enumerate(rest) if index == 0 or item.module != rest[index - 1].module]
    placed: dict[int, list[T]] = {}
    for number, item in enumerate(long):
        target = number * len(rest) / len(long)
        place = min(module_starts, key=lambda start, target=target: abs(start - target))
        placed.setdefault(place, []).append(item)
    return load + [item for index, test in enumerate(rest) for item in (*placed.get(index, []), test)]
