"""The invariants every scenario must leave true, checked across all tables, the stream and the schedules.

`assert_invariants` runs at the end of every integration test (an autouse fixture in
tests/integration/conftest.py). Background work (stream consumer, hooks) may be between two writes
when a test ends, so a violation must persist across a few reads over several seconds to count.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from tests.support.enrollment import raw_stream_records, scan

SETTLE_CHECKS = 4
SETTLE_INTERVAL_SECONDS = 2.0
ENROLLED_OR_CANCELLED = {"enrolled", "cancelled"}


@dataclass(frozen=True)
class World:
    offers: dict[str, dict[str, Any]]
    ucp: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    stream: list[Any]
    schedules: list[dict[str, Any]]
    payment_executions: list[str]


def read_world(client: Any, outputs: dict[str, str]) -> World:
    dynamodb = client("dynamodb")
    return World(
        offers={o["OfferId"]: o for o in scan(dynamodb, outputs["OffersTableName"])},
        ucp=scan(dynamodb, outputs["UcpTableName"]),
        actions=scan(dynamodb, outputs["ActionsTableName"]),
        audit=scan(dynamodb, outputs["AuditTableName"]),
        stream=_raw_stream(client("kinesis"), outputs["EnrollmentStreamName"]),
        schedules=_schedules(client("scheduler"), outputs["HookScheduleGroupName"]),
        payment_executions=_execution_names(client("stepfunctions"), outputs["PaymentStateMachineArn"]),
    )


def violations(world: World) -> list[str]:
    found: list[str] = []
    found += _orphan_schedules(world)
    found += _enrolled_without_audit(world)
    found += _ucp_without_enrolled_offer(world)
    found += _actions_fulfilled_twice(world)
    found += _publications(world)
    found += _payments_without_enrollment(world)
    found += _half_written_contracts(world)
    return found


def assert_invariants(client: Any, outputs: dict[str, str]) -> None:
    """Fail with every violated invariant, unless each one clears within the settle window."""
    found: list[str] = []
    for attempt in range(SETTLE_CHECKS):
        found = violations(read_world(client, outputs))
        if not found:
            return
        if attempt < SETTLE_CHECKS - 1:
            time.sleep(SETTLE_INTERVAL_SECONDS)
    raise AssertionError("invariants violated:\n  " + "\n  ".join(found))


def _orphan_schedules(world: World) -> list[str]:
    """A hook exists only for an enrolled contract's action that is scheduled (or firing right now)."""
    states = {(a["contractId"], a["actionName"]): a["state"] for a in world.actions}
    found = []
    for schedule in world.schedules:
        contract_id, action = schedule["contractId"], schedule["actionName"]
        state = states.get((contract_id, action))
        offer_status = world.offers.get(contract_id, {}).get("status")
        if state not in {"scheduled", "fulfilled"} or offer_status != "enrolled":
            found.append(f"orphan schedule {schedule['name']}: action state {state}, offer status {offer_status}")
    return found


def _enrolled_without_audit(world: World) -> list[str]:
    enrolled_audits = {
        e["contractId"] for e in world.audit if e["step"] == "enroll" and e["outcome"].startswith("enrolled")
    }
    return [
        f"offer {contract_id} is {offer['status']} without an enroll audit entry"
        for contract_id, offer in world.offers.items()
        if offer["status"] in ENROLLED_OR_CANCELLED and contract_id not in enrolled_audits
    ]


def _ucp_without_enrolled_offer(world: World) -> list[str]:
    found = []
    for account in world.ucp:
        for contract_id, entry in (account.get("contracts") or {}).items():
            status = world.offers.get(contract_id, {}).get("status")
            if status not in ENROLLED_OR_CANCELLED or entry.get("status") != status:
                found.append(
                    f"UCP {account['accountId']} holds {contract_id} as {entry.get('status')} but the offer is {status}"
                )
    return found


