"""Offset days: when an action is due. Apart from `model` so that reading a due time never loads the
request model (pydantic) at cold start."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

SECONDS_PER_DAY = 86400


def unit_from_environment() -> int:
    """How many seconds an offset day lasts: `OFFSET_UNIT_SECONDS` (compressed locally), else a day."""
    return int(os.environ.get("OFFSET_UNIT_SECONDS", SECONDS_PER_DAY))


def due_before(now: datetime) -> datetime:
    """The due times an action may have to be due at `now` are those before this instant, the start of
    the next minute. EventBridge Scheduler fires a one-time schedule within the minute of its time (60
    second precision), possibly before the second it names: an action is due from the start of the
    minute its due time falls in, so such a hook performs it, still on its day (a minute never spans two)."""
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def due_at(enrollment_date: datetime, offset: int, offset_unit_seconds: int = SECONDS_PER_DAY) -> datetime:
    """Enrollment date + offset days. A day is `offset_unit_seconds` long (compressed locally)."""
    return enrollment_date + timedelta(seconds=offset * offset_unit_seconds)
