"""The emulator's entry point: ministack, with its EventBridge Scheduler sweep every
SCHEDULER_TICK_SECONDS (scripts/emulator.py sets it) instead of its fixed 10 seconds.

Run by `.venv-emulator`'s interpreter (scripts/emulator.py starts it), so it imports only ministack.
Locally an offset day lasts a few seconds (samconfig `local`: OffsetUnitSeconds=3). A 10-second sweep
would fire a hook up to three such days late and make every test of a hook wait for it; on AWS the
Scheduler fires within a minute of an 86,400-second day. ministack 1.5.33 reads the interval from a
module variable before each sleep (services/scheduler.py `_SCHEDULE_TICK_INTERVAL`) and offers no
setting for it; tests/unit/test_emulator_tooling.py fails if a new version drops that variable.
"""

from __future__ import annotations

import os
import sys

from ministack.services import scheduler

TICK_VARIABLE = "_SCHEDULE_TICK_INTERVAL"


def main() -> int:
    if not hasattr(scheduler, TICK_VARIABLE):
        raise SystemExit(f"ministack.services.scheduler has no {TICK_VARIABLE}: pin the ministack this was written for")
    tick = float(os.environ.get("SCHEDULER_TICK_SECONDS", getattr(scheduler, TICK_VARIABLE)))
    if not 0 < tick <= 60:
        raise SystemExit(f"SCHEDULER_TICK_SECONDS={tick}: expected more than 0 and at most 60")
    setattr(scheduler, TICK_VARIABLE, tick)

    from ministack.app import main as ministack_main

    ministack_main()  # serves until it is stopped
    return 0


if __name__ == "__main__":
    sys.exit(main())