def _actions_fulfilled_twice(world: World) -> list[str]:
    fulfilled = Counter(
        (e["contractId"], e["step"].removeprefix("action:"))
        for e in world.audit
        if e["step"].startswith("action:") and e["outcome"].startswith("fulfilled")
    )
    found = [f"action {c}/{a} fulfilled {n} times" for (c, a), n in fulfilled.items() if n > 1]
    for action in world.actions:
        key = (action["contractId"], action["actionName"])
        if action["state"] == "fulfilled" and fulfilled[key] != 1:
            found.append(f"action {key[0]}/{key[1]} is fulfilled with {fulfilled[key]} fulfillment audit entries")
    return found


def _publications(world: World) -> list[str]:
    """One publication per enrollment: identical re-deliveries are one, distinct payloads are not."""
    payloads: dict[str, set[str]] = defaultdict(set)
    for record in world.stream:
        if isinstance(record, dict) and isinstance(record.get("contractId"), str) and "eventualActions" in record:
            payloads[record["contractId"]].add(json.dumps(record, sort_keys=True))
    found = [f"contract {c} published {len(p)} different records" for c, p in payloads.items() if len(p) > 1]
    # A record the stream consumer rejected by name (malformed, or for no known contract) and audited
    # is not a publication (tests/integration/test_malformed_inputs.py puts such records).
    rejected = {
        e["details"].get("claimed", {}).get("contractId")
        for e in world.audit
        if e["contractId"] == "_rejected" and e["step"] == "reject:stream-record"
    }
    for contract_id in payloads:
        status = world.offers.get(contract_id, {}).get("status")
        if status is None and contract_id in rejected:
            continue
        if status not in ENROLLED_OR_CANCELLED:
            found.append(f"contract {contract_id} was published but its offer is {status}")
    return found


def _payments_without_enrollment(world: World) -> list[str]:
    found = []
    for name in world.payment_executions:
        contract_id, marker, _ = name.rpartition("-payment-")
        if marker and contract_id in world.offers and world.offers[contract_id]["status"] not in ENROLLED_OR_CANCELLED:
            found.append(f"payment {name} started for a {world.offers[contract_id]['status']} offer")
    return found


def _half_written_contracts(world: World) -> list[str]:
    """An offer that ended without enrolling leaves no live action behind."""
    found = []
    for action in world.actions:
        status = world.offers.get(action["contractId"], {}).get("status")
        if status in {"failed", "rejected", "ineligible"} and action["state"] not in {"cancelled"}:
            found.append(
                f"action {action['contractId']}/{action['actionName']} is {action['state']} for a {status} offer"
            )
    return found


def _raw_stream(kinesis: Any, stream_name: str) -> list[Any]:
    records: list[Any] = []
    for _, _, data in raw_stream_records(kinesis, stream_name):
        try:
            records.append(json.loads(data))
        except ValueError:
            records.append(None)  # a deliberately malformed record: not a publication
    return records


def _schedules(scheduler: Any, group_name: str) -> list[dict[str, Any]]:
    found = []
    for page in scheduler.get_paginator("list_schedules").paginate(GroupName=group_name):
        for summary in page["Schedules"]:
            try:
                schedule = scheduler.get_schedule(GroupName=group_name, Name=summary["Name"])
            except scheduler.exceptions.ResourceNotFoundException:
                continue  # fired and deleted itself between the listing and the read
            hook = json.loads(schedule["Target"]["Input"])
            found.append(
                {"name": summary["Name"], "contractId": hook.get("contractId"), "actionName": _action_name(hook)}
            )
    return found


def _action_name(hook: dict[str, Any]) -> str | None:
    action = hook.get("action")
    return action.get("name") if isinstance(action, dict) else None


def _execution_names(stepfunctions: Any, state_machine_arn: str) -> list[str]:
    paginator = stepfunctions.get_paginator("list_executions")
    return [e["name"] for page in paginator.paginate(stateMachineArn=state_machine_arn) for e in page["executions"]]
