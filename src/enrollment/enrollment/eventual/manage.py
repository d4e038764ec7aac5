"""Reading and cancelling an enrollment (`GET` / `DELETE /enrollments/{contractId}`)."""

from __future__ import annotations

from typing import Any

from commonlib import faults
from commonlib.clock import Clock, isoformat, parse_isoformat, utc_now
from commonlib.errors import ConditionNotMetError, aws_errors_as_domain_errors
from commonlib.serialization import json_ready
from enrollment import store
from enrollment.eventual import hooks
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
    contract_id = offer["OfferId"]
    actions = store.contract_actions(tables, contract_id)
    details = offer.get("offer", {})
    if offer.get("status") in (store.ENROLLED, store.CANCELLING):
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


def _owned(offer: dict[str, Any] | None, owner_id: str | None) -> bool:
    """Whether `owner_id` may see the offer: its owner may; None is a system caller, who may see any.
    An offer without an owner (written before offers had one, or by a direct start) is no client's."""
    return offer is not None and (owner_id is None or offer.get("ownerId") == owner_id)


def public_reason(offer: dict[str, Any]) -> str | None:
    """The reason a client is shown: an ineligible offer's public reasons (never a sensitive rule's
    full reason), a failure's error name (never its cause, which may quote the run's data)."""
    if offer.get("status") == store.INELIGIBLE:
        return offer.get("publicReason") or "not eligible through this channel"
    reason = offer.get("failureReason") or offer.get("statusReason")
    return reason.split(":", 1)[0] if isinstance(reason, str) else reason


def public_outcome(entry: dict[str, Any]) -> str:
    """An audit entry's outcome as a client is shown it: the public version when the entry has one, and
    no failure cause or rules-lab reason (the audit table keeps the full text)."""
    public = (entry.get("details") or {}).get("publicOutcome")
    if public:
        return str(public)
    outcome = str(entry.get("outcome", ""))
    if entry.get("step") == "rules-lab" and outcome.startswith(store.INELIGIBLE):
        return store.INELIGIBLE
    if outcome.startswith(f"{store.FAILED}: "):
        return ": ".join(outcome.split(": ", 2)[:2])  # failed: <error name>, without the cause
    return outcome


