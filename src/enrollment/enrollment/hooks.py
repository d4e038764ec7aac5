"""Create one EventBridge Scheduler hook for an eventual action, under a name derived from it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from commonlib.errors import map_client_error

HOOK_RETRY_POLICY = {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 86400}
SCHEDULE_NAME_MAX = 64


def schedule_name(contract_id: str, action_name: str) -> str:
    """Derived from contract and action, so scheduling twice names the same schedule."""
    name = f"{contract_id}-{action_name}"
    if len(name) <= SCHEDULE_NAME_MAX:
        return name
    digest = hashlib.sha256(action_name.encode()).hexdigest()[:12]
    return f"{contract_id}-{digest}"


@dataclass(frozen=True)
class HookTarget:
    schedule_group: str
    function_arn: str
    role_arn: str
    dead_letter_queue_arn: str


def create_hook(scheduler: Any, target: HookTarget, hook: dict[str, Any]) -> dict[str, Any]:
    """A one-time `at()` schedule that invokes the fulfillment Lambda with the hook's input and deletes
    itself after it ran. The name is derived from contract and action, so creating it twice is a
    conflict, answered as `{"created": False}`, never a second hook."""
    from botocore.exceptions import ClientError  # loaded by the scheduler client already

    try:
        scheduler.create_schedule(
            Name=hook["scheduleName"],
            GroupName=target.schedule_group,
            ScheduleExpression=hook["scheduleExpression"],
            ScheduleExpressionTimezone="UTC",
            FlexibleTimeWindow={"Mode": "OFF"},
            ActionAfterCompletion="DELETE",
            Target={
                "Arn": target.function_arn,
                "RoleArn": target.role_arn,
                "Input": hook["targetInput"],
                "RetryPolicy": HOOK_RETRY_POLICY,
                "DeadLetterConfig": {"Arn": target.dead_letter_queue_arn},
            },
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConflictException":
            return {"created": False, "scheduleName": hook["scheduleName"], "reason": "already scheduled"}
        raise map_client_error(error) from error
    return {"created": True, "scheduleName": hook["scheduleName"]}
