"""The audit table: append-only. Entries are only ever put with `attribute_not_exists`; one item per run
of a workflow, carrying the earlier steps of that run (`details.steps`)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from commonlib.clock import isoformat
from commonlib.errors import aws_errors_as_domain_errors
from enrollment.store.tables import MAX_REASON_CHARS, REJECTIONS, Tables, query_all


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


def audit_trail(tables: Tables, contract_id: str) -> list[dict[str, Any]]:
    """A contract's audit items in order (`expand` turns each into the steps it records)."""
    from boto3.dynamodb.conditions import Key

    return query_all(tables.audit, KeyConditionExpression=Key("contractId").eq(contract_id), ConsistentRead=True)