def enrollment_status(
    tables: Tables, contract_id: str, offset_unit_seconds: int = SECONDS_PER_DAY, owner_id: str | None = None
) -> dict[str, Any] | None:
    """The offer, every action with its offset, due time and state, and the audit trail. None when
    there is no such offer or it is not `owner_id`'s (the same answer: a client learns nothing of
    another's contract)."""
    offer = store.get_offer(tables, contract_id)
    if not _owned(offer, owner_id):
        return None
    with aws_errors_as_domain_errors():
        trail = store.audit_trail(tables, contract_id)
    details = offer.get("offer", {})
    answer = {
        "contractId": contract_id,
        "accountId": details.get("accountId"),
        "status": offer["status"],
        "reason": public_reason(offer),
        "enrollmentDate": details.get("enrollmentDate"),
        "enrolledAt": offer.get("enrolledAt"),
        "cancelledAt": offer.get("cancelledAt"),
        "correlationId": details.get("correlationId"),
        "actions": [
            {"name": item["actionName"], **{field: item[field] for field in _ACTION_FIELDS if field in item}}
            for item in _actions(tables, offer, offset_unit_seconds)
        ],
        "audit": [
            {key: entry[key] for key in ("at", "step", "correlationId", "rulesVersion") if key in entry}
            | {"outcome": public_outcome(entry)}
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
    owner_id: str | None = None,
) -> dict[str, Any]:
    """Cancel an enrolled contract, resumably. The offer goes `cancelling` first, which stops every
    claim; then each waiting action's hook is deleted and the action cancelled, the UCP entry is
    cancelled, and one transaction makes the offer `cancelled` with this answer and its audit entry.
    Every step is idempotent, so a retry (or the reconciler) finishes an interrupted cancel, and a
    cancelled contract answers what its cancel answered. A contract the UCP holds no entry for (it was
    lost there) counts as cancelled there, and its audit entry says so.

    An action already `running` was claimed before the cancel: it completes and is reported among the
    completed actions; so is a first payment the immediate workflow claimed before it (`firstPayment`).
    Outcomes: `cancelled`, `not_found` (also for a contract that is not
    `owner_id`'s; None, the reconciler, is a system caller), or `not_cancellable` (with the status)."""
    offer = store.get_offer(tables, contract_id)
    if offer is None or not _owned(offer, owner_id):
        return {"outcome": "not_found"}
    if offer["status"] == store.ENROLLED:
        try:
            offer = store.start_cancel(tables, contract_id, clock())
        except ConditionNotMetError:  # another request moved it meanwhile: decide on what it is now
            return cancel_enrollment(
                tables, scheduler, schedule_group, contract_id, clock, offset_unit_seconds, owner_id
            )
        faults.checkpoint("cancel-after-cancelling")
    elif offer["status"] == CANCELLED:
        return {"outcome": "cancelled", **_stored_outcome(offer)}
    elif offer["status"] != store.CANCELLING:
        return {"outcome": "not_cancellable", "status": offer["status"]}

    now = clock()
    cancelled, completed = [], []
    correlation_id = offer["offer"].get("correlationId", "-")
    for action in _actions(tables, {**offer, "status": store.ENROLLED}, offset_unit_seconds):
        name = action["actionName"]
        if action["state"] in store.ACTION_WAITING:
            delete_schedule(scheduler, schedule_group, hooks.schedule_name(contract_id, name))
            faults.checkpoint("cancel-after-hook-deleted")
            cancel = {"name": name, "offset": action["offset"], "dueAt": action.get("dueAt")}
            try:
                store.cancel_action(tables, contract_id, cancel, correlation_id, offer["offer"]["enrollmentDate"], now)
            except ConditionNotMetError:  # claimed or cancelled meanwhile: report what it is now
                action = store.get_action(tables, contract_id, name) or action
            else:
                action["state"] = store.ACTION_CANCELLED
                faults.checkpoint("cancel-after-action-cancelled")
        if action["state"] == store.ACTION_CANCELLED:
            cancelled.append(name)
        else:
            completed.append({"name": name, "state": action["state"]})
    faults.checkpoint("cancel-after-actions")
    ucp = store.cancel_ucp_contract(tables, offer["offer"]["accountId"], contract_id)
    faults.checkpoint("cancel-after-ucp")
    outcome: dict[str, Any] = {"cancelledActions": cancelled, "completedActions": completed}
    summary = f"cancelled: {len(cancelled)} pending actions cancelled, {len(completed)} already done or in flight"
    # `offer` is as it was once `cancelling`: the immediate workflow claims (and flags) the first payment
    # only while it is `enrolled`, so a claim is either in it or never made.
    claimed = offer.get("firstPaymentClaimedAt")
    if claimed and offer.get("firstPaymentNotStarted"):  # claimed, its start failed: never started now
        outcome["firstPayment"] = {"status": "not-started", "claimedAt": claimed}
        summary += "; the first payment was not started"
    elif claimed:
        outcome["firstPayment"] = {"status": "started", "claimedAt": claimed}
        summary += "; the first payment was already started"
    if ucp == store.UCP_ABSENT:
        summary += "; the UCP had no entry for the contract"
    entry = store.audit_entry(contract_id, "cancel", summary, correlation_id, now, details={**outcome, "ucpEntry": ucp})
    try:
        store.finish_cancel(tables, contract_id, outcome, entry, now)
    except ConditionNotMetError:  # a concurrent cancel finished first: answer what it recorded
        return {"outcome": "cancelled", **_stored_outcome(store.get_offer(tables, contract_id) or {})}
    return {"outcome": "cancelled", **outcome}


def _stored_outcome(offer: dict[str, Any]) -> dict[str, Any]:
    stored = offer.get("cancelOutcome") or {"cancelledActions": [], "completedActions": []}
    return json_ready(stored)


def delete_schedule(scheduler: Any, group: str, name: str) -> bool:
    """True when it deleted the schedule; False when there was none (not scheduled yet, or already fired
    and deleted itself)."""
    from botocore.exceptions import ClientError  # loaded by the scheduler client already

    try:
        scheduler.delete_schedule(GroupName=group, Name=name)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return False
    return True
