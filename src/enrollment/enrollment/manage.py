"""Reading and cancelling an enrollment (`GET` / `DELETE /enrollments/{contractId}`)."""

from __future__ import annotations

from typing import Any

from commonlib.clock import Clock, isoformat, parse_isoformat, utc_now
from commonlib.errors import ConditionNotMetError, aws_errors_as_domain_errors
from commonlib.serialization import json_ready
from enrollment import hooks, store
from enrollment.offsets import SECONDS_PER_DAY, due_at
from enrollment.store import Tables

CANCELLED = store.CANCELLED
_ACTION_FIELDS = (
    "offset",
    "dueAt",
    "state",
    "trigger",
    "scheduledAt",
    "completedAt",
    "cancelledAt",
    "result",
    "failureReason",
)


def _actions(tables: Tables, offer: dict[str, Any], offset_unit_seconds: int) -> list[dict[str, Any]]:
    """Every action of the contract: its item, or, for an enrolled contract's eventual action whose
    hook is not scheduled yet (it has no item until then), `pending` with the due time it will get."""
    from boto3.dynamodb.conditions import Key  # loaded by the table resource already

    contract_id = offer["OfferId"]
    with aws_errors_as_domain_errors():
        items = tables.actions.query(KeyConditionExpression=Key("contractId").eq(contract_id), ConsistentRead=True)
    actions = {item["actionName"]: item for item in items["Items"]}
    details = offer.get("offer", {})
    if offer.get("status") == store.ENROLLED:
        enrollment_date = parse_isoformat(details["enrollmentDate"])
        for action in details.get("contractDraft", {}).get("List", []):
            actions.setdefault(
                action["name"],
                {
                    "contractId": contract_id,
                    "actionName": action["name"],
                    "offset": action["offset"],
                    "dueAt": isoformat(due_at(enrollment_date, int(action["offset"]), offset_unit_seconds)),
                    "state": store.ACTION_PENDING,
                },
            )
    return sorted(actions.values(), key=lambda item: (int(item["offset"]), item["actionName"]))


def enrollment_status(
    tables: Tables, contract_id: str, offset_unit_seconds: int = SECONDS_PER_DAY
) -> dict[str, Any] | None:
    """The offer, every action with its offset, due time and state, and the audit trail."""
    with aws_errors_as_domain_errors():
        offer = tables.offers.get_item(Key={"OfferId": contract_id}, ConsistentRead=True).get("Item")
        if offer is None:
            return None
        trail = store.audit_trail(tables, contract_id)
    details = offer.get("offer", {})
    answer = {
        "contractId": contract_id,
        "accountId": details.get("accountId"),
        "status": offer["status"],
        "reason": offer.get("failureReason") or offer.get("statusReason"),
        "enrollmentDate": details.get("enrollmentDate"),
        "enrolledAt": offer.get("enrolledAt"),
        "cancelledAt": offer.get("cancelledAt"),
        "correlationId": details.get("correlationId"),
        "actions": [
            {"name": item["actionName"], **{field: item[field] for field in _ACTION_FIELDS if field in item}}
            for item in _actions(tables, offer, offset_unit_seconds)
        ],
        "audit": [
            {key: entry[key] for key in ("at", "step", "outcome", "correlationId", "rulesVersion") if key in entry}
            for item in trail
            for entry in store.expand(item)
        ],
    }
    return json_ready(answer)


def cancel_enrollment(
    tables: Tables,
    scheduler: Any,
    schedule_group: str,
    contract_id: str,
    clock: Clock = utc_now,
    offset_unit_seconds: int = SECONDS_PER_DAY,
) -> dict[str, Any]:
    """Cancel an enrolled contract: the offer and the UCP entry become `cancelled`, pending hooks are
    deleted and their actions marked cancelled; fulfilled actions stay fulfilled.

    Outcomes: `cancelled`, `not_found`, or `not_cancellable` (with the offer's status)."""
    now = clock()
    with aws_errors_as_domain_errors():
        offer = tables.offers.get_item(Key={"OfferId": contract_id}, ConsistentRead=True).get("Item")
    if offer is None:
        return {"outcome": "not_found"}
    try:
        with aws_errors_as_domain_errors():
            tables.offers.update_item(
                Key={"OfferId": contract_id},
                UpdateExpression="SET #status = :cancelled, cancelledAt = :now",
                ConditionExpression="#status = :enrolled",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":cancelled": CANCELLED,
                    ":enrolled": store.ENROLLED,
                    ":now": isoformat(now),
                },
            )
    except ConditionNotMetError:
        return {"outcome": "not_cancellable", "status": offer["status"]}

    cancelled, left = [], []
    correlation_id = offer["offer"].get("correlationId", "-")
    for action in _actions(tables, {**offer, "status": store.ENROLLED}, offset_unit_seconds):
        if action["state"] not in (store.ACTION_PENDING, store.ACTION_SCHEDULED):
            left.append({"name": action["actionName"], "state": action["state"]})
            continue
        _delete_schedule(scheduler, schedule_group, hooks.schedule_name(contract_id, action["actionName"]))
        cancel = {"name": action["actionName"], "offset": action["offset"], "dueAt": action.get("dueAt")}
        try:
            with aws_errors_as_domain_errors():
                tables.actions.update_item(**store.cancel_action(contract_id, cancel, correlation_id, now))
            cancelled.append(action["actionName"])
        except ConditionNotMetError:
            left.append({"name": action["actionName"], "state": "fulfilled or failed while cancelling"})
    with aws_errors_as_domain_errors():
        tables.ucp.update_item(
            Key={"accountId": offer["offer"]["accountId"]},
            UpdateExpression="SET contracts.#contract.#status = :cancelled",
            ConditionExpression="attribute_exists(contracts.#contract)",
            ExpressionAttributeNames={"#contract": contract_id, "#status": "status"},
            ExpressionAttributeValues={":cancelled": CANCELLED},
        )
        store.append_audit(
            tables,
            store.audit_entry(
                contract_id,
                "cancel",
                f"cancelled: {len(cancelled)} pending actions cancelled, {len(left)} already done",
                correlation_id,
                now,
            ),
        )
    return {"outcome": "cancelled", "cancelledActions": cancelled, "completedActions": left}


def _delete_schedule(scheduler: Any, group: str, name: str) -> None:
    from botocore.exceptions import ClientError  # loaded by the scheduler client already

    try:
        scheduler.delete_schedule(GroupName=group, Name=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise  # not scheduled yet, or already fired and deleted itself: nothing to delete
