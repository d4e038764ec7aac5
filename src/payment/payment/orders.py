"""Order lifecycle on the `MockOrders` table.

Every transition is one conditional write: the guard is a DynamoDB condition expression, never a
read followed by a write. Each order remembers the Step Functions execution that owns it, so a
retried step of the same execution is a harmless replay while any other caller is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from commonlib.clock import Clock, isoformat, utc_now
from commonlib.errors import ConditionNotMetError, InvalidInputError, aws_errors_as_domain_errors

CREATED, HOLD, PAID, FAILED = "created", "hold", "paid", "failed"
ORDER_ID_MAX_LENGTH = 64


@dataclass(frozen=True)
class Transition:
    source: str
    target: str
    timestamp_attribute: str


HOLD_PAYMENT = Transition(source=CREATED, target=HOLD, timestamp_attribute="heldAt")
ACCEPT_PAYMENT = Transition(source=HOLD, target=PAID, timestamp_attribute="paidAt")


def create_order(table: Any, request: Any, execution_id: str, clock: Clock = utc_now) -> dict[str, Any]:
    """Insert the order as `created` unless it exists. Returns the outcome as data:

    `{"outcome": "created", "order": {...}}`, or `{"outcome": "rejected", "rejection": {"error", "cause"}}`
    for invalid input (`InvalidOrderInput`) and an existing order (`OrderAlreadyExists`). An order that
    ended `failed` is the exception: a new execution may retry it, and then owns it.
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
        if existing.get("executionId") == execution_id and existing.get("status") == CREATED:
            return {"outcome": "created", "order": public_view(existing), "rejection": None}
        return _rejected("OrderAlreadyExists", f"order {order_id} already exists; it was not changed")
    return {"outcome": "created", "order": public_view(item), "rejection": None}


def transition(
    table: Any, order_id: str, execution_id: str, step: Transition, clock: Clock = utc_now
) -> dict[str, Any]:
    """Move the order `step.source` -> `step.target`, only for the execution that owns it.

    Replaying a step that already happened for the same execution returns the order unchanged.
    Anything else raises `ConditionNotMetError` (an unexpected state: the workflow marks the order failed).
    """
    with aws_errors_as_domain_errors():
        response = table.update_item(
            Key={"orderId": order_id},
            UpdateExpression="SET #status = :target, #at = if_not_exists(#at, :now)",
            ConditionExpression="executionId = :execution AND (#status = :source OR #status = :target)",
            ExpressionAttributeNames={"#status": "status", "#at": step.timestamp_attribute},
            ExpressionAttributeValues={
                ":target": step.target,
                ":source": step.source,
                ":now": isoformat(clock()),
                ":execution": execution_id,
            },
            ReturnValues="ALL_NEW",
        )
    return public_view(response["Attributes"])


def confirmation_message(order: dict[str, Any]) -> str:
    return f"Payment for order {order['orderId']} accepted at {order['paidAt']}."


def public_view(item: dict[str, Any]) -> dict[str, Any]:
    fields = ("orderId", "status", "createdAt", "heldAt", "paidAt")
    return {field: item[field] for field in fields if field in item}


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
