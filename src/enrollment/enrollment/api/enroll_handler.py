"""Lambda entry point of the public API invoker (`EnrollmentApi`).

Kept apart from the workflow steps so that they do not import the event handler and idempotency
utilities they never use (cold start).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from commonlib import aws
from commonlib.errors import InvalidInputError
from commonlib.observability import logger, metrics, tracer
from commonlib.validation import parse
from commonlib.warm_up import answers_warm_up
from enrollment import model
from enrollment.api import clients, enroll_answer

SYNC_EXECUTION_TIMEOUT_SECONDS = 28  # the API Lambda's timeout is 29 s, API Gateway's 29 s

app = APIGatewayRestResolver()


@functools.cache
def _idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="idempotencyKey",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=False,
        expires_after_seconds=24 * 3600,
    )


@functools.cache
def _idempotent_start() -> Any:
    persistence = DynamoDBPersistenceLayer(
        table_name=os.environ["IDEMPOTENCY_TABLE_NAME"], boto3_client=aws.client("dynamodb")
    )
    return idempotent_function(
        data_keyword_argument="submission", persistence_store=persistence, config=_idempotency_config()
    )(_start)


def _start(submission: dict[str, Any]) -> dict[str, Any]:
    """The idempotent function: Powertools keeps what it returns, so it returns only final answers. A
    run in progress (409), a throttle (429) or a failure (5xx) is raised instead, which deletes the
    in-progress record: a retry with the same key runs again instead of replaying it."""
    answer = enroll_answer.start_enrollment(
        _stepfunctions(), os.environ["ENROLLMENT_STATE_MACHINE_ARN"], submission["offer"]
    )
    if not enroll_answer.is_final(answer):
        raise enroll_answer.NotFinalAnswer(answer)
    return answer


def _stepfunctions() -> Any:
    # Never retried by the SDK: a repeated StartSyncExecution is a second enrollment attempt.
    return aws.client("stepfunctions", read_timeout=SYNC_EXECUTION_TIMEOUT_SECONDS, total_attempts=1)


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def _correlation_id() -> str:
    return app.current_event.headers.get("X-Correlation-Id") or app.current_event.request_context.request_id


def _invalid_body(message: str, correlation_id: str) -> Response:
    return _json(
        400,
        {
            "error": "InvalidEnrollmentRequest",
            "errors": [{"field": "(body)", "message": message}],
            "correlationId": correlation_id,
        },
    )


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")  # Python's json would read NaN and Infinity


def _unidentified(correlation_id: str) -> Response:
    # API Gateway authenticated nobody (a misconfigured method): refused, never a shared owner.
    return _json(
        403, {"error": "Forbidden", "message": "the caller is not identified", "correlationId": correlation_id}
    )


@app.post("/enrollments")
def create_enrollment() -> Response:
    correlation_id = _correlation_id()
    client = clients.client_id(app.current_event.raw_event)
    if client is None:
        return _unidentified(correlation_id)
    raw = app.current_event.body or ""
    if len(raw.encode(errors="replace")) > model.MAX_REQUEST_BYTES:
        return _invalid_body(f"larger than {model.MAX_REQUEST_BYTES} bytes", correlation_id)
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except RecursionError:
        return _invalid_body("not valid JSON: nested too deeply", correlation_id)
    except (TypeError, ValueError):
        return _invalid_body("not valid JSON", correlation_id)
    try:
        parse(model.EnrollmentRequest, body)
    except InvalidInputError as invalid:
        logger.info("invalid enrollment request", extra={"errors": invalid.errors})
        return _json(
            400, {"error": "InvalidEnrollmentRequest", "errors": invalid.errors, "correlationId": correlation_id}
        )
    # The owner travels in the execution input (AcceptOffer takes it out before validating the offer,
    # whose model forbids the field, so a body cannot set it).
    offer = {**body, "correlationId": body.get("correlationId") or correlation_id, "ownerId": client}
    key = app.current_event.headers.get("Idempotency-Key")
    submission = {
        "offer": offer,
        "body": body,  # what a retry must repeat; the offer also carries this request's correlation id
        # Scoped to the client: another client's identical key is another record, never a replay or a 422.
        "idempotencyKey": f"{client} {key}" if key else None,
    }
    try:
        answer = _idempotent_start()(submission=submission)
    except enroll_answer.NotFinalAnswer as not_final:
        answer = not_final.answer
    # A replayed answer keeps the correlation id of the request that produced it.
    return _json(answer["statusCode"], {"correlationId": offer["correlationId"], **answer["body"]})


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _same_key_in_progress(error: IdempotencyAlreadyInProgressError) -> Response:
    return _json(
        409,
        {
            "error": "RequestInProgress",
            "message": "a request with this Idempotency-Key is in progress",
            "correlationId": _correlation_id(),
        },
    )


@app.exception_handler(IdempotencyValidationError)
def _same_key_other_body(error: IdempotencyValidationError) -> Response:
    return _json(
        422,
        {
            "error": "IdempotencyKeyReused",
            "message": "this Idempotency-Key was used with another body",
            "correlationId": _correlation_id(),
        },
    )


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    logger.exception("enrollment request failed")
    return _json(
        500,
        {
            "error": "EnrollmentFailed",
            "message": "the enrollment could not be completed; it is safe to retry",
            "correlationId": _correlation_id(),
        },
    )


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def api_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _idempotency_config().register_lambda_context(context)
    response = app.resolve(event, context)
    metrics.add_metric(name=f"EnrollmentHttp{response['statusCode']}", unit="Count", value=1)
    return response
