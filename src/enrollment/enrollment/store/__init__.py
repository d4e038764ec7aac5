"""Data access of the enrollment: the `Offers`, UCP, actions and audit tables.

Every state change is a conditional write (or one transaction of them) owned by the Step Functions
execution that accepted the offer, so a retried step replays harmlessly and any other caller is
refused. The audit table is append-only: entries are only ever put with `attribute_not_exists`.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from commonlib import aws
from commonlib.clock import isoformat
from commonlib.errors import ConditionNotMetError, aws_errors_as_domain_errors

RECEIVED, VERIFIED, REJECTED, INELIGIBLE, ENROLLED, FAILED, CANCELLING, CANCELLED = (
    "received",
    "verified",
    "rejected",
    "ineligible",
    "enrolled",
    "failed",
    "cancelling",
    "cancelled",
)
ACTION_PENDING, ACTION_SCHEDULED, ACTION_RUNNING, ACTION_FULFILLED, ACTION_FAILED, ACTION_CANCELLED = (
    "pending",
    "scheduled",
    "running",
    "fulfilled",
    "failed",
    "cancelled",
)
# An action waiting for its day: the same-day ones from the commit (pending), the eventual ones once
# their hook exists (scheduled).
ACTION_WAITING = (ACTION_PENDING, ACTION_SCHEDULED)
ACTION_DONE = (ACTION_FULFILLED, ACTION_FAILED, ACTION_CANCELLED)

# The audit partition of rejected input. Never a contract id: those start with a letter or digit.
REJECTIONS = "_rejected"
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Tables:
    offers: Any
    ucp: Any
    actions: Any
    audit: Any
    # The mock downstream system the actions call (ActionEffects): only the fulfillment function has it.
    effects: Any = None

    @property
    def client(self) -> Any:
        # The resource's client serialises plain Python values, also inside transactions.
        return self.offers.meta.client

    @classmethod
    def from_environment(cls) -> Tables:
        return cls(
            offers=aws.dynamodb_table(os.environ["OFFERS_TABLE_NAME"]),
            ucp=aws.dynamodb_table(os.environ["UCP_TABLE_NAME"]),
            actions=aws.dynamodb_table(os.environ["ACTIONS_TABLE_NAME"]),
            audit=aws.dynamodb_table(os.environ["AUDIT_TABLE_NAME"]),
            effects=(
                aws.dynamodb_table(os.environ["ACTION_EFFECTS_TABLE_NAME"])
                if os.environ.get("ACTION_EFFECTS_TABLE_NAME")
                else None
            ),
        )


def audit_entry(
    contract_id: str,
    step: str,
    outcome: str,
    correlation_id: str,
    at: datetime,
    rules_version: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    timestamp = isoformat(at)
    entry = {
        "contractId": contract_id,
        # Sorts by time; the random suffix keeps two entries of one millisecond apart.
        "entryId": f"{timestamp}#{step}#{secrets.token_hex(4)}",
        "at": timestamp,
        "step": step,
        "outcome": outcome,
        "correlationId": correlation_id,
    }
    if rules_version:
        entry["rulesVersion"] = rules_version
    if details:
        entry["details"] = details
    return entry


def step(name: str, at: str, outcome: str, rules_version: str | None = None) -> dict[str, Any]:
    """An earlier step of the same run, carried inside the entry that ends it (`details.steps`): one
    audit item per run instead of one per step, since every item is at least one write unit."""
    return {"step": name, "at": at, "outcome": outcome} | ({"rulesVersion": rules_version} if rules_version else {})


def steps_before(offer_item: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The steps an offer item records as done: received, and verified when it was."""
    if not offer_item or "receivedAt" not in offer_item:
        return []
    done = [step("receive-offer", offer_item["receivedAt"], "received")]
    if offer_item.get("verifiedAt"):
        done.append(step("verify-customer", offer_item["verifiedAt"], "verified"))
    return done


