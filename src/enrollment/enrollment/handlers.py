"""Lambda entry points of the enrollment workflow steps: parse the event, call the domain, shape the answer."""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from commonlib import aws
from commonlib.clock import parse_isoformat
from commonlib.observability import logger, metrics, tracer
from commonlib.serialization import json_ready
from enrollment import fulfillment, model, offers, publisher, rules
from enrollment.store import Tables

STEP_CORRELATION = "offer.correlationId"


@functools.cache
def _tables() -> Tables:
    return Tables.from_environment()


def _offset_unit_seconds() -> int:
    return int(os.environ.get("OFFSET_UNIT_SECONDS", model.SECONDS_PER_DAY))


@logger.inject_lambda_context(correlation_id_path="input.correlationId")
@tracer.capture_lambda_handler
def accept_offer(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = offers.acquire(
        _tables(), event.get("input"), event["executionId"], parse_isoformat(event["startedAt"]), _offset_unit_seconds()
    )
    logger.info("offer received", extra={"outcome": result["outcome"], "rejection": result["rejection"]})
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
def verify_customer(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = offers.verify_customer(_tables(), event["offer"], event["executionId"])
    logger.info(
        "customer verified" if result["verified"] else "customer not verified", extra={"reason": result["reason"]}
    )
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
def rules_lab(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    offer = event["offer"]
    facts = rules.facts(offer["contractInfo"], offer["contractDraft"], event.get("account") or {})
    result = rules.evaluate(facts, rules.load_rules())
    logger.info("eligibility decided", extra=result)
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
def record_outcome(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reason = event.get("reason")
    if isinstance(reason, list):
        reason = "; ".join(reason)
    return offers.record_outcome(
        _tables(),
        event["offer"],
        event["executionId"],
        event["status"],
        event["step"],
        reason,
        event.get("rulesVersion"),
    )


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@metrics.log_metrics
def commit_enrollment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = offers.commit_enrollment(_tables(), event["offer"], event["executionId"], event["eligibility"])
    metrics.add_metric(name="ContractEnrolled", unit="Count", value=0 if result["replayed"] else 1)
    logger.info("enrollment committed", extra=result)
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
def revert_enrollment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    error = event.get("error") or {}
    reason = f"{error.get('Error', 'Unknown')}: {error.get('Cause', '')}"
    result = offers.revert_enrollment(_tables(), event["offer"], event["executionId"], reason)
    logger.warning("enrollment reverted", extra={**result, "reason": reason})
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
def publish_enrollment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = publisher.publish(aws.client("kinesis"), os.environ["ENROLLMENT_STREAM_NAME"], _tables(), event["offer"])
    logger.info("enrollment published", extra=result)
    return result


@logger.inject_lambda_context(correlation_id_path="correlationId")
@tracer.capture_lambda_handler
def fulfill_action(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = fulfillment.fulfil(
        _tables(), event["contractId"], event["action"], event["correlationId"], event.get("trigger", "hook")
    )
    logger.info("action handled", extra={"action": result})
    return json_ready(result)
