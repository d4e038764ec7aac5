"""Lambda entry point of `GET` and `DELETE /enrollments/{contractId}` (`EnrollmentManageApi`)."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from commonlib import aws, faults
from commonlib.observability import logger, metrics, tracer
from commonlib.warm_up import answers_warm_up
from enrollment import offsets, store
from enrollment.api import clients
from enrollment.eventual import manage

CONTRACT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
app = APIGatewayRestResolver()


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(body))


def _invalid(contract_id: str) -> Response | None:
    if CONTRACT_ID.match(contract_id):
        return None
    return _json(
        400, {"error": "InvalidContractId", "errors": [{"field": "contractId", "message": "not a contract id"}]}
    )


def _client() -> str | None:
    return clients.client_id(app.current_event.raw_event)


def _not_found(contract_id: str) -> Response:
    # The same answer for an unknown contract and for another client's.
    return _json(404, {"error": "EnrollmentNotFound", "message": f"no offer for contract {contract_id}"})


UNIDENTIFIED = {"error": "Forbidden", "message": "the caller is not identified"}


@app.get("/enrollments/<contract_id>")
def get_enrollment(contract_id: str) -> Response:
    if (client := _client()) is None:
        return _json(403, UNIDENTIFIED)
    if (invalid := _invalid(contract_id)) is not None:
        return invalid
    status = manage.enrollment_status(
        store.environment_tables(), contract_id, offset_unit_seconds=offsets.unit_from_environment(), owner_id=client
    )
    if status is None:
        return _not_found(contract_id)
    return _json(200, status)


@app.delete("/enrollments/<contract_id>")
def cancel_enrollment(contract_id: str) -> Response:
    if (client := _client()) is None:
        return _json(403, UNIDENTIFIED)
    if (invalid := _invalid(contract_id)) is not None:
        return invalid
    result = manage.cancel_enrollment(
        store.environment_tables(),
        aws.client("scheduler"),
        os.environ["SCHEDULE_GROUP_NAME"],
        contract_id,
        offset_unit_seconds=offsets.unit_from_environment(),
        owner_id=client,
    )
    if result["outcome"] == "not_found":
        return _not_found(contract_id)
    if result["outcome"] == "not_cancellable":
        message = f"contract {contract_id} is {result['status']}; only an enrolled contract can be cancelled"
        return _json(409, {"error": "NotCancellable", "status": result["status"], "message": message})
    logger.info("enrollment cancelled", extra={"contract": contract_id, **result})
    return _json(
        200,
        {"contractId": contract_id, "status": manage.CANCELLED, **{k: v for k, v in result.items() if k != "outcome"}},
    )


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response:
    logger.exception("enrollment management request failed")
    return _json(500, {"error": "InternalError", "message": "the request could not be completed; it is safe to retry"})


@answers_warm_up
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
@faults.injectable
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = app.resolve(event, context)
    metrics.add_metric(name=f"EnrollmentManageHttp{response['statusCode']}", unit="Count", value=1)
    return response
