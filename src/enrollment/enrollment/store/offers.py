"""The Offers table: one item per contract, the guard of its one run at a time and the record of its
status. Every change is a conditional write owned by the Step Functions execution that accepted the
offer; the commit and the revert are one transaction across the offer, the UCP, the actions and the
audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from commonlib.clock import isoformat
from commonlib.errors import ConditionNotMetError, aws_errors_as_domain_errors
from enrollment.store.actions import cancel_action_update
from enrollment.store.audit import audit_put
from enrollment.store.tables import (
    ACTION_CANCELLED,
    ACTION_PENDING,
    CANCELLED,
    CANCELLING,
    ENROLLED,
    FAILED,
    INELIGIBLE,
    RECEIVED,
    REJECTED,
    VERIFIED,
    WATCH,
    WATCHED_INDEX,
    WATCHED_SINCE,
    WATCHING,
    Tables,
    query_pages,
    scan_pages,
    storable,
)
from enrollment.store.ucp import account_key, contract_key


def get_offer(tables: Tables, contract_id: str) -> dict[str, Any] | None:
    with aws_errors_as_domain_errors():
        return tables.offers.get_item(Key={"OfferId": contract_id}, ConsistentRead=True).get("Item")


def watched_offers(tables: Tables, marked_before: datetime) -> Iterator[dict[str, Any]]:
    """The keys of the offers the reconciler watches whose mark is older than `marked_before` (from the
    sparse index: eventually consistent, so the reconciler reads each offer again before it acts)."""
    from boto3.dynamodb.conditions import Key  # loaded by the table resource already

    yield from query_pages(
        tables.offers,
        IndexName=WATCHED_INDEX,
        KeyConditionExpression=Key(WATCH).eq(WATCHING) & Key(WATCHED_SINCE).lt(isoformat(marked_before)),
    )


def every_offer(tables: Tables) -> Iterator[dict[str, Any]]:
    """Every offer, read consistently: for `scripts/mark_offers_for_reconciler.py`, a one-off run on a stack
    deployed before the marks. No function scans the table."""
    yield from scan_pages(tables.offers, ConsistentRead=True)


def unwatch(tables: Tables, contract_id: str, status: str, watched_since: str) -> bool:
    """Remove the reconciler's mark from a settled offer, only if nothing marked it again since it was read
    (same mark time, same status). False when something did: the next run looks again."""
    return _updated_if(
        tables,
        contract_id,
        UpdateExpression=f"REMOVE {WATCH}, {WATCHED_SINCE}",
        ConditionExpression=f"{WATCHED_SINCE} = :since AND #status = :status",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":since": watched_since, ":status": status},
    )


def watch_offer(tables: Tables, contract_id: str, at: datetime) -> bool:
    """Mark an offer for the reconciler, unless it is marked already (a stack deployed before the marks
    existed: `scripts/mark_offers_for_reconciler.py`). False when it was."""
    return _updated_if(
        tables,
        contract_id,
        UpdateExpression=f"SET {WATCH} = :watching, {WATCHED_SINCE} = :now",
        ConditionExpression=f"attribute_exists(OfferId) AND attribute_not_exists({WATCH})",
        ExpressionAttributeValues={":watching": WATCHING, ":now": isoformat(at)},
    )


def _updated_if(tables: Tables, contract_id: str, **update: Any) -> bool:
    """A conditional update of the offer: False when its condition does not hold."""
    try:
        with aws_errors_as_domain_errors():
            tables.offers.update_item(Key={"OfferId": contract_id}, **update)
    except ConditionNotMetError:
        return False
    return True


def _watch(update: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """`update` (a SET expression whose values hold `:now`) that also marks the offer for the reconciler."""
    return f"{update}, {WATCH} = :watching, {WATCHED_SINCE} = :now", {**values, ":watching": WATCHING}


def mark_eventual_workflow(
    tables: Tables,
    contract_id: str,
    enrollment_date: str,
    execution_name: str,
    at: datetime,
    replacing: str | None = None,
) -> None:
    """Record that `execution_name` schedules the hooks of the offer's enrollment of `enrollment_date`.
    The first start requires no mark; a re-drive replaces the mark of the run it supersedes
    (`replacing`), only while that run has not confirmed: a run that confirmed meanwhile is not undone
    (the reconciler, which may find such an offer settled and unmark it, then never sees it again). Both
    require the offer enrolled by that enrollment: a record of an earlier one, since reverted, must not
    take the place of the current enrollment's run."""
    condition = "#status = :enrolled AND #offer.enrollmentDate = :enrollment AND " + (
        "attribute_not_exists(eventualWorkflow)"
        if replacing is None
        else "eventualWorkflow.executionName = :old AND attribute_not_exists(eventualWorkflow.confirmedAt)"
    )
    values = {
        ":enrolled": ENROLLED,
        ":enrollment": enrollment_date,
        ":mark": {"executionName": execution_name, "startedAt": isoformat(at)},
    }
    if replacing is not None:
        values[":old"] = replacing
    with aws_errors_as_domain_errors():
        tables.offers.update_item(
            Key={"OfferId": contract_id},
            UpdateExpression="SET eventualWorkflow = :mark",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status", "#offer": "offer"},
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )


