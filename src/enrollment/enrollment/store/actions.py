"""The actions table: one item per action of a contract. A delivery claims a waiting action (a lease
owned by its token) before it performs it, and completes it as the owner of that claim."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from commonlib.clock import isoformat
from commonlib.errors import aws_errors_as_domain_errors
from enrollment.store.audit import audit_put
from enrollment.store.tables import (
    ACTION_CANCELLED,
    ACTION_FAILED,
    ACTION_FULFILLED,
    ACTION_PENDING,
    ACTION_RUNNING,
    ACTION_SCHEDULED,
    ACTIONS_DUE_INDEX,
    ENROLLED,
    MAX_REASON_CHARS,
    Tables,
    query_all,
    query_pages,
)


def cancel_action_update(
    contract_id: str, action: dict[str, Any], correlation_id: str, enrollment_date: str, at: datetime
) -> dict[str, Any]:
    """The conditional update that cancels one waiting action of the enrollment of `enrollment_date`, as
    `Table.update_item` keywords (a transaction item adds `TableName`). An eventual action has no item
    until its hook is scheduled, so this creates it `cancelled` when absent, and replaces an item of an
    earlier enrollment of the contract (another due time): a later scheduling or hook then finds the
    action taken. Never an item of a later enrollment: a revert's cancels, written after its transaction
    released the contract, must not cancel the actions of the contract's next enrollment."""
    due = action.get("dueAt")
    values = {
        ":cancelled": ACTION_CANCELLED,
        ":pending": ACTION_PENDING,
        ":scheduled": ACTION_SCHEDULED,
        ":now": isoformat(at),
        ":offset": action["offset"],
        ":correlation": correlation_id,
        ":enrollment": enrollment_date,
    }
    replaceable = "#state IN (:pending, :scheduled)" + (" OR dueAt <> :due" if due else "")
    condition = (
        "attribute_not_exists(actionName) OR ((attribute_not_exists(enrollmentDate)"
        f" OR enrollmentDate <= :enrollment) AND ({replaceable}))"
    )
    update = (
        "SET #state = :cancelled, cancelledAt = :now, #offset = :offset, correlationId = :correlation,"
        " enrollmentDate = :enrollment"
    )
    if due:
        update += (
            ", dueAt = :due REMOVE #result, failureReason, completedAt, claimToken, claimedAt, leaseUntil, attempts"
        )
        values[":due"] = due
    names = {"#state": "state", "#offset": "offset"} | ({"#result": "result"} if due else {})
    return {
        "Key": {"contractId": contract_id, "actionName": action["name"]},
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def get_action(tables: Tables, contract_id: str, name: str) -> dict[str, Any] | None:
    with aws_errors_as_domain_errors():
        return tables.actions.get_item(Key={"contractId": contract_id, "actionName": name}, ConsistentRead=True).get(
            "Item"
        )


def contract_actions(tables: Tables, contract_id: str) -> dict[str, dict[str, Any]]:
    from boto3.dynamodb.conditions import Key  # loaded by the table resource already

    with aws_errors_as_domain_errors():
        items = query_all(tables.actions, KeyConditionExpression=Key("contractId").eq(contract_id), ConsistentRead=True)
    return {item["actionName"]: item for item in items}


def actions_due(tables: Tables, state: str, due_before: datetime) -> Iterator[dict[str, Any]]:
    """The actions in `state` due before `due_before` (from the index by state and due time: eventually
    consistent, every write the reconciler makes from it is conditional)."""
    from boto3.dynamodb.conditions import Key  # loaded by the table resource already

    yield from query_pages(
        tables.actions,
        IndexName=ACTIONS_DUE_INDEX,
        KeyConditionExpression=Key("state").eq(state) & Key("dueAt").lt(isoformat(due_before)),
    )


def claim_action(
    tables: Tables,
    contract_id: str,
    name: str,
    observed: dict[str, Any],
    token: str,
    at: datetime,
    lease: timedelta,
    due_before: datetime,
) -> None:
    """Claim a waiting action for one delivery: the action goes `running`, owned by `token` until the
    lease ends, only if it is still as `observed` (same state, same due time, so the same enrollment),
    it is due (its due time before `due_before`), and the contract is enrolled. Raises
    `ConditionNotMetError` otherwise."""
    with aws_errors_as_domain_errors():
        tables.client.transact_write_items(
            TransactItems=[
                {"ConditionCheck": {"TableName": tables.offers.name, **_enrolled_as(contract_id, observed)}},
                {
                    "Update": {
                        "TableName": tables.actions.name,
                        "Key": {"contractId": contract_id, "actionName": name},
                        **_CLAIM_UPDATE,
                        "ConditionExpression": "#state = :observed AND dueAt = :due AND dueAt < :due_before",
                        "ExpressionAttributeValues": {
                            **_claim_values(token, at, lease),
                            ":observed": observed["state"],
                            ":due": observed["dueAt"],
                            ":due_before": isoformat(due_before),
                        },
                    }
                },
            ]
        )


def take_over_claim(
    tables: Tables, contract_id: str, name: str, observed: dict[str, Any], token: str, at: datetime, lease: timedelta
) -> None:
    """Take a `running` action whose lease has lapsed (its delivery crashed). The contract's state is not
    checked: the action was claimed while it was enrolled, so the cancel that may have followed reported
    it as in flight, and its downstream call carries the same idempotency key as the first attempt."""
    with aws_errors_as_domain_errors():
        tables.actions.update_item(
            Key={"contractId": contract_id, "actionName": name},
            **_CLAIM_UPDATE,
            ConditionExpression="#state = :running AND claimToken = :old AND leaseUntil < :now",
            ExpressionAttributeValues={
                **_claim_values(token, at, lease),
                ":old": observed["claimToken"],
            },
        )


def _enrolled_as(contract_id: str, action: dict[str, Any]) -> dict[str, Any]:
    """The condition that the contract is enrolled by the enrollment that created `action` (an item of
    an earlier, reverted enrollment of the contract never runs for a later one)."""
    condition = {
        "Key": {"OfferId": contract_id},
        "ConditionExpression": "#status = :enrolled",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":enrolled": ENROLLED},
    }
    if action.get("enrollmentDate"):
        condition["ConditionExpression"] += " AND #offer.enrollmentDate = :enrollment"
        condition["ExpressionAttributeNames"]["#offer"] = "offer"
        condition["ExpressionAttributeValues"][":enrollment"] = action["enrollmentDate"]
    return condition


