"""Offset days: when an action is due. Apart from `model` so that reading a due time never loads the
request model (pydantic) at cold start."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

SECONDS_PER_DAY = 86400


def unit_from_environment() -> int:
    """How many seconds an offset day lasts: `OFFSET_UNIT_SECONDS` (compressed locally), else a day."""
    return int(os.environ.get("OFFSET_UNIT_SECONDS", SECONDS_PER_DAY))


def due_at(enrollment_date: datetime, offset: int, offset_unit_seconds: int = SECONDS_PER_DAY) -> datetime:
    """Enrollment date + offset days. A day is `offset_unit_seconds` long (compressed locally)."""
    return enrollment_date + timedelta(seconds=offset * offset_unit_seconds)
