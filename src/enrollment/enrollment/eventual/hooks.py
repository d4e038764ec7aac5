"""Create one EventBridge Scheduler hook for an eventual action, under a name derived from it.

A hook's schedule is named `<contractId>.<digest>`: the digest is the first 23 characters of the
lowercase base32 of sha256(action name), 115 bits, so two actions of one contract never share a name
in practice, and a contract id (`[A-Za-z0-9][A-Za-z0-9_-]*`, at most 40 characters) has no `.`, so
two contracts never do either, and the contract is read back from the name (`contract_id_of`). At most
40 + 1 + 23 = 64 characters of `[0-9a-zA-Z_.-]`, what Scheduler takes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from commonlib.errors import ConditionNotMetError, TransientDependencyError, map_client_error
from enrollment import store
from enrollment.steps import Hook, HookScheduled
from enrollment.store import Tables

HOOK_RETRY_POLICY = {"MaximumRetryAttempts": 5, "MaximumEventAgeInSeconds": 86400}
SCHEDULE_NAME_MAX = 64
CONTRACT_ID_MAX = 40  # enrollment.model.Identifier
SEPARATOR = "."  # never in a contract id
DIGEST_CHARS = SCHEDULE_NAME_MAX - CONTRACT_ID_MAX - len(SEPARATOR)  # 23 base32 characters: 115 bits
_CONTRACT_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{CONTRACT_ID_MAX - 1}}}")
_DIGEST = re.compile(rf"[a-z2-7]{{{DIGEST_CHARS}}}")  # lowercase base32


class ScheduleNameConflictError(ConditionNotMetError):
    """A hook's schedule name is taken by a schedule of another contract or action (or one whose input
    cannot be read): creating it again can never succeed, and answering "already scheduled" would
    leave this action without a hook."""


def action_digest(action_name: str) -> str:
    digest = base64.b32encode(hashlib.sha256(action_name.encode()).digest()).decode("ascii")
    return digest.lower()[:DIGEST_CHARS]


def schedule_name(contract_id: str, action_name: str) -> str:
    """Derived from contract and action, so scheduling twice names the same schedule, and no two
    (contract, action) pairs name the same one."""
    if not _CONTRACT_ID.fullmatch(contract_id):
        raise ValueError(f"not a contract id: {contract_id!r}")
    return f"{contract_id}{SEPARATOR}{action_digest(action_name)}"


def contract_id_of(name: str) -> str:
    """The contract a hook's schedule belongs to, read from its name. Any other name (a schedule someone
    else put in the group) raises `ValueError`, digest included, so it is never taken for a hook."""
    contract_id, separator, digest = name.partition(SEPARATOR)
    if not separator or not _CONTRACT_ID.fullmatch(contract_id) or not _DIGEST.fullmatch(digest):
        raise ValueError(f"not a hook's schedule name: {name!r}")
    return contract_id


@dataclass(frozen=True)
class HookTarget:
    schedule_group: str
    function_arn: str
    role_arn: str
    dead_letter_queue_arn: str


def _identity(target_input: Any) -> tuple[Any, Any, Any] | None:
    """(contractId, action name, due time) of a hook's target input (the fulfillment event), or None
    when it is not one."""
    try:
        event = json.loads(target_input)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(event, dict):
        return None
    action = event.get("action") if isinstance(event.get("action"), dict) else {}
    return event.get("contractId"), action.get("name"), action.get("dueAt")


def _error_code(error: Any) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _create(scheduler: Any, target: HookTarget, hook: Hook) -> bool:
    """True when created; False when the name is taken (`ConflictException`)."""
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
        if _error_code(error) == "ConflictException":
            return False
        raise map_client_error(error) from error
    return True


def _existing(scheduler: Any, target: HookTarget, name: str) -> tuple[bool, tuple[Any, Any, Any] | None]:
    """(whether the schedule `name` exists, the identity of the hook it was created for: None when its
    input is not a hook's)."""
    from botocore.exceptions import ClientError  # loaded by the scheduler client already

    try:
        existing = scheduler.get_schedule(GroupName=target.schedule_group, Name=name)
    except ClientError as error:
        if _error_code(error) in ("ResourceNotFoundException", "ResourceNotFound"):
            return False, None
        raise map_client_error(error) from error
    return True, _identity(existing.get("Target", {}).get("Input"))


def _delete(scheduler: Any, target: HookTarget, name: str) -> None:
    from botocore.exceptions import ClientError  # loaded by the scheduler client already

    try:
        scheduler.delete_schedule(GroupName=target.schedule_group, Name=name)
    except ClientError as error:
        if _error_code(error) not in ("ResourceNotFoundException", "ResourceNotFound"):
            raise map_client_error(error) from error


def create_hook(scheduler: Any, target: HookTarget, hook: Hook) -> HookScheduled:
    """A one-time `at()` schedule that invokes the fulfillment Lambda with the hook's input and deletes
    itself after it ran. The name is derived from contract and action, so creating it twice is a
    conflict: answered `{"created": False}` (never a second hook) when the schedule found under the
    name is this hook's (same contract, action and due time in its input); replaced when it is the same
    action's hook of an earlier enrollment (another due time); `ScheduleNameConflictError`, naming the
    schedule, when it is another action's. A conflicting schedule that is gone when read (it fired and
    deleted itself meanwhile) is created again, once."""
    name = hook["scheduleName"]
    if _create(scheduler, target, hook):
        return {"created": True, "scheduleName": name}
    found, existing = _existing(scheduler, target, name)
    if not found:
        if _create(scheduler, target, hook):
            return {"created": True, "scheduleName": name}
        found, existing = _existing(scheduler, target, name)
        if not found:
            raise TransientDependencyError(
                f"schedule {name} in group {target.schedule_group} conflicted twice but was gone when read",
                scheduleName=name,
            )
    wanted = _identity(hook["targetInput"])
    if wanted is not None and existing == wanted:
        return {"created": False, "scheduleName": name, "reason": "already scheduled"}
    if wanted is not None and existing is not None and existing[:2] == wanted[:2]:
        # The same action of an earlier, reverted enrollment of the contract (another due time): its
        # delivery would be refused as stale, and this enrollment's hook needs the name.
        _delete(scheduler, target, name)
        if _create(scheduler, target, hook):
            return {"created": True, "scheduleName": name, "replaced": existing[2]}
        raise TransientDependencyError(f"schedule {name} was re-created while it was replaced", scheduleName=name)
    raise ScheduleNameConflictError(
        f"schedule {name} in group {target.schedule_group} already exists for another hook: "
        f"(contractId, action) {existing} there, {wanted} here",
        scheduleName=name,
        found=existing,
        wanted=wanted,
    )


def schedule_hook(tables: Tables, scheduler: Any, target: HookTarget, contract_id: str, hook: Hook) -> HookScheduled:
    """Create the hook (`create_hook`), then read the contract: a cancel deletes a contract's hooks after
    the offer has left `enrolled`, so a schedule created after the cancel looked for it would otherwise
    stay behind. Read after the create, a contract no longer enrolled has its hook withdrawn here (the
    action itself is the cancel's or the revert's to settle), and none is left to fire after it."""
    result = create_hook(scheduler, target, hook)
    offer = store.get_offer(tables, contract_id)
    status = offer["status"] if offer else "absent"
    if status == store.ENROLLED:
        return result
    _delete(scheduler, target, hook["scheduleName"])
    return {"created": False, "scheduleName": hook["scheduleName"], "reason": f"withdrawn: the contract is {status}"}
