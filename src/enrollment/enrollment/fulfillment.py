"""Fulfillment: perform one action of a contract, exactly once.

Actions are mocked for now (the seed: the real ones come later) through a registry keyed by the
action name, so a real action is one new handler. The effect is recorded by one conditional
transition (pending|scheduled -> fulfilled), so a hook delivered twice fulfils once. The same path
serves the same-day actions of the immediate workflow and the hooks of the eventual one.

A payload that is not a fulfillment request (`InvalidHookPayload`), or names an action no contract
enrolled (`ActionNotEnrolled`), is rejected by name as data (`status: rejected`), not raised:
retrying cannot help. The rejection is audited in the `store.REJECTIONS` partition; nothing else
is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from commonlib.clock import Clock, isoformat, utc_now
from commonlib.errors import ConditionNotMetError, InvalidInputError, aws_errors_as_domain_errors
from commonlib.validation import parse
from enrollment import model, store
from enrollment.store import Tables

ActionHandler = Callable[[dict[str, Any]], dict[str, Any]]
REGISTRY: dict[str, ActionHandler] = {}
REJECTED = "rejected"
INVALID_HOOK_PAYLOAD, ACTION_NOT_ENROLLED = "InvalidHookPayload", "ActionNotEnrolled"
MAX_REPORTED_ERRORS = 10


class HookAction(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: model.ActionName
    offset: Annotated[int, Field(ge=0, le=model.MAX_OFFSET_DAYS)]
    dueAt: str | None = None  # noqa: N815
    data: dict[str, Any] = Field(default_factory=dict)


class FulfillmentRequest(BaseModel):
    """What a hook (and the immediate workflow's same-day step) sends the fulfillment Lambda."""

    model_config = ConfigDict(extra="forbid")
    contractId: model.Identifier  # noqa: N815
    correlationId: str  # noqa: N815
    trigger: Literal["hook", "same-day"] = "hook"
    action: HookAction


def action_handler(name: str) -> Callable[[ActionHandler], ActionHandler]:
    def register(handler: ActionHandler) -> ActionHandler:
        REGISTRY[name] = handler
        return handler

    return register


@action_handler("rateChange")
def change_rate(action: dict[str, Any]) -> dict[str, Any]:
    new_rate = action.get("data", {}).get("newRate")
    return {"effect": "interest rate changed", "newRate": new_rate}


@action_handler("action1")
def mock_action_1(action: dict[str, Any]) -> dict[str, Any]:
    return {"effect": "mock action1 performed"}


@action_handler("action2")
def mock_action_2(action: dict[str, Any]) -> dict[str, Any]:
    return {"effect": "mock action2 performed"}


@action_handler("action100")
def mock_action_100(action: dict[str, Any]) -> dict[str, Any]:
    return {"effect": "mock action100 performed"}


def fulfil(
    tables: Tables,
    contract_id: str,
    action: dict[str, Any],
    correlation_id: str,
    trigger: str,
    clock: Clock = utc_now,
) -> dict[str, Any]:
    """`{"name", "status": fulfilled|failed|cancelled, "duplicate": bool, "result", "reason"}`."""
    name = action["name"]
    handler = REGISTRY.get(name)
    if handler is None:
        state, payload = store.ACTION_FAILED, {"reason": f"no handler is registered for action {name!r}"}
    else:
        state, payload = store.ACTION_FULFILLED, {"result": handler(action)}
    now = clock()
    detail_attribute = "result" if state == store.ACTION_FULFILLED else "failureReason"
    try:
        with aws_errors_as_domain_errors():
            tables.actions.update_item(
                Key={"contractId": contract_id, "actionName": name},
                UpdateExpression=("SET #state = :state, completedAt = :now, #trigger = :trigger, #detail = :detail"),
                ConditionExpression="#state IN (:pending, :scheduled)",
                ExpressionAttributeNames={"#state": "state", "#trigger": "trigger", "#detail": detail_attribute},
                ExpressionAttributeValues={
                    ":state": state,
                    ":now": isoformat(now),
                    ":trigger": trigger,
                    ":detail": payload.get("result") or payload.get("reason"),
                    ":pending": store.ACTION_PENDING,
                    ":scheduled": store.ACTION_SCHEDULED,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
    except ConditionNotMetError as done:
        existing = store.item_from_condition_failure(done)
        if not existing:  # a hook for something that was never enrolled
            message = f"contract {contract_id!r} has no action {name!r}"
            claimed = {"contractId": contract_id, "actionName": name, "correlationId": correlation_id[:100]}
            return reject(tables, ACTION_NOT_ENROLLED, [{"field": "action", "message": message}], claimed, clock)
        return _answer(name, existing.get("state"), existing, duplicate=True)
    with aws_errors_as_domain_errors():
        store.append_audit(
            tables,
            store.audit_entry(
                contract_id, f"action:{name}", f"{state} ({trigger})", correlation_id, now, details=payload
            ),
        )
    return _answer(
        name, state, {"result": payload.get("result"), "failureReason": payload.get("reason")}, duplicate=False
    )


def handle_event(tables: Tables, event: Any, request_id: str, clock: Clock = utc_now) -> dict[str, Any]:
    """The fulfillment Lambda's event: `fulfil` it, or reject it by name (`InvalidHookPayload`)."""
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
    return fulfil(tables, request.contractId, action, request.correlationId, request.trigger, clock)


def reject(
    tables: Tables, error: str, errors: list[dict[str, str]], claimed: dict[str, str], clock: Clock = utc_now
) -> dict[str, Any]:
    """Audit a rejected hook payload; answer with the same keys as a fulfilment, `status: rejected`."""
    reason = f"{error}: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    entry = store.rejection_entry(
        "hook", error, reason, claimed["correlationId"], clock(), details={"errors": errors, "claimed": claimed}
    )
    with aws_errors_as_domain_errors():
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


def _answer(name: str | None, state: str | None, item: dict[str, Any], duplicate: bool) -> dict[str, Any]:
    # Always the same keys: the state machine's ResultSelector reads each of them.
    return {
        "name": name,
        "status": state,
        "duplicate": duplicate,
        "result": item.get("result"),
        "reason": item.get("failureReason"),
    }
