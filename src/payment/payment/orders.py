"""Order lifecycle on the `MockOrders` table.

Every transition is one conditional write: the guard is a DynamoDB condition expression, never a
read followed by a write. Each order remembers the Step Functions execution that owns it, and that
execution id works as a payment API's idempotency key: a step the same execution sends again after
it took effect (a Step Functions retry, or a sample event invoked a second time) is answered what it
answered the first time and writes nothing, even once the order has moved on (a hold repeated on
the order it held and that was since paid). A step that never took effect and cannot take effect
(accepting an order that was never held, any step on another execution's order, on a failed order or
on a missing one) raises `InvalidTransitionError`, which says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commonlib.clock import Clock, isoformat, utc_now
from commonlib.errors import ConditionNotMetError, InvalidInputError, aws_errors_as_domain_errors

CREATED, HOLD, PAID, FAILED = "created", "hold", "paid", "failed"
ORDER_ID_MAX_LENGTH = 64
# The lifecycle in order, each state with the attribute that records when the order reached it.
LIFECYCLE = ((CREATED, "createdAt"), (HOLD, "heldAt"), (PAID, "paidAt"))
_RANK = {status: rank for rank, (status, _) in enumerate(LIFECYCLE)}
_REACHED_AT = dict(LIFECYCLE)


class InvalidTransitionError(ConditionNotMetError):
    """The step cannot move this order: it is missing, another execution's, failed, or not ready."""


@dataclass(frozen=True)
class Transition:
    name: str
    source: str
    target: str

    @property
    def timestamp_attribute(self) -> str:
        return _REACHED_AT[self.target]


HOLD_PAYMENT = Transition(name="hold payment", source=CREATED, target=HOLD)
ACCEPT_PAYMENT = Transition(name="accept payment", source=HOLD, target=PAID)


def create_order(table: Any, request: Any, execution_id: str, clock: Clock = utc_now) -> dict[str, Any]:
    """Insert the order as `created` unless it exists. Returns the outcome as data:

    `{"outcome": "created", "order": {...}}`, or `{"outcome": "rejected", "rejection": {"error", "cause"}}`
    for invalid input (`InvalidOrderInput`) and an existing order (`OrderAlreadyExists`). An order that
    ended `failed` is the exception: a new execution may retry it, and then owns it. The execution that
    created the order gets the same `created` answer again, whatever step the order is at now.
    """
    # Validation (pydantic) is loaded by the one step that validates; see `payment.request`.
    from commonlib.validation import parse
    from payment.request import OrderRequest

    try:
        order_id = parse(OrderRequest, request).orderId
    except InvalidInputError as invalid:
        cause = "; ".join(f"{error['field']}: {error['message']}" for error in invalid.errors)
        return _rejected("InvalidOrderInput", cause)

    item = {"orderId": order_id, "status": CREATED, "createdAt": isoformat(clock()), "executionId": execution_id}
    try:
        with aws_errors_as_domain_errors():
            table.put_item(
                Item=item,
                ConditionExpression="attribute_not_exists(orderId) OR #status = :failed",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":failed": FAILED},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
    except ConditionNotMetError as exists:
        existing = _item_from_condition_failure(exists)
        if _took_effect(existing, execution_id, CREATED):
            return {"outcome": "created", "order": _as_left_by(existing, CREATED), "rejection": None}
        return _rejected("OrderAlreadyExists", f"order {order_id} already exists; it was not changed")
    return {"outcome": "created", "order": public_view(item), "rejection": None}


def transition(
    table: Any, order_id: str, execution_id: str, step: Transition, clock: Clock = utc_now
) -> dict[str, Any]:
    """Move the order `step.source` -> `step.target`, only for the execution that owns it.

    Returns the order as the step left it. A step this execution already took (the order is at
    `step.target` or later) is answered the same again, from the item the refused write returns, and
    writes nothing. Anything else raises `InvalidTransitionError` (the workflow marks the order failed).
    """
    try:
        with aws_errors_as_domain_errors():
            response = table.update_item(
                Key={"orderId": order_id},
                UpdateExpression="SET #status = :target, #at = :now",
                ConditionExpression="executionId = :execution AND #status = :source",
                ExpressionAttributeNames={"#status": "status", "#at": step.timestamp_attribute},
                ExpressionAttributeValues={
                    ":target": step.target,
                    ":source": step.source,
                    ":now": isoformat(clock()),
                    ":execution": execution_id,
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
    except ConditionNotMetError as refused:
        existing = _item_from_condition_failure(refused)
        if _took_effect(existing, execution_id, step.target):
            return _as_left_by(existing, step.target)
        raise InvalidTransitionError(_refusal(order_id, execution_id, step, existing), order_id=order_id) from refused
    return public_view(response["Attributes"])


def confirmation_message(order: dict[str, Any]) -> str:
    return f"Payment for order {order['orderId']} accepted at {order['paidAt']}."


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    fields = ("orderId", "status", "createdAt", "heldAt", "paidAt")
    return {field: item[field] for field in fields if field in item}


def _took_effect(existing: dict[str, Any], execution_id: str, target: str) -> bool:
    """Whether `execution_id` already moved this order to `target`: it owns the order, which is at
    `target` or a later step of the lifecycle (never `failed`), and recorded when it reached `target`."""
    status = existing.get("status")
    return (
        existing.get("executionId") == execution_id
        and status in _RANK
        and _RANK[status] >= _RANK[target]
        and _REACHED_AT[target] in existing
    )


def _as_left_by(existing: dict[str, Any], target: str) -> dict[str, Any]:
    """The order as the step that moved it to `target` answered it: that status, the times up to it."""
    reached = [attribute for status, attribute in LIFECYCLE if _RANK[status] <= _RANK[target]]
    return public_view({**{key: existing[key] for key in ("orderId", *reached) if key in existing}, "status": target})


def _refusal(order_id: str, execution_id: str, step: Transition, existing: dict[str, Any]) -> str:
    prefix = f"cannot {step.name} for order {order_id}"
    if not existing:
        return f"{prefix}: no such order"
    if existing.get("executionId") != execution_id:
        return f"{prefix}: the order belongs to another execution (it is {existing.get('status')})"
    status = existing.get("status")
    if status == FAILED:
        return f"{prefix}: the order failed (a new execution may create it again)"
    return f"{prefix}: the order is {status!r}, and only a {step.source!r} order can become {step.target!r}"


def _rejected(error: str, cause: str) -> dict[str, Any]:
    return {"outcome": "rejected", "order": None, "rejection": {"error": error, "cause": cause}}


def _item_from_condition_failure(error: ConditionNotMetError) -> dict[str, Any]:
    cause = error.__cause__
    response = getattr(cause, "response", {}) or {}
    raw = response.get("Item") or {}
    return {key: _plain(value) for key, value in raw.items()}


def _plain(attribute: Any) -> Any:
    # ReturnValuesOnConditionCheckFailure returns the low-level form even from the resource API.
    if isinstance(attribute, dict) and len(attribute) == 1:
        ((kind, value),) = attribute.items()
        if kind in ("S", "N", "BOOL"):
            return value
    return attribute
