from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from payment import handlers

EVENTS = Path(__file__).resolve().parents[2] / "events" / "payment"


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def test_sample_events_drive_the_three_handlers(orders_table: Any, lambda_context: Any) -> None:
    created = handlers.create_order(event("create-order.json"), lambda_context)
    held = handlers.hold_payment(event("hold-payment.json"), lambda_context)
    accepted = handlers.accept_payment(event("accept-payment.json"), lambda_context)

    assert created["outcome"] == "created"
    assert held["order"]["status"] == "hold"
    assert accepted["order"]["status"] == "paid"
    assert accepted["confirmation"].startswith("Payment for order invoke-1001 accepted at ")


def test_sample_events_run_again_answer_the_same_and_write_nothing(orders_table: Any, lambda_context: Any) -> None:
    """README's `sam remote invoke` examples, run a second and a third time: the same answers, no writes."""
    invocations = [
        (handlers.create_order, "create-order.json"),
        (handlers.hold_payment, "hold-payment.json"),
        (handlers.accept_payment, "accept-payment.json"),
    ]
    first = [handler(event(name), lambda_context) for handler, name in invocations]
    after_first = orders_table.scan(ConsistentRead=True)["Items"]

    for _ in range(2):
        assert [handler(event(name), lambda_context) for handler, name in invocations] == first
        assert orders_table.scan(ConsistentRead=True)["Items"] == after_first


def test_create_handler_returns_rejection_as_data(orders_table: Any, lambda_context: Any) -> None:
    result = handlers.create_order({"request": {"orderId": ""}, "executionId": "e-1"}, lambda_context)

    assert result["outcome"] == "rejected"
    assert result["rejection"]["error"] == "InvalidOrderInput"


def test_transition_handler_raises_domain_error_for_unexpected_state(orders_table: Any, lambda_context: Any) -> None:
    from commonlib.errors import ConditionNotMetError
    from payment.orders import InvalidTransitionError

    handlers.create_order(event("create-order.json"), lambda_context)

    with pytest.raises(ConditionNotMetError) as refused:
        handlers.accept_payment(event("accept-payment.json"), lambda_context)
    assert isinstance(refused.value, InvalidTransitionError)
    assert "cannot accept payment for order invoke-1001: the order is 'created'" in str(refused.value)
    assert orders_table.get_item(Key={"orderId": "invoke-1001"})["Item"]["status"] == "created"


def test_missing_table_is_a_named_domain_error(aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    from commonlib import aws as aws_clients
    from commonlib.errors import ResourceMissingError

    monkeypatch.setenv("ORDERS_TABLE_NAME", "NoSuchTable")
    aws_clients.dynamodb_table.cache_clear()
    with pytest.raises(ResourceMissingError):
        handlers.hold_payment(event("hold-payment.json"), lambda_context)
