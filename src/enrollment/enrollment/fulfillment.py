"""Fulfillment: perform one action of a contract, exactly once.

Actions are mocked for now (the seed: the real ones come later) through a registry keyed by the
action name, so a real action is one new handler. The effect is recorded by one conditional
transition (pending|scheduled -> fulfilled), so a hook delivered twice fulfils once. The same path
serves the same-day actions of the immediate workflow and the hooks of the eventual one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commonlib.clock import Clock, isoformat, utc_now
from commonlib.errors import ConditionNotMetError, aws_errors_as_domain_errors
from enrollment import store
from enrollment.store import Tables

ActionHandler = Callable[[dict[str, Any]], dict[str, Any]]
REGISTRY: dict[str, ActionHandler] = {}


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
        if not existing:
            raise  # no such action: a hook for something that was never enrolled
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


def _answer(name: str, state: str | None, item: dict[str, Any], duplicate: bool) -> dict[str, Any]:
    # Always the same keys: the state machine's ResultSelector reads each of them.
    return {
        "name": name,
        "status": state,
        "duplicate": duplicate,
        "result": item.get("result"),
        "reason": item.get("failureReason"),
    }
