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
from commonlib.warm_up import answers_warm_up
from enrollment import store
from enrollment.store import Tables

STEP_CORRELATION = "offer.correlationId"


@functools.cache
def _tables() -> Tables:
    return Tables.from_environment()


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path="input.correlationId")
@tracer.capture_lambda_handler
@faults.injectable
def accept_offer(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import offers, offsets

    result = offers.acquire(
        _tables(),
        event.get("input"),  # with the API client's ownerId, which acquire takes out
        event["executionId"],
        parse_isoformat(event["startedAt"]),
        offsets.unit_from_environment(),
    )
    logger.info("offer received", extra={"outcome": result["outcome"], "rejection": result["rejection"]})
    return result


@answers_warm_up
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


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def rules_lab(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import rules

    offer = event["offer"]
    facts = rules.facts(offer["contractInfo"], offer["contractDraft"], event.get("account") or {})
    decision_rules = rules.load_rules()
    result = rules.evaluate(facts, decision_rules)
    # Public codes only: a failed rule's id or full reason may name an account flag.
    codes = [reason["code"] for reason in rules.public_reasons(result["failedRules"], decision_rules)]
    logger.info(
        "eligibility decided",
        extra={"eligible": result["eligible"], "reasonCodes": codes, "rulesVersion": result["rulesVersion"]},
    )
    return result


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def record_outcome(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import offers

    reason, public_reason = event.get("reason"), None
    if isinstance(reason, list):  # the rules lab's full reasons: the audit keeps them, a client sees codes
        from enrollment import rules

        public = rules.public_reasons_for([str(text) for text in reason], rules.load_rules())
        public_reason = "; ".join(item["message"] for item in public) or rules.NEUTRAL_REASON["message"]
        reason = "; ".join(reason)
    return offers.record_outcome(
        _tables(),
        event["offer"],
        event["executionId"],
        event["status"],
        event["step"],
        reason,
        event.get("rulesVersion"),
        public_reason=public_reason,
    )


@answers_warm_up
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


@answers_warm_up
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


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def publish_enrollment(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import publisher

    result = publisher.publish(aws.client("kinesis"), os.environ["ENROLLMENT_STREAM_NAME"], event["offer"])
    logger.info("enrollment published", extra=result)
    return result


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path="correlationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
@faults.injectable
def fulfill_action(event: Any, context: LambdaContext) -> dict[str, Any]:
    import uuid

    from enrollment import fulfillment

    # A malformed payload or an action never enrolled is answered as a named, audited rejection.
    result = fulfillment.handle_event(_tables(), event, context.aws_request_id, token=uuid.uuid4().hex)
    if result["status"] == fulfillment.REJECTED:
        logger.error("hook payload rejected", extra={"action": result})
    elif result["status"] == store.ACTION_FAILED and not result["duplicate"]:
        metrics.add_metric(name="ActionFailed", unit="Count", value=1)
        logger.error("action failed", extra={"action": result})
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


@answers_warm_up
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


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path="correlationId")
@tracer.capture_lambda_handler
@faults.injectable
def schedule_hook(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from enrollment import hooks

    result = hooks.create_hook(aws.client("scheduler"), _hook_target(hooks), event["hook"])
    logger.info("hook scheduled", extra={"contract": event["contractId"], "hook": result})
    return result


@answers_warm_up
@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@faults.injectable
def reconcile(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """On its schedule (an EventBridge event) or on demand (`{"dryRun": true}` only reports)."""
    from datetime import timedelta

    from enrollment import hooks, offsets
    from enrollment import reconcile as reconciler

    settings = reconciler.Settings(
        grace=timedelta(seconds=int(os.environ["RECONCILE_GRACE_SECONDS"])),
        offset_unit_seconds=offsets.unit_from_environment(),
        async_state_machine_arn=os.environ["ENROLLMENT_ASYNC_STATE_MACHINE_ARN"],
        hook_target=_hook_target(hooks),
        dry_run=bool(isinstance(event, dict) and event.get("dryRun")),
    )
    report = reconciler.reconcile(_tables(), aws.client("scheduler"), aws.client("stepfunctions"), settings)
    metrics.add_metric(name="ReconcilerRepairs", unit="Count", value=0 if settings.dry_run else report["repairs"])
    if report["repairs"]:
        logger.warning("reconciler found faults to repair", extra={"report": report})
    else:
        logger.info("reconciler found nothing to repair")
    return report


def _hook_target(hooks: Any) -> Any:
    return hooks.HookTarget(
        schedule_group=os.environ["SCHEDULE_GROUP_NAME"],
        function_arn=os.environ["FULFILL_ACTION_FUNCTION_ARN"],
        role_arn=os.environ["SCHEDULER_ROLE_ARN"],
        dead_letter_queue_arn=os.environ["HOOK_DEAD_LETTER_QUEUE_ARN"],
    )
