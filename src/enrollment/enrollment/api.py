"""The public API invoker: HTTP in, one synchronous run of `EnrollmentStateMachine`, HTTP out.

It validates the body (400 naming each offending field, nothing written), honours an
`Idempotency-Key` header with Powertools Idempotency, and maps the workflow's outcome to a status.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from commonlib.errors import DomainError, aws_errors_as_domain_errors
from commonlib.serialization import json_ready

SUCCESS_STATUS = {
    "enrolled": HTTPStatus.CREATED,
    "ineligible": HTTPStatus.OK,
    "not_verified": HTTPStatus.UNPROCESSABLE_ENTITY,
}
CONFLICT_ERRORS = {"ContractInProgress", "ContractAlreadyEnrolled", "ContractCancelled"}


class EnrollmentWorkflowError(DomainError):
    """The workflow failed unexpectedly; the client gets a 5xx with the correlation id only."""


def start_enrollment(stepfunctions: Any, state_machine_arn: str, offer: dict[str, Any]) -> dict[str, Any]:
    """Run the workflow synchronously; return `{"statusCode", "body"}` for every expected outcome.

    Raises `EnrollmentWorkflowError` for anything unexpected, so an idempotency record is not kept
    for it and the client may retry with the same key."""
    with aws_errors_as_domain_errors():
        execution = stepfunctions.start_sync_execution(stateMachineArn=state_machine_arn, input=json.dumps(offer))
    status = execution["status"]
    if status == "SUCCEEDED":
        output = json.loads(execution["output"])
        code = SUCCESS_STATUS.get(output.get("status"))
        if code is None:
            raise EnrollmentWorkflowError(f"unexpected workflow output status {output.get('status')!r}")
        return {"statusCode": int(code), "body": json_ready(output)}
    error, cause = execution.get("error", ""), execution.get("cause", "")
    if status == "FAILED" and error in CONFLICT_ERRORS:
        return {"statusCode": int(HTTPStatus.CONFLICT), "body": {"error": error, "message": cause}}
    if status == "FAILED" and error == "InvalidEnrollmentRequest":
        return {"statusCode": int(HTTPStatus.BAD_REQUEST), "body": {"error": error, "errors": json.loads(cause)}}
    raise EnrollmentWorkflowError(f"workflow ended {status}: {error}", error=error, cause=cause[:2000])
