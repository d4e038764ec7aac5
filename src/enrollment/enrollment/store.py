"""Data access of the enrollment: the `Offers`, UCP, actions and audit tables.

Every state change is a conditional write (or one transaction of them) owned by the Step Functions
execution that accepted the offer, so a retried step replays harmlessly and any other caller is
refused. The audit table is append-only: entries are only ever put with `attribute_not_exists`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commonlib import aws
from commonlib.clock import isoformat

RECEIVED, VERIFIED, REJECTED, INELIGIBLE, ENROLLED, FAILED, CANCELLED = (
    "received",
    "verified",
    "rejected",
    "ineligible",
    "enrolled",
    "failed",
    "cancelled",
)
ACTION_PENDING, ACTION_SCHEDULED, ACTION_FULFILLED, ACTION_FAILED, ACTION_CANCELLED = (
    "pending",
    "scheduled",
    "fulfilled",
    "failed",
    "cancelled",
)

# The audit partition of rejected input. Never a contract id: those start with a letter or digit.
REJECTIONS = "_rejected"
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Tables:
    offers: Any
    ucp: Any
    actions: Any
    audit: Any

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
    """The conditional update that cancels one action, as `Table.update_item` keywords (a transaction
    item adds `TableName`). An eventual action has no item until its hook is scheduled, so this creates
    it `cancelled` when absent: a later scheduling or hook then finds the action taken."""
    return {
        "Key": {"contractId": contract_id, "actionName": action["name"]},
        "UpdateExpression": (
            "SET #state = :cancelled, cancelledAt = :now, #offset = if_not_exists(#offset, :offset),"
            " correlationId = if_not_exists(correlationId, :correlation)"
            + (", dueAt = if_not_exists(dueAt, :due)" if action.get("dueAt") else "")
        ),
        "ConditionExpression": "attribute_not_exists(actionName) OR #state IN (:pending, :scheduled)",
        "ExpressionAttributeNames": {"#state": "state", "#offset": "offset"},
        "ExpressionAttributeValues": {
            ":cancelled": ACTION_CANCELLED,
            ":pending": ACTION_PENDING,
            ":scheduled": ACTION_SCHEDULED,
            ":now": isoformat(at),
            ":offset": action["offset"],
            ":correlation": correlation_id,
            **({":due": action["dueAt"]} if action.get("dueAt") else {}),
        },
    }


def append_audit(tables: Tables, entry: dict[str, Any]) -> None:
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

    items: list[dict[str, Any]] = []
    query = {"KeyConditionExpression": Key("contractId").eq(contract_id), "ConsistentRead": True}
    while True:
        page = tables.audit.query(**query)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
