from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from enrollment.eventual.fulfillment import lease_for
from enrollment.eventual.hooks import schedule_name

EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"
STARTED = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:EnrollmentStateMachine:run-1"
OTHER_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:EnrollmentStateMachine:run-2"
# The lease of a delivery that claims at the start of an invocation of FulfillAction (Timeout 10 s).
LEASE = lease_for(10_000)


def seed_offer(**changes: Any) -> dict[str, Any]:
    offer = json.loads((EVENTS / "input.json").read_text())
    offer.update(copy.deepcopy(changes))
    return offer


class FixedClock:
    def __init__(self, moment: datetime = STARTED) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.moment += timedelta(seconds=seconds)


class RecordingStepFunctions:
    def __init__(self) -> None:
        self.starts: list[dict[str, Any]] = []

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.starts.append(kwargs)
        return {"executionArn": f"arn:aws:states:us-east-1:1:execution:async:{kwargs['name']}"}


class OneRunPerName(RecordingStepFunctions):
    """StartExecution as the local emulator answers it for every workflow type (AWS, for STANDARD only):
    a name that started a run once is refused."""

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        if any(start["name"] == kwargs["name"] for start in self.starts):
            error = {"Code": "ExecutionAlreadyExists", "Message": f"Execution already exists: '{kwargs['name']}'"}
            raise ClientError({"Error": error}, "StartExecution")
        return super().start_execution(**kwargs)


class AnswerLostAndRepeated(OneRunPerName):
    """The SDK repeats a start whose answer it lost (a dropped connection): the run started, and the
    repeat is refused by its name."""

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        super().start_execution(**kwargs)
        return super().start_execution(**kwargs)


def schedule_hook(tables: Any, contract_id: str, action: dict[str, Any]) -> None:
    """What the async workflow's MarkActionScheduled does before it creates a hook: the eventual
    action's item, `scheduled` (the commit wrote the same-day actions' items only)."""
    tables.actions.put_item(
        Item={
            "contractId": contract_id,
            "actionName": action["name"],
            "offset": action["offset"],
            "dueAt": action["dueAt"],
            "enrollmentDate": STARTED.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "scheduledAt": STARTED.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "state": "scheduled",
            "scheduleName": schedule_name(contract_id, action["name"]),
        },
        ConditionExpression="attribute_not_exists(actionName)",
    )
