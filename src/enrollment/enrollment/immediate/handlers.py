"""Lambda entry points of the immediate workflow's steps (`EnrollmentStateMachine`): parse the event, call the
domain, shape the answer.

Each handler checks its event once (`enrollment.steps.validated`): what crosses the state machine's
boundary is typed there, in and out. Every step's function loads this module, so each handler imports
the domain module of its own step in its body: a function never loads another step's code (pydantic
models included) at cold start.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from commonlib import aws, faults
from commonlib.clock import parse_isoformat
from commonlib.observability import logger, metrics, tracer
from commonlib.warm_up import answers_warm_up
from enrollment import steps, store

STEP_CORRELATION = "offer.correlationId"


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path="input.correlationId")
@tracer.capture_lambda_handler
@faults.injectable
def accept_offer(event: dict[str, Any], context: LambdaContext) -> steps.Acceptance:
    from enrollment import offsets
    from enrollment.immediate import offers

    step = steps.validated(steps.AcceptOfferEvent, event)
    result = offers.acquire(
        store.environment_tables(),
        step.get("input"),  # with the API client's ownerId, which acquire takes out
        step["executionId"],
        parse_isoformat(step["startedAt"]),
        offsets.unit_from_environment(),
    )
    logger.info("offer received", extra={"outcome": result["outcome"], "rejection": result["rejection"]})
    return result


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def verify_customer(event: dict[str, Any], context: LambdaContext) -> steps.Verification:
    from enrollment.immediate import offers

    step = steps.validated(steps.OfferStepEvent, event)
    result = offers.verify_customer(store.environment_tables(), step["offer"], step["executionId"])
    logger.info(
        "customer verified" if result["verified"] else "customer not verified", extra={"reason": result["reason"]}
    )
    return result


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def rules_lab(event: dict[str, Any], context: LambdaContext) -> steps.Eligibility:
    from enrollment.immediate import rules

    step = steps.validated(steps.RulesLabEvent, event)
    offer = step["offer"]
    facts = rules.facts(offer["contractInfo"], offer["contractDraft"], step.get("account") or {})
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
def record_outcome(event: dict[str, Any], context: LambdaContext) -> steps.OutcomeRecorded:
    from enrollment.immediate import offers

    step = steps.validated(steps.RecordOutcomeEvent, event)
    reason, public_reason = step.get("reason"), None
    if isinstance(reason, list):  # the rules lab's full reasons: the audit keeps them, a client sees codes
        from enrollment.immediate import rules

        public = rules.public_reasons_for([str(text) for text in reason], rules.load_rules())
        public_reason = "; ".join(item["message"] for item in public) or rules.NEUTRAL_REASON["message"]
        reason = "; ".join(reason)
    return offers.record_outcome(
        store.environment_tables(),
        step["offer"],
        step["executionId"],
        step["status"],
        step["step"],
        reason,
        step.get("rulesVersion"),
        public_reason=public_reason,
    )


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@metrics.log_metrics
@faults.injectable
def commit_enrollment(event: dict[str, Any], context: LambdaContext) -> steps.Commitment:
    from enrollment.immediate import offers

    step = steps.validated(steps.CommitEvent, event)
    result = offers.commit_enrollment(
        store.environment_tables(), step["offer"], step["executionId"], step["eligibility"]
    )
    metrics.add_metric(name="ContractEnrolled", unit="Count", value=0 if result["replayed"] else 1)
    logger.info("enrollment committed", extra=result)
    return result


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def revert_enrollment(event: dict[str, Any], context: LambdaContext) -> steps.Reversal:
    from enrollment.immediate import offers

    step = steps.validated(steps.RevertEvent, event)
    error = step.get("error") or {}
    reason = f"{error.get('Error', 'Unknown')}: {error.get('Cause', '')}"
    result = offers.revert_enrollment(store.environment_tables(), step["offer"], step["executionId"], reason)
    logger.warning("enrollment reverted", extra={**result, "reason": reason})
    return result


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=STEP_CORRELATION)
@tracer.capture_lambda_handler
@faults.injectable
def publish_enrollment(event: dict[str, Any], context: LambdaContext) -> steps.Publication:
    from enrollment.immediate import publisher

    step = steps.validated(steps.PublishEvent, event)
    result = publisher.publish(aws.client("kinesis"), os.environ["ENROLLMENT_STREAM_NAME"], step["offer"])
    logger.info("enrollment published", extra=result)
    return result