# The first claim's time stays: it is when the action was committed to (before any cancel that followed).
_CLAIM_UPDATE = {
    "UpdateExpression": (
        "SET #state = :running, claimToken = :token, claimedAt = if_not_exists(claimedAt, :now),"
        " leaseUntil = :lease, attempts = if_not_exists(attempts, :zero) + :one"
    ),
    "ExpressionAttributeNames": {"#state": "state"},
}


def _claim_values(token: str, at: datetime, lease: timedelta) -> dict[str, Any]:
    return {
        ":running": ACTION_RUNNING,
        ":token": token,
        ":now": isoformat(at),
        ":lease": isoformat(at + lease),
        ":zero": 0,
        ":one": 1,
    }


def lapse_claim(tables: Tables, contract_id: str, name: str, token: str, error: str, at: datetime) -> None:
    """End the claim of a delivery whose performance raised: the action stays `running`, its lease lapsed
    now, with the error (`lastError`). It is not waiting again: the performance may have reached the
    downstream before it raised, and a waiting action is one a cancel records as never performed. The
    next delivery takes the claim over with the same idempotency key, and if the contract left
    `enrolled` meanwhile it asks the downstream whether the key was performed instead of performing it."""
    with aws_errors_as_domain_errors():
        tables.actions.update_item(
            Key={"contractId": contract_id, "actionName": name},
            UpdateExpression="SET leaseUntil = :now, lastError = :error",
            ConditionExpression="#state = :running AND claimToken = :token",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":running": ACTION_RUNNING,
                ":token": token,
                ":now": isoformat(at),
                ":error": error[:MAX_REASON_CHARS],
            },
        )


def complete_action(
    tables: Tables,
    contract_id: str,
    name: str,
    token: str,
    state: str,
    detail: Any,
    trigger: str,
    entry: dict[str, Any],
    at: datetime,
) -> None:
    """running -> fulfilled|failed, by the delivery that owns the claim, with its audit entry."""
    attribute = "result" if state == ACTION_FULFILLED else "failureReason"
    with aws_errors_as_domain_errors():
        tables.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": tables.actions.name,
                        "Key": {"contractId": contract_id, "actionName": name},
                        "UpdateExpression": (
                            "SET #state = :state, completedAt = :now, #trigger = :trigger, #detail = :detail"
                            " REMOVE leaseUntil"
                        ),
                        "ConditionExpression": "#state = :running AND claimToken = :token",
                        "ExpressionAttributeNames": {"#state": "state", "#trigger": "trigger", "#detail": attribute},
                        "ExpressionAttributeValues": {
                            ":state": state,
                            ":running": ACTION_RUNNING,
                            ":token": token,
                            ":now": isoformat(at),
                            ":trigger": trigger,
                            ":detail": detail,
                        },
                    }
                },
                audit_put(tables, entry),
            ]
        )


