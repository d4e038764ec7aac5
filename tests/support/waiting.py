"""Bounded waits: every poll in the integration suite has a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_until[T](probe: Callable[[], T | None], deadline_seconds: float, what: str, interval: float = 0.2) -> T:
    deadline = time.monotonic() + deadline_seconds
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {deadline_seconds}s waiting for {what}")
        time.sleep(interval)


def finished_execution(stepfunctions: Any, execution_arn: str, deadline_seconds: float = 60) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        execution = stepfunctions.describe_execution(executionArn=execution_arn)
        return None if execution["status"] == "RUNNING" else execution

    return wait_until(probe, deadline_seconds, f"execution {execution_arn} to finish")
