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

from enrollment.store.ucp import CONTRACT_RECORD_PREFIX
from tests.support.enrollment import raw_stream_records, scan

SETTLE_CHECKS = 4
SETTLE_INTERVAL_SECONDS = 2.0
ENROLLED_OR_CANCELLED = {"enrolled", "cancelling", "cancelled"}
# A hook fires up to a scheduler tick late and its delivery takes a moment more (longer under load).
FIRING_SECONDS = 120
# How long the eventual workflow may take to confirm (DataLambda's batching, the async run, hooks).
CONFIRMATION_SECONDS = 180


@dataclass(frozen=True)
class World:
    offers: dict[str, dict[str, Any]]
    ucp: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    effects: list[dict[str, Any]]
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
        effects=scan(dynamodb, outputs["ActionEffectsTableName"]),
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
    found += _effects_once_and_only_while_enrolled(world)
    found += _scheduled_without_a_live_hook(world)
    found += _unconfirmed_eventual_workflows(world)
    return found


def assert_invariants(client: Any, outputs: dict[str, str]) -> None:
    """Fail with every violated invariant, unless each one clears within the settle window."""
    found: list[str] = []
    for attempt in range(SETTLE_CHECKS):
        world = read_world(client, outputs)
        found = violations(world)
        if not found:
            return
        if attempt < SETTLE_CHECKS - 1:
            time.sleep(SETTLE_INTERVAL_SECONDS)
    diagnosis = unconfirmed_diagnosis(client, outputs, unconfirmed_contracts(world))
    raise AssertionError("invariants violated:\n  " + "\n  ".join(found + diagnosis))


# What the functions of the eventual path logged about a contract, for the diagnosis below.
DIAGNOSED_FUNCTIONS = ("DataLambda", "Reconcile")
DIAGNOSIS_LINES = 8


def unconfirmed_diagnosis(client: Any, outputs: dict[str, str], contract_ids: list[str]) -> list[str]:
    """An unconfirmed eventual workflow has failed a run once in many, and the emulator keeps no logs
    after its stack goes: while it still stands, what DataLambda and the reconciler logged about each such
    contract, and what one run of the reconciler (what its schedule does every minute) answers now."""
    if not contract_ids:
        return []
    prefix = outputs["ReconcileFunctionName"].removesuffix("Reconcile")
    found = []
    logs = client("logs")
    for contract_id in contract_ids[:3]:
        for function in DIAGNOSED_FUNCTIONS:
            try:
                events = logs.filter_log_events(
                    logGroupName=f"/aws/lambda/{prefix}{function}", filterPattern=f'"{contract_id}"'
                )["events"]
                lines = [event["message"][:1000] for event in events][-DIAGNOSIS_LINES:]
            except Exception as error:  # a diagnosis: what it could not read is said, never raised
                lines = [f"(not read: {type(error).__name__}: {error})"]
            found.append(f"{function} logged about {contract_id}: {lines}")
    try:
        answer = client("lambda").invoke(FunctionName=outputs["ReconcileFunctionName"], Payload=b"{}")
        payload = answer["Payload"].read().decode(errors="replace")[:3000]
        found.append(f"the reconciler, run once now, answered {answer.get('FunctionError', 'normally')}: {payload}")
    except Exception as error:
        found.append(f"the reconciler could not be run: {type(error).__name__}: {error}")
    return found


def _orphan_schedules(world: World) -> list[str]:
    """A hook exists only for an enrolled contract's action of this enrollment (its due time) that waits
    for it (or is firing right now); a cancel in progress removes its contract's hooks. The one exception
    is the hook of a `running` action whatever its contract: it settles a claim whose delivery died."""
    items = {(a["contractId"], a["actionName"]): a for a in world.actions}
    found = []
    for schedule in world.schedules:
        contract_id, action = schedule["contractId"], schedule["actionName"]
        item = items.get((contract_id, action), {})
        offer_status = world.offers.get(contract_id, {}).get("status")
        this_enrollment = item.get("dueAt") == schedule["dueAt"]
        if item.get("state") == "running" and this_enrollment:
            continue
        waiting = item.get("state") in {"scheduled", "fulfilled"} and this_enrollment
        if not waiting or offer_status not in {"enrolled", "cancelling"}:
            found.append(
                f"orphan schedule {schedule['name']}: action {item.get('state')} due {item.get('dueAt')}"
                f" (hook due {schedule['dueAt']}), offer {offer_status}"
            )
    return found