def cancel_waiting_action(
    tables: Tables,
    contract_id: str,
    name: str,
    offer_status: str | None,
    reason: str,
    entry: dict[str, Any],
    at: datetime,
) -> None:
    """A waiting action of a contract that is no longer enrolled: cancelled, never performed. Only while
    the offer is still as read (`offer_status`, None: no offer): a later offer of the contract that took
    it and enrolled meanwhile has its own actions, which are not this one's to cancel."""
    ending = _end_waiting_action(contract_id, name, ACTION_CANCELLED, reason, at)
    offer_as_read: dict[str, Any] = (
        {"ConditionExpression": "attribute_not_exists(OfferId)"}
        if offer_status is None
        else {
            "ConditionExpression": "#status = :status",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": offer_status},
        }
    )
    offer = {"TableName": tables.offers.name, "Key": {"OfferId": contract_id}, **offer_as_read}
    _end_and_audit(tables, ending, entry, {"ConditionCheck": offer})


def cancel_earlier_enrollments_action(
    tables: Tables, contract_id: str, name: str, enrollment_date: str, reason: str, entry: dict[str, Any], at: datetime
) -> None:
    """A waiting action of an earlier enrollment of the contract (`enrollment_date`, not the offer's now):
    no claim can run it any more, so it is cancelled, only while it is still that enrollment's and waiting."""
    ending = _end_waiting_action(contract_id, name, ACTION_CANCELLED, reason, at)
    ending["ConditionExpression"] += " AND enrollmentDate = :earlier"
    ending["ExpressionAttributeValues"][":earlier"] = enrollment_date
    _end_and_audit(tables, ending, entry)


def _end_and_audit(tables: Tables, ending: dict[str, Any], entry: dict[str, Any], *checks: dict[str, Any]) -> None:
    """One transaction: the `checks`, the action's `ending` (`_end_waiting_action`) and its audit entry."""
    with aws_errors_as_domain_errors():
        tables.client.transact_write_items(
            TransactItems=[*checks, {"Update": {"TableName": tables.actions.name, **ending}}, audit_put(tables, entry)]
        )


def fail_unscheduled_action(tables: Tables, contract_id: str, name: str, reason: str, at: datetime) -> None:
    """A waiting action whose hook cannot be (re)created: failed with the reason, never silent."""
    with aws_errors_as_domain_errors():
        tables.actions.update_item(**_end_waiting_action(contract_id, name, ACTION_FAILED, reason, at))


def _end_waiting_action(contract_id: str, name: str, state: str, reason: str, at: datetime) -> dict[str, Any]:
    """pending|scheduled -> `state` (cancelled or failed) with the reason, as `update_item` keywords."""
    stamp = "cancelledAt" if state == ACTION_CANCELLED else "completedAt"
    return {
        "Key": {"contractId": contract_id, "actionName": name},
        "UpdateExpression": f"SET #state = :state, failureReason = :reason, {stamp} = :now",
        "ConditionExpression": "#state IN (:pending, :scheduled)",
        "ExpressionAttributeNames": {"#state": "state"},
        "ExpressionAttributeValues": {
            ":state": state,
            ":pending": ACTION_PENDING,
            ":scheduled": ACTION_SCHEDULED,
            ":now": isoformat(at),
            ":reason": reason[:MAX_REASON_CHARS],
        },
    }


def cancel_action(
    tables: Tables, contract_id: str, action: dict[str, Any], correlation_id: str, enrollment_date: str, at: datetime
) -> None:
    """Cancel one waiting action (`cancel_action_update`). Raises `ConditionNotMetError` when it was
    claimed or done meanwhile, or belongs to a later enrollment."""
    with aws_errors_as_domain_errors():
        tables.actions.update_item(**cancel_action_update(contract_id, action, correlation_id, enrollment_date, at))