def take_unstarted_first_payment(tables: Tables, contract_id: str, at: datetime) -> None:
    """Take the offer's record that its first payment was not started (the immediate workflow's
    FlagPaymentNotStarted), while the contract is still enrolled: whoever takes it starts the payment.
    Raises `ConditionNotMetError` when there is none to take or the contract left `enrolled`."""
    _update_while_enrolled(
        tables,
        contract_id,
        "REMOVE firstPaymentNotStarted SET firstPaymentRetriedAt = :now",
        {":now": isoformat(at)},
        also="attribute_exists(firstPaymentNotStarted)",
    )


def give_back_unstarted_first_payment(tables: Tables, contract_id: str, flagged_at: str, at: datetime) -> None:
    """Undo `take_unstarted_first_payment` when the start itself failed: the next sweep tries again. The
    offer is marked again: a run that overlapped this one may have found it settled (no record) meanwhile."""
    update, values = _watch("SET firstPaymentNotStarted = :flagged", {":flagged": flagged_at, ":now": isoformat(at)})
    with aws_errors_as_domain_errors():
        tables.offers.update_item(
            Key={"OfferId": contract_id}, UpdateExpression=update, ExpressionAttributeValues=values
        )


def unmark_eventual_workflow(
    tables: Tables, contract_id: str, execution_name: str, replacing: str | None = None
) -> None:
    """Take back `mark_eventual_workflow` (the start it announced failed): the mark goes, or goes back
    to the run it replaced. Only while the run has not confirmed: a start whose answer was lost may have
    started a run that confirmed meanwhile, and the reconciler may have unmarked that settled offer
    (it would never see the offer again). Raises `ConditionNotMetError` when it did, or when another
    start holds the mark."""
    values: dict[str, Any] = {":name": execution_name}
    if replacing is None:
        update = "REMOVE eventualWorkflow"
    else:
        update, values[":old"] = "SET eventualWorkflow.executionName = :old", replacing
    with aws_errors_as_domain_errors():
        tables.offers.update_item(
            Key={"OfferId": contract_id},
            UpdateExpression=update,
            ConditionExpression=(
                "eventualWorkflow.executionName = :name AND attribute_not_exists(eventualWorkflow.confirmedAt)"
            ),
            ExpressionAttributeValues=values,
        )


def start_cancel(tables: Tables, contract_id: str, at: datetime) -> dict[str, Any]:
    """enrolled -> cancelling: from here no action is claimed any more (claims require `enrolled`), nor
    the first payment. The offer as it is now."""
    update, values = _watch(
        "SET #status = :cancelling, cancelRequestedAt = :now", {":cancelling": CANCELLING, ":now": isoformat(at)}
    )
    return _update_while_enrolled(tables, contract_id, update, values)


def _update_while_enrolled(
    tables: Tables, contract_id: str, update: str, values: dict[str, Any], also: str | None = None
) -> dict[str, Any]:
    """`update` on the offer, only while it is `enrolled` (and `also` holds): the offer after it. Raises
    `ConditionNotMetError` otherwise."""
    with aws_errors_as_domain_errors():
        return tables.offers.update_item(
            Key={"OfferId": contract_id},
            UpdateExpression=update,
            ConditionExpression="#status = :enrolled" + (f" AND {also}" if also else ""),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":enrolled": ENROLLED, **values},
            ReturnValues="ALL_NEW",
        )["Attributes"]