def _effects_once_and_only_while_enrolled(world: World) -> list[str]:
    """Counted on the effect, not on the records written after it: every effect belongs to an action that
    was claimed for it (fulfilled, or running until its completion is written), the downstream was never
    called more often than the action was claimed, every fulfilled action performed exactly one effect
    under its own key, and no effect was claimed after its contract left `enrolled`."""
    items = {(a["contractId"], a["actionName"]): a for a in world.actions}
    found = []
    performed = set()
    for effect in world.effects:
        key = (effect["contractId"], effect["actionName"])
        label = f"effect {effect['idempotencyKey']}"
        item = items.get(key, {})
        if effect["idempotencyKey"] != f"{key[0]}/{key[1]}/{item.get('dueAt')}":
            found += _effect_of_an_earlier_enrollment(world, effect)  # its item was replaced by a later one
            continue
        performed.add(key)
        if item.get("state") not in {"fulfilled", "running"}:
            found.append(f"{label} but its action is {item.get('state')}")
        if int(effect["calls"]) > int(item.get("attempts", 0)):
            found.append(f"{label}: {effect['calls']} downstream calls for {item.get('attempts')} claims")
        offer = world.offers.get(key[0], {})
        left = offer.get("cancelRequestedAt") or offer.get("failedAt")
        if offer.get("status") not in {"enrolled"} and left and effect["claimedAt"] > left:
            found.append(f"{label} claimed at {effect['claimedAt']}, after the contract left enrolled at {left}")
    for key, item in items.items():
        if item["state"] == "fulfilled" and key not in performed:
            found.append(f"action {key[0]}/{key[1]} is fulfilled without its effect")
    return found


def _effect_of_an_earlier_enrollment(world: World, effect: dict[str, Any]) -> list[str]:
    """An effect whose key names another due time than its action's item: the effect of an earlier
    enrollment of the contract, whose item a later enrollment replaced. It must have been claimed while
    that enrollment stood, before the revert (or cancel) that ended it. A revert ended every earlier
    enrollment (a cancelled contract is never enrolled again); the audit keeps each one (`revert` entries
    at the time the offer went `failed`).

    Which enrollment: its enrollment date is the one of the publication that planned the action at that
    due time (an eventual action), else the due time itself (a same-day action is due on its enrollment
    date). Its commit is the first `enroll` entry from that date on (a run commits after it starts), and
    its end the first revert or cancel request after that commit."""
    contract_id, action_name, due = effect["contractId"], effect["actionName"], effect["idempotencyKey"].rsplit("/")[-1]
    label = f"effect {effect['idempotencyKey']}"
    started = _planned_enrollment_date(world, contract_id, action_name, due) or due
    trail = [e for e in world.audit if e["contractId"] == contract_id]
    commits = sorted(e["at"] for e in trail if e["step"] == "enroll" and e["outcome"].startswith("enrolled"))
    commit = next((at for at in commits if at >= started), None)
    if commit is None:
        return [f"{label} is of no enrollment: no commit of {contract_id} from {started} on"]
    offer = world.offers.get(contract_id, {})
    ends = sorted([e["at"] for e in trail if e["step"] == "revert"] + [offer.get("cancelRequestedAt") or ""])
    end = next((at for at in ends if at > commit), None)
    if end is None:
        return [f"{label} is of an enrollment committed at {commit} that nothing ended, yet its item is replaced"]
    if effect["claimedAt"] >= end:
        return [f"{label} claimed at {effect['claimedAt']}, after its enrollment (committed {commit}) ended at {end}"]
    return []


def _planned_enrollment_date(world: World, contract_id: str, action_name: str, due: str) -> str | None:
    for record in world.stream:
        if not isinstance(record, dict) or record.get("contractId") != contract_id:
            continue
        for action in record.get("eventualActions") or []:
            if isinstance(action, dict) and (action.get("name"), action.get("dueAt")) == (action_name, due):
                return record.get("enrollmentDate")
    return None


def _scheduled_without_a_live_hook(world: World) -> list[str]:
    """A scheduled action of an enrolled contract has its hook, unless it is firing right now."""
    hooks = {(h["contractId"], h["actionName"], h["dueAt"]) for h in world.schedules}
    now = time.time()
    found = []
    for item in world.actions:
        offer = world.offers.get(item["contractId"], {})
        if item["state"] != "scheduled" or offer.get("status") != "enrolled":
            continue
        if (item["contractId"], item["actionName"], item["dueAt"]) in hooks:
            continue
        if now - _epoch(item["dueAt"]) < FIRING_SECONDS and _epoch(item["dueAt"]) <= now:
            continue
        found.append(
            f"action {item['contractId']}/{item['actionName']} is scheduled (due {item['dueAt']}) with no hook"
        )
    return found


