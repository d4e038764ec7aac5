"""Lambda entry points of the eventual path: DataLambda (stream record -> async state machine), the
async workflow's ScheduleHook, the fulfillment Lambda (hooks and the immediate workflow's same-day
step) and the reconciler. Parse the event, call the domain, shape the answer.

Each handler imports its own domain module in its body: a function never loads another's code
(pydantic models included) at cold start.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from commonlib import aws, faults
from commonlib.observability import logger, metrics, tracer
from commonlib.serialization import json_ready
from commonlib.warm_up import answers_warm_up
from enrollment import steps, store


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path="correlationId")
@tracer.capture_lambda_handler
@metrics.log_metrics
@faults.injectable
def fulfill_action(event: Any, context: LambdaContext) -> steps.FulfillmentAnswer:
    import uuid

    from enrollment.eventual import fulfillment

    # Validated once, by `fulfillment.handle_event` (its request model): a malformed payload or an action
    # never enrolled is answered as a named, audited rejection, not raised.
    result = fulfillment.handle_event(
        store.environment_tables(),
        event,
        context.aws_request_id,
        token=uuid.uuid4().hex,
        lease=fulfillment.lease_for(context.get_remaining_time_in_millis()),
    )
    # The contract the payload names (bounded: a rejected payload's may be anything), so that an operator
    # answering the ActionFailed alarm finds it from this line.
    named = event.get("contractId") if isinstance(event, dict) else None
    contract = named[:100] if isinstance(named, str) else None
    if result["status"] == fulfillment.REJECTED:
        logger.error("hook payload rejected", extra={"contract": contract, "action": result})
    elif result["status"] == store.ACTION_FAILED and not result["duplicate"]:
        metrics.add_metric(name="ActionFailed", unit="Count", value=1)
        logger.error("action failed", extra={"contract": contract, "action": result})
    else:
        logger.info("action handled", extra={"contract": contract, "action": result})
    return json_ready(result)


@functools.cache
def _batch_processor() -> Any:
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.KinesisDataStreams)


def _handle_stream_record(record: Any) -> dict[str, Any]:
    from enrollment.eventual import stream

    # A rejected record (malformed, or for no known contract) is reported, audited and skipped:
    # retrying it cannot help, and it must not block the records behind it in the shard.
    result = stream.handle_record(
        store.environment_tables(),
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
def schedule_hook(event: dict[str, Any], context: LambdaContext) -> steps.HookScheduled:
    step = steps.validated(steps.ScheduleHookEvent, event)  # before its code loads: a malformed event costs nothing
    from enrollment.eventual import hooks

    result = hooks.schedule_hook(
        store.environment_tables(), aws.client("scheduler"), _hook_target(hooks), step["contractId"], step["hook"]
    )
    logger.info("hook scheduled", extra={"contract": step["contractId"], "hook": result})
    return result


@answers_warm_up
@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
@faults.injectable
def reconcile(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """On its schedule (an EventBridge event) or on demand: `{"dryRun": true}` only reports, and
    `{"sweepHooks": true}` also lists every schedule of the hooks' group."""
    from datetime import timedelta

    from enrollment import offsets
    from enrollment.eventual import hooks
    from enrollment.eventual import reconcile as reconciler

    settings = reconciler.Settings(
        grace=timedelta(seconds=int(os.environ["RECONCILE_GRACE_SECONDS"])),
        offset_unit_seconds=offsets.unit_from_environment(),
        async_state_machine_arn=os.environ["ENROLLMENT_ASYNC_STATE_MACHINE_ARN"],
        hook_target=_hook_target(hooks),
        dry_run=bool(isinstance(event, dict) and event.get("dryRun")),
        sweep_hooks=bool(isinstance(event, dict) and event.get("sweepHooks")),
        payment_state_machine_arn=os.environ.get("PAYMENT_STATE_MACHINE_ARN") or None,
    )
    try:
        report = reconciler.reconcile(
            store.environment_tables(), aws.client("scheduler"), aws.client("stepfunctions"), settings
        )
    except reconciler.ReconcileError as error:
        _count_failed_actions(error.details["report"]["actionsFailed"], settings.dry_run)  # made before it failed
        raise
    _count_failed_actions(report["actionsFailed"], settings.dry_run)
    metrics.add_metric(name="ReconcilerRepairs", unit="Count", value=0 if settings.dry_run else report["repairs"])
    for name in report["foreignSchedules"]:
        logger.warning("a schedule in the hooks' group is no hook: left alone", extra={"schedule": name})
    for refused in report["redrivesRefused"]:
        logger.warning("an eventual workflow's re-drive was refused", extra={"redrive": refused})
    if report["repairs"]:
        logger.warning("reconciler found faults to repair", extra={"report": report})
    else:
        logger.info("reconciler found nothing to repair")
    return report


def _count_failed_actions(failed: list[str], dry_run: bool) -> None:
    """The actions the reconciler failed (their hook could not be re-created) alarm like any other."""
    if failed and not dry_run:
        metrics.add_metric(name="ActionFailed", unit="Count", value=len(failed))
        logger.error("actions failed", extra={"actions": failed})


def _hook_target(hooks: Any) -> Any:
    return hooks.HookTarget(
        schedule_group=os.environ["SCHEDULE_GROUP_NAME"],
        function_arn=os.environ["FULFILL_ACTION_FUNCTION_ARN"],
        role_arn=os.environ["SCHEDULER_ROLE_ARN"],
        dead_letter_queue_arn=os.environ["HOOK_DEAD_LETTER_QUEUE_ARN"],
    )
