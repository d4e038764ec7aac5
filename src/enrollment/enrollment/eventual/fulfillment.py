"""Fulfillment: perform one action of a contract, once, on its day, only while its contract is enrolled.

Claim, then act. A delivery (a hook, or the immediate workflow's same-day step) first claims the
action with a conditional write: `pending|scheduled -> running`, owned by this delivery's token until
its lease ends (`lease_for`: longer than the invocation can run), and only if the action is due (from
the start of the minute of its due time: `offsets.due_before`, the Scheduler's precision), is
the one this delivery is about (same due time, so the same enrollment) and its contract is `enrolled`
(a transaction checks the offer). Only then does the action's handler run, with an idempotency key
stable across deliveries (contract, action, due time) that it hands to the downstream system it calls.
Then `running -> fulfilled` (or `failed` with the reason), with its audit entry, by the owner of the
claim only.

A second delivery finds the claim and does nothing. A delivery that crashed after its claim leaves a
`running` action whose lease lapses; the next delivery (the reconciler re-creates its hook) takes the
claim over and performs it again with the same key, so the downstream system performs it once. A
performance that raises does the same at once: the action stays `running` with its lease lapsed (it
may have reached the downstream before it raised, so it is never waiting again for a cancel to call
unperformed), and the error is raised so the delivery is retried. The third failed attempt, or a
takeover after `MAX_ATTEMPTS` deliveries crashed holding the claim, ends the action `failed` (the
error's name as its reason, its text in the audit trail) unless the downstream performed the key:
then it is `fulfilled`.

A takeover after the contract left `enrolled` (it was cancelled, or reverted, while a delivery held
the claim and died) performs nothing new: it asks the downstream system whether the dead delivery
performed the action (each handler registers that lookup by idempotency key). Performed: the
performance is finished with the same key (the downstream does nothing twice) and the action is
`fulfilled`, as the cancel reported it in flight. Not performed: the action is `cancelled`.

A payload that is not a fulfillment request (`InvalidHookPayload`), or names an action no contract
enrolled (`ActionNotEnrolled`), is rejected by name as data (`status: rejected`), not raised:
retrying cannot help. The rejection is audited in the `store.REJECTIONS` partition.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from commonlib import faults
from commonlib.clock import Clock, isoformat, utc_now
from commonlib.errors import ConditionNotMetError, InvalidInputError
from commonlib.serialization import json_ready
from commonlib.validation import parse
from enrollment import model, offsets, store
from enrollment.steps import FulfillmentAnswer
from enrollment.store import Tables

# Lambda stops an invocation at its timeout, so a claim is leased for the invocation's remaining time
# plus this margin (clocks, a write sent just before the stop): once it lapses, its delivery has ended.
LEASE_MARGIN = timedelta(seconds=5)
MAX_ATTEMPTS = 3
# The result of an action that a failed performance or a crashed delivery had performed before it ended.
PERFORMED_BEFORE_FAILURE = {"effect": "performed before its delivery failed (found by its idempotency key)"}
REJECTED, STALE = "rejected", "stale"
INVALID_HOOK_PAYLOAD, ACTION_NOT_ENROLLED = "InvalidHookPayload", "ActionNotEnrolled"
MAX_REPORTED_ERRORS = 10


class HookAction(BaseModel):
    """Which action a delivery is about. Its free-form data is not part of it: a performance reads it
    from the offer item (`Performance.action`), so hooks, which wait in their schedules for up to the
    longest offset and then in the dead-letter queue, carry no customer data. A `data` key in the
    payload (sent by a hook scheduled before) is ignored."""

    model_config = ConfigDict(extra="allow")
    name: model.ActionName
    offset: Annotated[int, Field(ge=0, le=model.MAX_OFFSET_DAYS)]
    dueAt: str | None = None  # noqa: N815


class FulfillmentRequest(BaseModel):
    """What a hook (and the immediate workflow's same-day step) sends the fulfillment Lambda."""

    model_config = ConfigDict(extra="forbid")
    contractId: model.Identifier  # noqa: N815
    correlationId: str  # noqa: N815
    trigger: Literal["hook", "same-day"] = "hook"
    action: HookAction


@dataclass(frozen=True)
class Performance:
    """One claimed performance of an action, as its handler gets it."""

    tables: Tables
    contract_id: str
    action: dict[str, Any]  # name, offset, dueAt and data (the offer's draft entry)
    account_id: str | None
    idempotency_key: str
    claimed_at: str
    clock: Clock

    def record_effect(self) -> bool:
        """Call the (mock) downstream system with this performance's idempotency key."""
        return store.record_effect(
            self.tables, self.idempotency_key, self.contract_id, self.action["name"], self.claimed_at, self.clock()
        )


ActionHandler = Callable[[Performance], dict[str, Any]]
PerformedLookup = Callable[[Performance], bool]
REGISTRY: dict[str, ActionHandler] = {}
PERFORMED: dict[str, PerformedLookup] = {}


def action_handler(name: str, performed: PerformedLookup) -> Callable[[ActionHandler], ActionHandler]:
    """Register the handler of action `name` and the lookup that tells, by the performance's idempotency
    key, whether the downstream system performed it."""

    def register(handler: ActionHandler) -> ActionHandler:
        REGISTRY[name] = handler
        PERFORMED[name] = performed
        return handler

    return register


def _effect_recorded(job: Performance) -> bool:
    return store.effect_recorded(job.tables, job.idempotency_key)


def _rate_set(job: Performance) -> bool:
    return store.contract_rate_key(job.tables, job.account_id, job.contract_id) == job.idempotency_key


@action_handler("rateChange", performed=_rate_set)
def change_rate(job: Performance) -> dict[str, Any]:
    """The seed's rate change: the new rate (`otherData.newRate`) on the contract in the UCP."""
    new_rate = (job.action.get("data", {}).get("otherData") or {}).get("newRate")
    if not isinstance(new_rate, int | float | Decimal) or isinstance(new_rate, bool):
        # The type only: an error's message reaches logs, traces and the audit trail, never the data.
        raise ValueError(f"rateChange needs otherData.newRate as a number, got {type(new_rate).__name__}")
    store.set_contract_rate(
        job.tables, job.account_id, job.contract_id, Decimal(str(new_rate)), job.idempotency_key, job.clock()
    )
    faults.checkpoint("after-rate")
    job.record_effect()
    return {"effect": "interest rate changed", "newRate": new_rate}


def _mock_action(job: Performance) -> dict[str, Any]:
    job.record_effect()
    return {"effect": f"mock {job.action['name']} performed"}


for _name in ("action1", "action2", "action100"):
    action_handler(_name, performed=_effect_recorded)(_mock_action)


def lease_for(remaining_millis: int) -> timedelta:
    """How long a claim taken now stays this delivery's: the rest of its invocation and `LEASE_MARGIN`."""
    return timedelta(milliseconds=remaining_millis) + LEASE_MARGIN


def idempotency_key(contract_id: str, action_name: str, due_at: str) -> str:
    """Stable across every delivery of one action of one enrollment (a re-enrollment has another due time)."""
    return f"{contract_id}/{action_name}/{due_at}"


def fulfil(
    tables: Tables,
    contract_id: str,
    action: dict[str, Any],
    correlation_id: str,
    trigger: str,
    token: str,
    clock: Clock = utc_now,
    *,
    lease: timedelta,
) -> FulfillmentAnswer:
    """`{"name", "status", "duplicate": bool, "result", "reason"}`; status is the action's state after
    this delivery: fulfilled, failed, cancelled, running (another delivery owns it), scheduled or pending
    (not due yet), stale (a hook of an earlier enrollment) or rejected."""
    name = action["name"]
    now = clock()
    item = store.get_action(tables, contract_id, name)
    if item is None:  # a hook for something that was never enrolled
        message = f"contract {contract_id!r} has no action {name!r}"
        claimed = {"contractId": contract_id, "actionName": name, "correlationId": correlation_id[:100]}
        return reject(tables, ACTION_NOT_ENROLLED, [{"field": "action", "message": message}], claimed, clock)
    if action.get("dueAt") and item.get("dueAt") != action["dueAt"]:
        reason = f"the delivery is due {action['dueAt']}, the action {item.get('dueAt')} (an earlier enrollment)"
        return _answer(name, STALE, {"failureReason": reason}, duplicate=True)
    state = item["state"]
    if state in store.ACTION_DONE:
        return _answer(name, state, item, duplicate=True)
    claims = 0  # the claims before this one, when this delivery takes a lapsed claim over
    try:
        if state == store.ACTION_RUNNING:
            if item.get("leaseUntil", "") >= isoformat(now):
                return _answer(name, state, item, duplicate=True)  # another delivery is performing it
            store.take_over_claim(tables, contract_id, name, item, token, now, lease)
            claims = int(item.get("attempts", 0))
        elif item["dueAt"] >= isoformat(offsets.due_before(now)):
            return _answer(name, state, {"failureReason": f"not due until {item['dueAt']}"}, duplicate=True)
        else:
            store.claim_action(tables, contract_id, name, item, token, now, lease, offsets.due_before(now))
    except ConditionNotMetError:
        return _not_claimed(tables, contract_id, name, correlation_id, clock)
    faults.checkpoint("after-claim")
    # The first claim's time (a takeover keeps it): when the action was committed to.
    claimed_at = item.get("claimedAt") or isoformat(now)
    offer = store.get_offer(tables, contract_id) or {}  # the contract now, and the action's data
    if state == store.ACTION_RUNNING and (left := _left_enrolled(offer, item)):
        job = _performance(tables, contract_id, item, offer, claimed_at, clock)
        lookup = PERFORMED.get(name)
        if lookup is None or not lookup(job):
            reason = f"not performed: the contract is {left}; the delivery that claimed it died before performing it"
            return _complete(tables, job, token, store.ACTION_CANCELLED, reason, correlation_id, trigger)
        # Performed before it died: finished with the same key, which the downstream performs once.
    elif claims >= MAX_ATTEMPTS:
        # No claim completed and the last delivery died holding it (a timeout, out of memory): performed
        # again it would most likely die the same way, while the reconciler re-creates its hook forever.
        job = _performance(tables, contract_id, item, offer, claimed_at, clock)
        reason = f"not performed again: {claims} attempts claimed it, none completed (the last crashed after its claim)"
        return _fail_unless_performed(tables, job, token, reason, item.get("lastError"), correlation_id, trigger)
    return _perform(tables, contract_id, item, offer, claimed_at, correlation_id, trigger, token, clock)


def _left_enrolled(offer: dict[str, Any], item: dict[str, Any]) -> str | None:
    """What the contract (`offer`, its item) is when it is no longer enrolled by the enrollment that
    created `item`; None while it is."""
    status = offer.get("status", "unknown")
    if status != store.ENROLLED:
        return status
    enrollment = item.get("enrollmentDate")
    if enrollment and offer.get("offer", {}).get("enrollmentDate") != enrollment:
        return "enrolled again"
    return None


def _performance(
    tables: Tables, contract_id: str, item: dict[str, Any], offer_item: dict[str, Any], claimed_at: str, clock: Clock
) -> Performance:
    """The claimed action as its handler gets it, its data from the offer's draft (`offer_item`)."""
    name = item["actionName"]
    offer = offer_item.get("offer", {})
    drafted = next((a for a in offer.get("contractDraft", {}).get("List", []) if a.get("name") == name), {})
    data = json_ready(model.drafted_data(drafted))
    return Performance(
        tables=tables,
        contract_id=contract_id,
        action={"name": name, "offset": item.get("offset"), "dueAt": item["dueAt"], "data": data},
        account_id=offer.get("accountId"),
        idempotency_key=idempotency_key(contract_id, name, item["dueAt"]),
        claimed_at=claimed_at,
        clock=clock,
    )


def _perform(
    tables: Tables,
    contract_id: str,
    item: dict[str, Any],
    offer: dict[str, Any],
    claimed_at: str,
    correlation_id: str,
    trigger: str,
    token: str,
    clock: Clock,
) -> FulfillmentAnswer:
    name = item["actionName"]
    job = _performance(tables, contract_id, item, offer, claimed_at, clock)
    handler = REGISTRY.get(name)
    if handler is None:
        return _complete(tables, job, token, store.ACTION_FAILED, f"no handler is registered for action {name!r}",
                         correlation_id, trigger)  # fmt: skip
    try:
        result = handler(job)
    except Exception as error:
        attempt = int(item.get("attempts", 0)) + 1
        error_text = f"{type(error).__name__}: {error}"
        if attempt >= MAX_ATTEMPTS:
            reason = f"attempt {attempt}: {type(error).__name__}"
            return _fail_unless_performed(tables, job, token, reason, error_text, correlation_id, trigger)
        store.lapse_claim(tables, contract_id, name, token, error_text, clock())
        raise
    faults.checkpoint("after-effect")
    return _complete(tables, job, token, store.ACTION_FULFILLED, result, correlation_id, trigger)


def _fail_unless_performed(
    tables: Tables,
    job: Performance,
    token: str,
    reason: str,
    error_text: str | None,
    correlation_id: str,
    trigger: str,
) -> FulfillmentAnswer:
    """End the action `failed` with `reason`, unless the downstream performed its key: a performance
    can raise, or its delivery die, after the effect. Then it is `fulfilled`, as it was performed."""
    lookup = PERFORMED.get(job.action["name"])
    if lookup is not None and lookup(job):
        return _complete(tables, job, token, store.ACTION_FULFILLED, PERFORMED_BEFORE_FAILURE, correlation_id, trigger)
    return _complete(tables, job, token, store.ACTION_FAILED, reason, correlation_id, trigger, error_text)


def _complete(
    tables: Tables,
    job: Performance,
    token: str,
    state: str,
    detail: Any,
    correlation_id: str,
    trigger: str,
    error_text: str | None = None,
) -> FulfillmentAnswer:
    """`running -> state` with its audit entry. `detail` is the result, or the reason a client is shown
    (the error's name); the error's full text (`error_text`) goes to the audit trail only."""
    name, now = job.action["name"], job.clock()
    payload = {"result": detail} if state == store.ACTION_FULFILLED else {"reason": detail}
    if error_text:
        payload["error"] = error_text
    entry = store.audit_entry(
        job.contract_id,
        f"action:{name}",
        f"{state} ({trigger})",
        correlation_id,
        now,
        details={**payload, "idempotencyKey": job.idempotency_key},
    )
    try:
        store.complete_action(
            tables, job.contract_id, name, token, state, store.storable(detail), trigger, store.storable(entry), now
        )
    except ConditionNotMetError:  # the lease lapsed and another delivery took the claim over
        return _not_claimed(tables, job.contract_id, name, correlation_id, job.clock)
    return _answer(name, state, {"result": payload.get("result"), "failureReason": payload.get("reason")}, False)


def _not_claimed(tables: Tables, contract_id: str, name: str, correlation_id: str, clock: Clock) -> FulfillmentAnswer:
    """The claim (or completion) was refused: the action or its contract changed since it was read. A
    waiting action of a contract that is no longer enrolled is cancelled here, never performed."""
    item = store.get_action(tables, contract_id, name) or {}
    if item.get("state") in store.ACTION_WAITING:
        offer = store.get_offer(tables, contract_id)
        status = (offer or {}).get("status", "unknown")
        if status != store.ENROLLED:
            now = clock()
            reason = f"not performed: the contract is {status}"
            entry = store.audit_entry(
                contract_id, f"action:{name}", f"cancelled: contract {status}", correlation_id, now
            )
            try:
                store.cancel_waiting_action(tables, contract_id, name, status if offer else None, reason, entry, now)
                return _answer(name, store.ACTION_CANCELLED, {"failureReason": reason}, duplicate=False)
            except ConditionNotMetError:
                item = store.get_action(tables, contract_id, name) or {}
    return _answer(name, item.get("state"), item, duplicate=True)


def handle_event(
    tables: Tables, event: Any, request_id: str, token: str, lease: timedelta, clock: Clock = utc_now
) -> FulfillmentAnswer:
    """The fulfillment Lambda's event: `fulfil` it under `lease`, or reject it by name (`InvalidHookPayload`)."""
    try:
        request = parse(FulfillmentRequest, event)
    except InvalidInputError as invalid:
        errors = [
            {"field": "(payload)" if e["field"] == "(body)" else e["field"][:200], "message": e["message"][:200]}
            for e in invalid.errors[:MAX_REPORTED_ERRORS]
        ]
        claimed = _claimed(event) or {}
        claimed.setdefault("correlationId", f"lambda:{request_id}")
        return reject(tables, INVALID_HOOK_PAYLOAD, errors, claimed, clock)
    action = request.action.model_dump()
    return fulfil(tables, request.contractId, action, request.correlationId, request.trigger, token, clock, lease=lease)


def reject(
    tables: Tables, error: str, errors: list[dict[str, str]], claimed: dict[str, str], clock: Clock = utc_now
) -> FulfillmentAnswer:
    """Audit a rejected hook payload; answer with the same keys as a fulfilment, `status: rejected`."""
    reason = f"{error}: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    entry = store.rejection_entry(
        "hook", error, reason, claimed["correlationId"], clock(), details={"errors": errors, "claimed": claimed}
    )
    store.append_audit(tables, entry)
    answer = _answer(claimed.get("actionName"), REJECTED, {"failureReason": reason}, duplicate=False)
    return {**answer, "error": error}


def _claimed(event: Any) -> dict[str, str] | None:
    """What a payload said it was about, as far as it can be read (bounded, strings only)."""
    if not isinstance(event, dict):
        return None
    action = event.get("action") if isinstance(event.get("action"), dict) else {}
    found = {"contractId": event.get("contractId"), "actionName": action.get("name")}
    found["correlationId"] = event.get("correlationId")
    return {key: value[:100] for key, value in found.items() if isinstance(value, str) and value}


def _answer(name: str | None, state: str | None, item: dict[str, Any], duplicate: bool) -> FulfillmentAnswer:
    # Always the same keys: the state machine's FulfillAction Output reads each of them.
    return {
        "name": name,
        "status": state,
        "duplicate": duplicate,
        "result": item.get("result"),
        "reason": item.get("failureReason"),
    }
