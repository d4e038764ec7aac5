from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commonlib.errors import ConditionNotMetError
from payment import orders

EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:mock-payment-workflow:run-1"
OTHER_EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:mock-payment-workflow:run-2"


class TickingClock:
    def __init__(self) -> None:
        self.moment = datetime(2026, 2, 28, 23, 59, 59, 500000, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


def stored(table: Any, order_id: str = "1234") -> dict[str, Any] | None:
    return table.get_item(Key={"orderId": order_id}, ConsistentRead=True).get("Item")


def test_create_writes_order_as_created_with_timestamp(orders_table: Any) -> None:
    result = orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION, clock=TickingClock())

    assert result == {
        "outcome": "created",
        "order": {"orderId": "1234", "status": "created", "createdAt": "2026-03-01T00:00:00.500Z"},
        "rejection": None,
    }
    assert stored(orders_table) == {
        "orderId": "1234",
        "status": "created",
        "createdAt": "2026-03-01T00:00:00.500Z",
        "executionId": EXECUTION,
    }


def test_full_lifecycle_records_each_transition(orders_table: Any) -> None:
    clock = TickingClock()
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION, clock=clock)
    held = orders.transition(orders_table, "1234", EXECUTION, orders.HOLD_PAYMENT, clock=clock)
    paid = orders.transition(orders_table, "1234", EXECUTION, orders.ACCEPT_PAYMENT, clock=clock)

    assert held["status"] == "hold"
    assert paid == {
        "orderId": "1234",
        "status": "paid",
        "createdAt": "2026-03-01T00:00:00.500Z",
        "heldAt": "2026-03-01T00:00:01.500Z",
        "paidAt": "2026-03-01T00:00:02.500Z",
    }
    assert orders.confirmation_message(paid) == "Payment for order 1234 accepted at 2026-03-01T00:00:02.500Z."


def test_existing_order_is_not_overwritten(orders_table: Any) -> None:
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)
    orders.transition(orders_table, "1234", EXECUTION, orders.HOLD_PAYMENT)
    before = stored(orders_table)

    result = orders.create_order(orders_table, {"orderId": "1234"}, OTHER_EXECUTION)

    assert result["outcome"] == "rejected"
    assert result["rejection"]["error"] == "OrderAlreadyExists"
    assert stored(orders_table) == before


def test_failed_order_may_be_retried_by_a_new_execution_which_then_owns_it(orders_table: Any) -> None:
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)
    # What the workflow's MarkOrderFailed state writes after a step failed for good.
    orders_table.update_item(
        Key={"orderId": "1234"},
        UpdateExpression="SET #status = :failed, failureReason = :reason",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":failed": orders.FAILED, ":reason": "HoldPayment: States.TaskFailed"},
    )

    retried = orders.create_order(orders_table, {"orderId": "1234"}, OTHER_EXECUTION)

    assert retried["outcome"] == "created"
    assert stored(orders_table)["executionId"] == OTHER_EXECUTION
    assert "failureReason" not in stored(orders_table)
    assert orders.transition(orders_table, "1234", OTHER_EXECUTION, orders.HOLD_PAYMENT)["status"] == orders.HOLD


def test_create_replayed_by_same_execution_is_harmless(orders_table: Any) -> None:
    first = orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)
    again = orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)

    assert again == first


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({}, "orderId"),
        ({"orderId": ""}, "orderId"),
        ({"orderId": 1234}, "orderId"),
        ({"orderId": None}, "orderId"),
        ({"orderId": "x" * (orders.ORDER_ID_MAX_LENGTH + 1)}, "orderId"),
        ({"orderId": "12 34"}, "orderId"),
        ({"orderId": "1234", "amount": 5}, "amount"),
        ("1234", "(body)"),
        (["1234"], "(body)"),
        (None, "(body)"),
    ],
)
def test_invalid_input_is_rejected_and_writes_nothing(orders_table: Any, request_body: Any, field: str) -> None:
    result = orders.create_order(orders_table, request_body, EXECUTION)

    assert result["outcome"] == "rejected"
    assert result["rejection"]["error"] == "InvalidOrderInput"
    assert result["rejection"]["cause"].startswith(f"{field}:")
    assert orders_table.scan()["Items"] == []


def test_hold_requires_created(orders_table: Any) -> None:
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)
    orders.transition(orders_table, "1234", EXECUTION, orders.HOLD_PAYMENT)
    orders.transition(orders_table, "1234", EXECUTION, orders.ACCEPT_PAYMENT)

    with pytest.raises(ConditionNotMetError):
        orders.transition(orders_table, "1234", EXECUTION, orders.HOLD_PAYMENT)
    assert stored(orders_table)["status"] == "paid"


def test_accept_requires_hold(orders_table: Any) -> None:
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)

    with pytest.raises(ConditionNotMetError):
        orders.transition(orders_table, "1234", EXECUTION, orders.ACCEPT_PAYMENT)
    assert stored(orders_table)["status"] == "created"


def test_transition_of_missing_order_writes_nothing(orders_table: Any) -> None:
    with pytest.raises(ConditionNotMetError):
        orders.transition(orders_table, "missing", EXECUTION, orders.HOLD_PAYMENT)
    assert orders_table.scan()["Items"] == []


def test_another_execution_cannot_move_the_order(orders_table: Any) -> None:
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)

    with pytest.raises(ConditionNotMetError):
        orders.transition(orders_table, "1234", OTHER_EXECUTION, orders.HOLD_PAYMENT)
    assert stored(orders_table)["status"] == "created"


def test_replayed_transition_keeps_first_timestamp(orders_table: Any) -> None:
    clock = TickingClock()
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION, clock=clock)
    first = orders.transition(orders_table, "1234", EXECUTION, orders.HOLD_PAYMENT, clock=clock)
    replay = orders.transition(orders_table, "1234", EXECUTION, orders.HOLD_PAYMENT, clock=clock)

    assert replay == first