def finish_cancel(
    tables: Tables, contract_id: str, outcome: dict[str, Any], entry: dict[str, Any], at: datetime
) -> None:
    """cancelling -> cancelled with the answer it gave, and its audit entry, in one transaction."""
    with aws_errors_as_domain_errors():
        tables.client.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": tables.offers.name,
                        "Key": {"OfferId": contract_id},
                        "UpdateExpression": "SET #status = :cancelled, cancelledAt = :now, cancelOutcome = :outcome",
                        "ConditionExpression": "#status = :cancelling",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {
                            ":cancelled": CANCELLED,
                            ":cancelling": CANCELLING,
                            ":now": isoformat(at),
                            ":outcome": outcome,
                        },
                    }
                },
                audit_put(tables, entry),
            ]
        )


def take_offer(tables: Tables, item: dict[str, Any], now: datetime) -> None:
    """Put the Offers item that takes the one-contract-at-a-time guard for its execution: when the contract
    has no offer, or when its offer is the same owner's (an item without `ownerId`: only an offer without
    one) and either ended without an enrollment or its run's lease lapsed. Raises `ConditionNotMetError`
    otherwise, carrying the offer as it is (`item_from_condition_failure`)."""
    owner_id = item.get("ownerId")
    # Only the owner (an ownerless request: only for an ownerless offer) may take a finished offer again.
    owned = "ownerId = :owner" if owner_id else "attribute_not_exists(ownerId)"
    with aws_errors_as_domain_errors():
        tables.offers.put_item(
            Item=item,
            ConditionExpression=(
                f"attribute_not_exists(OfferId) OR ({owned} AND (#status IN (:failed, :ineligible, :rejected)"
                " OR (#status IN (:received, :verified) AND leaseExpiresAt < :now)))"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                **({":owner": owner_id} if owner_id else {}),
                ":failed": FAILED,
                ":ineligible": INELIGIBLE,
                ":rejected": REJECTED,
                ":received": RECEIVED,
                ":verified": VERIFIED,
                ":now": isoformat(now),
            },
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )


def set_offer_status(
    tables: Tables,
    contract_id: str,
    execution_id: str,
    status: str,
    reason: str | None,
    now: datetime,
    from_statuses: tuple[str, ...],
    stamp: str | None = None,
    public_reason: str | None = None,
) -> dict[str, Any]:
    """Move the offer `execution_id` owns from one of `from_statuses` (or `status` itself, a replay) to
    `status` (and set `stamp`, if given, to now); the item as it was before. Raises
    `ConditionNotMetError` when the offer is not (or no longer) this execution's."""
    names = {"#status": "status"}
    values: dict[str, Any] = {":status": status, ":now": isoformat(now), ":execution": execution_id}
    allowed = []
    for index, source in enumerate((*from_statuses, status)):
        values[f":from{index}"] = source
        allowed.append(f":from{index}")
    update = "SET #status = :status, updatedAt = :now"
    if stamp:
        update += f", {stamp} = :now"
    if reason:
        update += ", statusReason = :reason"
        values[":reason"] = reason[:1000]
    if public_reason:
        update += ", publicReason = :public"
        values[":public"] = public_reason[:1000]
    with aws_errors_as_domain_errors():
        return tables.offers.update_item(
            Key={"OfferId": contract_id},
            UpdateExpression=update,
            ConditionExpression=f"executionId = :execution AND #status IN ({', '.join(allowed)})",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        ).get("Attributes", {})