def expand(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """An audit item as the trail it records: the steps it carries, each as an entry of its own, then
    the item itself."""
    carried = (entry.get("details") or {}).get("steps") or []
    shared = {"contractId": entry["contractId"], "correlationId": entry.get("correlationId")}
    return [{**shared, **carried_step} for carried_step in carried] + [entry]


def cancel_action(contract_id: str, action: dict[str, Any], correlation_id: str, at: datetime) -> dict[str, Any]:
    """The conditional update that cancels one waiting action, as `Table.update_item` keywords (a
    transaction item adds `TableName`). An eventual action has no item until its hook is scheduled, so
    this creates it `cancelled` when absent, and replaces an item of an earlier enrollment of the
    contract (another due time): a later scheduling or hook then finds the action taken."""
    due = action.get("dueAt")
    values = {
        ":cancelled": ACTION_CANCELLED,
        ":pending": ACTION_PENDING,
        ":scheduled": ACTION_SCHEDULED,
        ":now": isoformat(at),
        ":offset": action["offset"],
        ":correlation": correlation_id,
    }
    condition = "attribute_not_exists(actionName) OR #state IN (:pending, :scheduled)"
    update = "SET #state = :cancelled, cancelledAt = :now, #offset = :offset, correlationId = :correlation"
    if due:
        condition += " OR dueAt <> :due"
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


def append_audit(tables: Tables, entry: dict[str, Any]) -> None:
    with aws_errors_as_domain_errors():
        tables.audit.put_item(Item=entry, ConditionExpression="attribute_not_exists(entryId)")


def rejection_entry(
    source: str, error: str, reason: str, correlation_id: str, at: datetime, details: dict[str, Any]
) -> dict[str, Any]:
    """The audit entry of rejected input (a malformed stream record or hook payload), in the
    `REJECTIONS` partition: its contract id, if it has one, cannot be trusted. `details` names the
    offending fields and what the input claimed to be about; never the raw input."""
    return audit_entry(
        REJECTIONS,
        f"reject:{source}",
        f"rejected: {error}",
        correlation_id,
        at,
        details={"error": error, "reason": reason[:MAX_REASON_CHARS], **details},
    )


def audit_put(tables: Tables, entry: dict[str, Any]) -> dict[str, Any]:
    """The same append, as one item of a transaction."""
    return {
        "Put": {
            "TableName": tables.audit.name,
            "Item": entry,
            "ConditionExpression": "attribute_not_exists(entryId)",
        }
    }


def item_from_condition_failure(error: BaseException) -> dict[str, Any]:
    """The old item a failed condition returned (`ReturnValuesOnConditionCheckFailure=ALL_OLD`)."""
    cause = error.__cause__ if error.__cause__ is not None else error
    response = getattr(cause, "response", {}) or {}
    raw = response.get("Item") or {}
    from boto3.dynamodb.types import TypeDeserializer  # boto3 is loaded: a call just failed

    deserializer = TypeDeserializer()
    return {key: deserializer.deserialize(value) if _is_low_level(value) else value for key, value in raw.items()}


def _is_low_level(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in {
        "S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"
    }  # fmt: skip


def audit_trail(tables: Tables, contract_id: str) -> list[dict[str, Any]]:
    """A contract's audit items in order (`expand` turns each into the steps it records)."""
    from boto3.dynamodb.conditions import Key

    return _query(tables.audit, KeyConditionExpression=Key("contractId").eq(contract_id), ConsistentRead=True)


# ---------------------------------------------------------------- offers


def get_offer(tables: Tables, contract_id: str) -> dict[str, Any] | None:
    with aws_errors_as_domain_errors():
        return tables.offers.get_item(Key={"OfferId": contract_id}, ConsistentRead=True).get("Item")


def scan_offers(tables: Tables, statuses: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Every offer in one of `statuses` (the reconciler's sweep)."""
    yield from _scan_where_in(tables.offers, "status", statuses)


def mark_eventual_workflow(
    tables: Tables, contract_id: str, execution_name: str, at: datetime, replacing: str | None = None
) -> None:
    """Record that `execution_name` schedules the offer's hooks. The first start requires no mark; a
    re-drive replaces the mark of the run it supersedes (`replacing`). Both require the offer enrolled."""
    condition = "#status = :enrolled AND " + (
        "attribute_not_exists(eventualWorkflow)" if replacing is None else "eventualWorkflow.executionName = :old"
    )
    values = {":enrolled": ENROLLED, ":mark": {"executionName": execution_name, "startedAt": isoformat(at)}}
    if replacing is not None:
        values[":old"] = replacing
    with aws_errors_as_domain_errors():
        tables.offers.update_item(
            Key={"OfferId": contract_id},
            UpdateExpression="SET eventualWorkflow = :mark",
            ConditionExpression=condition,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )


def unmark_eventual_workflow(
    tables: Tables, contract_id: str, execution_name: str, replacing: str | None = None
) -> None:
    """Take back `mark_eventual_workflow` (the start it announced failed): the mark goes, or goes back
    to the run it replaced."""
    values: dict[str, Any] = {":name": execution_name}
    if replacing is None:
        update = "REMOVE eventualWorkflow"
    else:
        update, values[":old"] = "SET eventualWorkflow.executionName = :old", replacing
    with aws_errors_as_domain_errors():
        tables.offers.update_item(
            Key={"OfferId": contract_id},
            UpdateExpression=update,
            ConditionExpression="eventualWorkflow.executionName = :name",
            ExpressionAttributeValues=values,
        )


def start_cancel(tables: Tables, contract_id: str, at: datetime) -> None:
    """enrolled -> cancelling: from here no action is claimed any more (claims require `enrolled`)."""
    with aws_errors_as_domain_errors():
        tables.offers.update_item(
            Key={"OfferId": contract_id},
            UpdateExpression="SET #status = :cancelling, cancelRequestedAt = :now",
            ConditionExpression="#status = :enrolled",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":cancelling": CANCELLING, ":enrolled": ENROLLED, ":now": isoformat(at)},
        )


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


def cancel_ucp_contract(tables: Tables, account_id: str, contract_id: str) -> None:
    with aws_errors_as_domain_errors():
        tables.ucp.update_item(
            Key={"accountId": account_id},
            UpdateExpression="SET contracts.#contract.#status = :cancelled",
            ConditionExpression="attribute_exists(contracts.#contract)",
            ExpressionAttributeNames={"#contract": contract_id, "#status": "status"},
            ExpressionAttributeValues={":cancelled": CANCELLED},
        )


def set_contract_rate(tables: Tables, account_id: str, contract_id: str, rate: Any, key: str, at: datetime) -> None:
    """The rate change's effect on the UCP: the contract's new rate, stamped with the idempotency key
    that set it (setting it again with the same key changes nothing)."""
    with aws_errors_as_domain_errors():
        tables.ucp.update_item(
            Key={"accountId": account_id},
            UpdateExpression="SET contracts.#contract.interestRate = :rate, contracts.#contract.rateChange = :change",
            ConditionExpression="attribute_exists(contracts.#contract)",
            ExpressionAttributeNames={"#contract": contract_id},
            ExpressionAttributeValues={":rate": rate, ":change": {"idempotencyKey": key, "at": isoformat(at)}},
        )


# ---------------------------------------------------------------- actions


def get_action(tables: Tables, contract_id: str, name: str) -> dict[str, Any] | None:
    with aws_errors_as_domain_errors():
        return tables.actions.get_item(Key={"contractId": contract_id, "actionName": name}, ConsistentRead=True).get(
            "Item"
        )


def contract_actions(tables: Tables, contract_id: str) -> dict[str, dict[str, Any]]:
    from boto3.dynamodb.conditions import Key  # loaded by the table resource already

    with aws_errors_as_domain_errors():
        items = _query(tables.actions, KeyConditionExpression=Key("contractId").eq(contract_id), ConsistentRead=True)
    return {item["actionName"]: item for item in items}


def scan_actions(tables: Tables, states: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Every action in one of `states` (the reconciler's sweep)."""
    yield from _scan_where_in(tables.actions, "state", states)


def claim_action(
    tables: Tables, contract_id: str, name: str, observed: dict[str, Any], token: str, at: datetime, lease: timedelta
) -> None:
    """Claim a waiting action for one delivery: the action goes `running`, owned by `token` until the
    lease ends, only if it is still as `observed` (same state, same due time, so the same enrollment),
    it is due, and the contract is enrolled. Raises `ConditionNotMetError` otherwise."""
    with aws_errors_as_domain_errors():
        tables.client.transact_write_items(
            TransactItems=[
                {"ConditionCheck": {"TableName": tables.offers.name, **_enrolled_as(contract_id, observed)}},
                {
                    "Update": {
                        "TableName": tables.actions.name,
                        "Key": {"contractId": contract_id, "actionName": name},
                        **_CLAIM_UPDATE,
                        "ConditionExpression": "#state = :observed AND dueAt = :due AND dueAt <= :now",
                        "ExpressionAttributeValues": {
                            **_claim_values(token, at, lease),
                            ":observed": observed["state"],
                            ":due": observed["dueAt"],
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


def release_claim(tables: Tables, contract_id: str, name: str, token: str, error: str) -> None:
    """Give a claimed action back (running -> scheduled) after its performance failed, so the next
    delivery retries it with the same idempotency key."""
    with aws_errors_as_domain_errors():
        tables.actions.update_item(
            Key={"contractId": contract_id, "actionName": name},
            UpdateExpression="SET #state = :scheduled, lastError = :error REMOVE claimToken, leaseUntil",
            ConditionExpression="#state = :running AND claimToken = :token",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":scheduled": ACTION_SCHEDULED,
                ":running": ACTION_RUNNING,
                ":token": token,
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
    tables: Tables, contract_id: str, name: str, reason: str, entry: dict[str, Any], at: datetime
) -> None:
    """A waiting action of a contract that is no longer enrolled: cancelled, never performed."""
    ending = _end_waiting_action(contract_id, name, ACTION_CANCELLED, reason, at)
    with aws_errors_as_domain_errors():
        tables.client.transact_write_items(
            TransactItems=[{"Update": {"TableName": tables.actions.name, **ending}}, audit_put(tables, entry)]
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


# ---------------------------------------------------------------- the mock downstream system


def record_effect(tables: Tables, key: str, contract_id: str, action_name: str, claimed_at: str, at: datetime) -> bool:
    """What the downstream system does with one call: performs the effect once per idempotency key
    (one item), and counts every call it received with that key (`calls`), so a second performance is
    visible even though the key kept it harmless. True when this call performed the effect."""
    try:
        with aws_errors_as_domain_errors():
            tables.effects.put_item(
                Item={
                    "idempotencyKey": key,
                    "contractId": contract_id,
                    "actionName": action_name,
                    "claimedAt": claimed_at,
                    "performedAt": isoformat(at),
                    "calls": 1,
                },
                ConditionExpression="attribute_not_exists(idempotencyKey)",
            )
    except ConditionNotMetError:
        with aws_errors_as_domain_errors():
            tables.effects.update_item(
                Key={"idempotencyKey": key},
                UpdateExpression="ADD calls :one SET lastCallAt = :now",
                ExpressionAttributeValues={":one": 1, ":now": isoformat(at)},
            )
        return False
    return True


# ---------------------------------------------------------------- paging


def _query(table: Any, **query: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = table.query(**query)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _scan_where_in(table: Any, attribute: str, values: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """Every item whose `attribute` is one of `values`: a paginated, consistent scan. A sweep's cost grows
    with the table; a sparse index of the open items is the next step when that matters."""
    placeholders = {f":v{index}": value for index, value in enumerate(values)}
    scan: dict[str, Any] = {
        "FilterExpression": f"#attribute IN ({', '.join(placeholders)})",
        "ExpressionAttributeNames": {"#attribute": attribute},
        "ExpressionAttributeValues": placeholders,
        "ConsistentRead": True,
    }
    while True:
        with aws_errors_as_domain_errors():
            page = table.scan(**scan)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
