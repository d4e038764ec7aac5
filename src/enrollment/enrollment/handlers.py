"""Lambda entry points of the enrollment workflow steps: parse the event, call the domain, shape the answer.

Every step's function loads this module, so each handler imports the domain module of its own step
in its body: a function never loads another step's code (pydantic models included) at cold start.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from commonlib import aws, faults
from commonlib.clock import parse_isoformat
from commonlib.observability import logger, metrics, tracer
from commonlib.serialization import json_ready
from enrollment.store import Tables

STEP_CORRELATION = "offer.correlationId"


@functools.cache
def _tables() -> Tables:
    return Tables.from_environment()


@logger.inject_lambda_context(correlation_id_path="input.correlationId")
@tracer.capture_lambda_handler
@faults.injectable
def accept_offer(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import offers, offsets

    result = offers.acquire(
        _tables(),
        event.get("input"),
        event["executionId"],
        parse_isoformat(event["startedAt"]),
        offsets.unit_from_environment(),
    )
    logger.info("offer received", extra={"outcome": result["outcome"], "rejection": result["rejection"]})
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def verify_customer(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import offers

    result = offers.verify_customer(_tables(), event["offer"], event["executionId"])
    logger.info(
        "customer verified" if result["verified"] else "customer not verified", extra={"reason": result["reason"]}
    )
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def rules_lab(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import rules

    offer = event["offer"]
    facts = rules.facts(offer["contractInfo"], offer["contractDraft"], event.get("account") or {})
    result = rules.evaluate(facts, rules.load_rules())
    logger.info("eligibility decided", extra=result)
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def record_outcome(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import offers

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
@faults.injectable
def commit_enrollment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import offers

    result = offers.commit_enrollment(_tables(), event["offer"], event["executionId"], event["eligibility"])
    metrics.add_metric(name="ContractEnrolled", unit="Count", value=0 if result["replayed"] else 1)
    logger.info("enrollment committed", extra=result)
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def revert_enrollment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import offers

    error = event.get("error") or {}
    reason = f"{error.get('Error', 'Unknown')}: {error.get('Cause', '')}"
    result = offers.revert_enrollment(_tables(), event["offer"], event["executionId"], reason)
    logger.warning("enrollment reverted", extra={**result, "reason": reason})
    return result


@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def publish_enrollment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import publisher

    result = publisher.publish(aws.client("kinesis"), os.environ["ENROLLMENT_STREAM_NAME"], event["offer"])
    logger.info("enrollment published", extra=result)
    return result


@logger.inject_lambda_context(correlation_id_path="correlationId")
@tracer.capture_lambda_handler
@faults.injectable
def fulfill_action(event: Any, context: LambdaContext) -> dict[str, Any]:
    from enrollment import fulfillment

    # A malformed payload or an action never enrolled is answered as a named, audited rejection.
    result = fulfillment.handle_event(_tables(), event, context.aws_request_id)
    if result["status"] == fulfillment.REJECTED:
        logger.error("hook payload rejected", extra={"action": result})
    else:
        logger.info("action handled", extra={"action": result})
    return json_ready(result)


@functools.cache
def _batch_processor() -> Any:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.KinesisDataStreams)


def _handle_stream_record(record: Any) -> dict[str, Any]:
    from enrollment import eventual

    # A rejected record (malformed, or for no known contract) is reported, audited and skipped:
    # retrying it cannot help, and it must not block the records behind it in the shard.
    result = eventual.handle_record(
        _tables(),
        aws.client("stepfunctions"),
        aws.client("sqs"),
        os.environ["ENROLLMENT_ASYNC_STATE_MACHINE_ARN"],
        os.environ["REJECTED_RECORDS_QUEUE_URL"],
        record,
    )
    if "rejected" in result:
        metrics.add_metric(name="StreamRecordRejected", unit="Count", value=1)
        logger.error("stream record rejected", extra={"sequenceNumber": record.kinesis.sequence_number, **result})
    else:
        logger.info("stream record handled", extra={"sequenceNumber": record.kinesis.sequence_number, **result})
    return result


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@faults.injectable
def data_lambda(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """DataLambda (seed name): stream record -> JSON -> the async enrollment state machine."""
    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(
        event=event, record_handler=_handle_stream_record, processor=_batch_processor(), context=context
    )


@logger.inject_lambda_context(correlation_id_path="correlationId")
@tracer.capture_lambda_handler
@faults.injectable
def schedule_hook(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import hooks

    target = hooks.HookTarget(
        schedule_group=os.environ["SCHEDULE_GROUP_NAME"],
        function_arn=os.environ["FULFILL_ACTION_FUNCTION_ARN"],
        role_arn=os.environ["SCHEDULER_ROLE_ARN"],
        dead_letter_queue_arn=os.environ["HOOK_DEAD_LETTER_QUEUE_ARN"],
    )
    result = hooks.create_hook(aws.client("scheduler"), target, event["hook"])
    logger.info("hook scheduled", extra={"contract": event["contractId"], "hook": result})
    return result