def _unconfirmed_eventual_workflows(world: World) -> list[str]:
    """Every enrollment's eventual workflow confirms that each hook exists (or is re-driven until it does)."""
    return [
        f"offer {contract_id} enrolled at {world.offers[contract_id]['enrolledAt']} has no confirmed eventual "
        f"workflow ({_eventual_path(world, world.offers[contract_id])})"
        for contract_id in unconfirmed_contracts(world)
    ]


def unconfirmed_contracts(world: World) -> list[str]:
    now = time.time()
    return [
        contract_id
        for contract_id, offer in world.offers.items()
        if offer["status"] == "enrolled"
        and now - _epoch(offer["enrolledAt"]) > CONFIRMATION_SECONDS
        and not (offer.get("eventualWorkflow") or {}).get("confirmedAt")
    ]


def _eventual_path(world: World, offer: dict[str, Any]) -> str:
    """What the offer's eventual path left to read, for a failure that shows only once in many runs: its
    mark, the reconciler's mark, and the audit entries of the runs, their re-drives and the reconciler."""
    steps = sorted(
        (entry["at"], entry["step"], entry["outcome"])
        for entry in world.audit
        if entry["contractId"] == offer["OfferId"] and entry["step"] in ("eventual-workflow", "reconcile")
    )
    return (
        f"eventualWorkflow {offer.get('eventualWorkflow')}, watch {offer.get('watch')} since "
        f"{offer.get('watchedSince')}, audit {steps}"
    )


def _epoch(timestamp: str) -> float:
    from commonlib.clock import parse_isoformat

    return parse_isoformat(timestamp).timestamp()


def _enrolled_without_audit(world: World) -> list[str]:
    enrolled_audits = {
        e["contractId"] for e in world.audit if e["step"] == "enroll" and e["outcome"].startswith("enrolled")
    }
    return [
        f"offer {contract_id} is {offer['status']} without an enroll audit entry"
        for contract_id, offer in world.offers.items()
        if offer["status"] in ENROLLED_OR_CANCELLED and contract_id not in enrolled_audits
    ]


def ucp_contracts(ucp_items: list[dict[str, Any]], account_id: str | None = None) -> dict[str, dict[str, Any]]:
    """The contracts the UCP items hold (each is an item `recordId = "contract#<id>"` of its account), by
    contract id; only `account_id`'s when given."""
    return {
        item["recordId"].removeprefix(CONTRACT_RECORD_PREFIX): item
        for item in ucp_items
        if item["recordId"].startswith(CONTRACT_RECORD_PREFIX) and account_id in (None, item["accountId"])
    }


def _ucp_without_enrolled_offer(world: World) -> list[str]:
    found = []
    for contract_id, entry in ucp_contracts(world.ucp).items():
        status = world.offers.get(contract_id, {}).get("status")
        expected = {"enrolled", "cancelled"} if status == "cancelling" else {status}
        if status not in ENROLLED_OR_CANCELLED or entry.get("status") not in expected:
            found.append(
                f"UCP {entry['accountId']} holds {contract_id} as {entry.get('status')} but the offer is {status}"
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
    """One publication per enrollment: a record published again (a retried publish whose first answer was
    lost) is the same publication; a contract has another only for each enrollment that was reverted."""
    payloads: dict[str, set[str]] = defaultdict(set)
    for record in world.stream:
        if isinstance(record, dict) and isinstance(record.get("contractId"), str) and "eventualActions" in record:
            publication = {key: value for key, value in record.items() if key != "publishedAt"}
            payloads[record["contractId"]].add(json.dumps(publication, sort_keys=True))
    reverts = Counter(e["contractId"] for e in world.audit if e["step"] == "revert")
    found = [
        f"contract {c} published {len(p)} different records ({reverts[c]} reverted enrollments)"
        for c, p in payloads.items()
        if len(p) > 1 + reverts[c]
    ]
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
        claimed_before = action.get("claimedAt", "~") < world.offers.get(action["contractId"], {}).get("failedAt", "")
        if status in {"failed", "rejected", "ineligible"} and action["state"] != "cancelled" and not claimed_before:
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
            action = hook.get("action") if isinstance(hook.get("action"), dict) else {}
            found.append(
                {
                    "name": summary["Name"],
                    "contractId": hook.get("contractId"),
                    "actionName": action.get("name"),
                    "dueAt": action.get("dueAt"),
                }
            )
    return found


def _execution_names(stepfunctions: Any, state_machine_arn: str) -> list[str]:
    paginator = stepfunctions.get_paginator("list_executions")
    return [e["name"] for page in paginator.paginate(stateMachineArn=state_machine_arn) for e in page["executions"]]