def commit_enrollment(
    tables: Tables,
    offer: dict[str, Any],
    execution_id: str,
    rules_version: str,
    entry: dict[str, Any],
    now: datetime,
) -> None:
    """One transaction: offer `enrolled` (verified by `execution_id`), the UCP's contract item (status
    enrolled, payments), one pending item per same-day action, and the run's audit `entry`. Raises
    `ConditionNotMetError` when any of them is refused (a replay finds the offer enrolled already)."""
    contract_id, correlation_id = offer["contractId"], offer["correlationId"]
    ucp_entry = storable(
        {
            "status": ENROLLED,
            "enrolledAt": isoformat(now),
            "payments": offer["payments"],
            "correlationId": correlation_id,
        }
    )
    update, values = _watch(
        "SET #status = :enrolled, enrolledAt = :now, rulesVersion = :rules",
        {
            ":enrolled": ENROLLED,
            ":verified": VERIFIED,
            ":now": isoformat(now),
            ":rules": rules_version,
            ":execution": execution_id,
        },
    )
    items: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": tables.offers.name,
                "Key": {"OfferId": contract_id},
                "UpdateExpression": update,
                "ConditionExpression": "executionId = :execution AND #status = :verified",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": values,
            }
        },
        # The account must exist; the contract's own item is created, never one the account holds already.
        {
            "ConditionCheck": {
                "TableName": tables.ucp.name,
                "Key": account_key(offer["accountId"]),
                "ConditionExpression": "attribute_exists(recordId)",
            }
        },
        {
            "Put": {
                "TableName": tables.ucp.name,
                "Item": contract_key(offer["accountId"], contract_id) | ucp_entry,
                "ConditionExpression": "attribute_not_exists(recordId)",
            }
        },
    ]
    # Only the same-day actions get their item here: an eventual action's item is created when its hook
    # is scheduled (the async workflow's MarkActionScheduled), so the transaction, which bills every
    # item twice, does not also write an item per eventual action.
    for action in offer["immediateActions"]:
        items.append(
            {
                "Put": {
                    "TableName": tables.actions.name,
                    "Item": storable(
                        {
                            "contractId": contract_id,
                            "actionName": action["name"],
                            "offset": action["offset"],
                            "dueAt": action["dueAt"],
                            "data": action["data"],
                            "enrollmentDate": offer["enrollmentDate"],
                            "state": ACTION_PENDING,
                            "correlationId": correlation_id,
                        }
                    ),
                    # An item of an earlier enrollment of this contract (another due time) is replaced.
                    "ConditionExpression": "attribute_not_exists(actionName) OR #state = :cancelled OR dueAt <> :due",
                    "ExpressionAttributeNames": {"#state": "state"},
                    "ExpressionAttributeValues": {":cancelled": ACTION_CANCELLED, ":due": action["dueAt"]},
                }
            }
        )
    items.append(audit_put(tables, entry))
    with aws_errors_as_domain_errors():
        tables.client.transact_write_items(TransactItems=items)


def revert_enrollment(
    tables: Tables, offer: dict[str, Any], execution_id: str, reason: str, entry: dict[str, Any], now: datetime
) -> None:
    """One transaction: the offer `failed` with the reason (which releases the guard), the UCP's contract
    item deleted, the same-day actions (the only ones the commit wrote) cancelled, and the audit
    `entry`. Raises `ConditionNotMetError` when the offer is not enrolled by `execution_id`."""
    contract_id = offer["contractId"]
    # Marked for the reconciler: what an earlier stream record scheduled for this enrollment is undone.
    update, values = _watch(
        "SET #status = :failed, failedAt = :now, failureReason = :reason",
        {
            ":failed": FAILED,
            ":enrolled": ENROLLED,
            ":now": isoformat(now),
            ":reason": reason[:1000],
            ":execution": execution_id,
        },
    )
    items: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": tables.offers.name,
                "Key": {"OfferId": contract_id},
                "UpdateExpression": update,
                "ConditionExpression": "executionId = :execution AND #status = :enrolled",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": values,
            }
        },
        {"Delete": {"TableName": tables.ucp.name, "Key": contract_key(offer["accountId"], contract_id)}},
    ]
    for action in offer["immediateActions"]:
        cancel = cancel_action_update(contract_id, action, offer["correlationId"], offer["enrollmentDate"], now)
        items.append({"Update": {"TableName": tables.actions.name, **cancel}})
    items.append(audit_put(tables, entry))
    with aws_errors_as_domain_errors():
        tables.client.transact_write_items(TransactItems=items)
