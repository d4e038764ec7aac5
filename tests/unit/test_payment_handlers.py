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


def test_create_handler_returns_rejection_as_data(orders_table: Any, lambda_context: Any) -> None:
    result = handlers.create_order({"request": {"orderId": ""}, "executionId": "e-1"}, lambda_context)

    assert result["outcome"] == "rejected"
    assert result["rejection"]["error"] == "InvalidOrderInput"


def test_transition_handler_raises_domain_error_for_unexpected_state(orders_table: Any, lambda_context: Any) -> None:
    from commonlib.errors import ConditionNotMetError

    with pytest.raises(ConditionNotMetError):
        handlers.accept_payment(event("accept-payment.json"), lambda_context)


def test_missing_table_is_a_named_domain_error(aws: None, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    from commonlib import aws as aws_clients
    from commonlib.errors import ResourceMissingError

    monkeypatch.setenv("ORDERS_TABLE_NAME", "NoSuchTable")
    aws_clients.dynamodb_table.cache_clear()
    with pytest.raises(ResourceMissingError):
        handlers.hold_payment(event("hold-payment.json"), lambda_context)
