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
from enrollment import eventual, fulfillment, hooks, model, offers, publisher, rules
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


@functools.cache
def _batch_processor() -> Any:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.KinesisDataStreams)


def _handle_stream_record(record: Any) -> dict[str, Any]:
    try:
        parsed = eventual.StreamRecord.model_validate_json(record.kinesis.data_as_text(), strict=True)
    except ValueError as error:
        # A malformed record is reported and skipped: retrying it cannot help, and it must not
        # block the records behind it in the shard.
        reason = str(error).splitlines()[0][:500]
        eventual.reject_record(aws.client("sqs"), os.environ["REJECTED_RECORDS_QUEUE_URL"], record, reason)
        metrics.add_metric(name="StreamRecordRejected", unit="Count", value=1)
        logger.error(
            "stream record rejected", extra={"sequenceNumber": record.kinesis.sequence_number, "reason": reason}
        )
        return {"rejected": reason}
    result = eventual.start_eventual_workflow(
        _tables(), aws.client("stepfunctions"), os.environ["ENROLLMENT_ASYNC_STATE_MACHINE_ARN"], parsed
    )
    logger.info("stream record handled", extra={"contract": parsed.contractId, **result})
    return result


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def data_lambda(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """DataLambda (seed name): stream record -> JSON -> the async enrollment state machine."""
    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(
        event=event, record_handler=_handle_stream_record, processor=_batch_processor(), context=context
    )


@logger.inject_lambda_context(correlation_id_path="correlationId")
@tracer.capture_lambda_handler
def schedule_hook(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    target = hooks.HookTarget(
        schedule_group=os.environ["SCHEDULE_GROUP_NAME"],
        function_arn=os.environ["FULFILL_ACTION_FUNCTION_ARN"],
        role_arn=os.environ["SCHEDULER_ROLE_ARN"],
        dead_letter_queue_arn=os.environ["HOOK_DEAD_LETTER_QUEUE_ARN"],
    )
    result = hooks.create_hook(aws.client("scheduler"), target, event["hook"])
    logger.info("hook scheduled", extra={"contract": event["contractId"], "hook": result})
    return result
