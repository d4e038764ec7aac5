"""Lambda entry points of the payment workflow: parse the event, call the domain, shape the answer."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from commonlib import aws, faults
from commonlib.observability import logger, metrics, tracer
from commonlib.warm_up import answers_warm_up
from payment import orders


def _orders_table() -> Any:
    return aws.dynamodb_table(os.environ["ORDERS_TABLE_NAME"])


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path="executionId")
@tracer.capture_lambda_handler
@metrics.log_metrics
@faults.injectable
def create_order(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = orders.create_order(_orders_table(), event.get("request"), event["executionId"])
    metrics.add_metric(name=f"Order{result['outcome'].capitalize()}", unit="Count", value=1)
    logger.info("create order", extra={"outcome": result["outcome"], "rejection": result["rejection"]})
    return result


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path="executionId")
@tracer.capture_lambda_handler
@faults.injectable
def hold_payment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    order = orders.transition(_orders_table(), event["orderId"], event["executionId"], orders.HOLD_PAYMENT)
    logger.info("payment held", extra={"order": order})
    return {"order": order}


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path="executionId")
@tracer.capture_lambda_handler
@metrics.log_metrics
@faults.injectable
def accept_payment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    order = orders.transition(_orders_table(), event["orderId"], event["executionId"], orders.ACCEPT_PAYMENT)
    metrics.add_metric(name="PaymentAccepted", unit="Count", value=1)
    logger.info("payment accepted", extra={"order": order})
    return {"order": order, "confirmation": orders.confirmation_message(order)}
