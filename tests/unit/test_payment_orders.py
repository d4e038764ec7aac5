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


def test_holding_a_paid_order_is_refused_unless_it_repeats_its_own_hold(orders_table: Any) -> None:
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)
    orders.transition(orders_table, "1234", EXECUTION, orders.HOLD_PAYMENT)
    orders.transition(orders_table, "1234", EXECUTION, orders.ACCEPT_PAYMENT)
    before = stored(orders_table)

    with pytest.raises(orders.InvalidTransitionError, match="belongs to another execution"):
        orders.transition(orders_table, "1234", OTHER_EXECUTION, orders.HOLD_PAYMENT)
    assert stored(orders_table) == before


def test_accept_requires_hold(orders_table: Any) -> None:
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)
    before = stored(orders_table)

    with pytest.raises(ConditionNotMetError) as refused:
        orders.transition(orders_table, "1234", EXECUTION, orders.ACCEPT_PAYMENT)
    assert isinstance(refused.value, orders.InvalidTransitionError)
    assert str(refused.value) == (
        "cannot accept payment for order 1234: the order is 'created', and only a 'hold' order can become 'paid'"
    )
    assert stored(orders_table) == before


def test_transition_of_missing_order_writes_nothing(orders_table: Any) -> None:
    with pytest.raises(orders.InvalidTransitionError, match="cannot hold payment for order missing: no such order"):
        orders.transition(orders_table, "missing", EXECUTION, orders.HOLD_PAYMENT)
    assert orders_table.scan()["Items"] == []


def test_another_execution_cannot_move_the_order(orders_table: Any) -> None:
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION)

    with pytest.raises(orders.InvalidTransitionError, match="belongs to another execution"):
        orders.transition(orders_table, "1234", OTHER_EXECUTION, orders.HOLD_PAYMENT)
    assert stored(orders_table)["status"] == "created"


def test_replayed_transition_keeps_first_timestamp(orders_table: Any) -> None:
    clock = TickingClock()
    orders.create_order(orders_table, {"orderId": "1234"}, EXECUTION, clock=clock)
    first = orders.transition(orders_table, "1234", EXECUTION, orders.HOLD_PAYMENT, clock=clock)
    replay = orders.transition(orders_table, "1234", EXECUTION, orders.HOLD_PAYMENT, clock=clock)

    assert replay == first


class RecordingTable:
    """The orders table, recording every write DynamoDB carried out (a refused conditional write raises
    before it is recorded): a repeated step must not appear here."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.writes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def put_item(self, **kwargs: Any) -> Any:
        response = self._table.put_item(**kwargs)
        self.writes.append("put_item")
        return response

    def update_item(self, **kwargs: Any) -> Any:
        response = self._table.update_item(**kwargs)
        self.writes.append("update_item")
        return response


def run_steps(table: Any, clock: TickingClock, *steps: str) -> list[Any]:
    """Each named step of the sample invocations, in order, by the one execution (what `sam remote invoke`
    of events/payment/*.json does): their answers."""
    calls = {
        "create": lambda: orders.create_order(table, {"orderId": "1234"}, EXECUTION, clock=clock),
        "hold": lambda: orders.transition(table, "1234", EXECUTION, orders.HOLD_PAYMENT, clock=clock),
        "accept": lambda: orders.transition(table, "1234", EXECUTION, orders.ACCEPT_PAYMENT, clock=clock),
    }
    return [calls[step]() for step in steps]


def test_the_sample_sequence_run_three_times_answers_the_same_and_writes_nothing_new(orders_table: Any) -> None:
    table, clock = RecordingTable(orders_table), TickingClock()
    first = run_steps(table, clock, "create", "hold", "accept")
    after_first = stored(orders_table)
    assert table.writes == ["put_item", "update_item", "update_item"]

    for _ in range(2):  # the second and the third run, with the clock still moving
        assert run_steps(table, clock, "create", "hold", "accept") == first

    assert table.writes == ["put_item", "update_item", "update_item"]
    assert stored(orders_table) == after_first
    assert first[0]["order"] == {"orderId": "1234", "status": "created", "createdAt": "2026-03-01T00:00:00.500Z"}
    assert first[1] == {**first[0]["order"], "status": "hold", "heldAt": "2026-03-01T00:00:01.500Z"}
    assert list(first[1]) == ["orderId", "status", "createdAt", "heldAt"]  # printed in the same order, too


@pytest.mark.parametrize(
    ("done", "repeated"),
    [
        (("create",), "create"),
        (("create", "hold"), "hold"),
        (("create", "hold", "accept"), "accept"),
        (("create", "hold", "accept"), "hold"),
        (("create", "hold", "accept"), "create"),
        (("create", "hold"), "create"),
    ],
)
def test_a_step_repeated_after_it_took_effect_answers_the_same_twice_more(
    orders_table: Any, done: tuple[str, ...], repeated: str
) -> None:
    table, clock = RecordingTable(orders_table), TickingClock()
    answers = dict(zip(done, run_steps(table, clock, *done), strict=True))
    before, writes = stored(orders_table), list(table.writes)

    assert run_steps(table, clock, repeated, repeated) == [answers[repeated]] * 2
    assert table.writes == writes
    assert stored(orders_table) == before


def mark_failed(table: Any, order_id: str = "1234") -> None:
    """What the workflow's MarkOrderFailed state writes after a step failed for good."""
    table.update_item(
        Key={"orderId": order_id},
        UpdateExpression="SET #status = :failed, failureReason = :reason",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":failed": orders.FAILED, ":reason": "AcceptPayment: States.TaskFailed"},
    )


@pytest.mark.parametrize("step", [orders.HOLD_PAYMENT, orders.ACCEPT_PAYMENT])
def test_no_step_repeats_on_a_failed_order_even_one_it_took(orders_table: Any, step: orders.Transition) -> None:
    run_steps(orders_table, TickingClock(), "create", "hold")
    mark_failed(orders_table)
    before = stored(orders_table)

    with pytest.raises(orders.InvalidTransitionError, match="order 1234: the order failed"):
        orders.transition(orders_table, "1234", EXECUTION, step)
    assert stored(orders_table) == before


def test_another_execution_repeating_a_step_it_never_took_is_refused(orders_table: Any) -> None:
    table = RecordingTable(orders_table)
    run_steps(table, TickingClock(), "create", "hold", "accept")
    before, writes = stored(orders_table), list(table.writes)

    created = orders.create_order(table, {"orderId": "1234"}, OTHER_EXECUTION)
    for step in (orders.HOLD_PAYMENT, orders.ACCEPT_PAYMENT):
        with pytest.raises(orders.InvalidTransitionError, match="belongs to another execution"):
            orders.transition(table, "1234", OTHER_EXECUTION, step)

    assert created["rejection"]["error"] == "OrderAlreadyExists"
    assert table.writes == writes
    assert stored(orders_table) == before
