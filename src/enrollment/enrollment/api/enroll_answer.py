"""The public API invoker: HTTP in, one synchronous run of `EnrollmentStateMachine`, HTTP out.

It validates the body (400 naming each offending field, nothing written), honours an
`Idempotency-Key` header with Powertools Idempotency, and maps the workflow's outcome to a status.
"""

from __future__ import annotations

import json
import sys
from http import HTTPStatus
from typing import Any

from commonlib.errors import DomainError, aws_errors_as_domain_errors
from commonlib.serialization import json_ready

SUCCESS_STATUS = {
    "enrolled": HTTPStatus.CREATED,
    "ineligible": HTTPStatus.OK,
    "not_verified": HTTPStatus.UNPROCESSABLE_ENTITY,
}
CONFLICT_ERRORS = {"ContractInProgress", "ContractAlreadyEnrolled", "ContractCancelled", "ContractUnavailable"}
# Conflicts that may change while the key is kept: a run in progress, or a contract id that is another
# client's (which may be one in progress: the neutral answer must not be replayed differently).
TRANSIENT_CONFLICTS = {"ContractInProgress", "ContractUnavailable"}


class NotFinalAnswer(Exception):  # noqa: N818 - an answer, not an error
    """An answer that must not be kept for an Idempotency-Key (raised so Powertools drops its record)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__(answer["statusCode"])
        self.answer = answer


def is_final(answer: dict[str, Any]) -> bool:
    """Whether a retry with the same key may get this answer replayed: never a 409 for a run in progress
    (or the neutral one), a 429 or a 5xx."""
    status = answer["statusCode"]
    if status == HTTPStatus.TOO_MANY_REQUESTS or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return False
    return not (status == HTTPStatus.CONFLICT and answer["body"].get("error") in TRANSIENT_CONFLICTS)


def public_output(output: dict[str, Any]) -> dict[str, Any]:
    """What the client may see of the workflow's output. An ineligible answer names public reason codes
    only (a sensitive rule's reason, e.g. about an account flag, is one neutral code; the full reasons
    are in the audit trail); an enrolled one leaves out each eventual action's free-form data and the
    first payment's execution ARN (it names the account, region and an internal state machine)."""
    if output.get("status") == "ineligible":
        from enrollment.immediate import rules

        public = {key: value for key, value in output.items() if key not in ("reasons", "failedRules")}
        reasons = rules.public_reasons(output.get("failedRules") or [], rules.load_rules())
        return {**public, "reasons": reasons or [rules.NEUTRAL_REASON]}
    if output.get("status") == "enrolled":
        public = dict(output)
        if isinstance(output.get("eventualActions"), list):
            public["eventualActions"] = [
                {key: value for key, value in action.items() if key != "data"} if isinstance(action, dict) else action
                for action in output["eventualActions"]
            ]
        if isinstance(output.get("firstPayment"), dict):
            public["firstPayment"] = {k: v for k, v in output["firstPayment"].items() if k != "executionArn"}
        return public
    return output


def still_running(contract_id: Any) -> dict[str, Any]:
    """The run outlived the wait the API can give it (the SDK's read timeout): it goes on, and it may
    enroll the contract. Not final, so a retry with the same key runs again, which cannot enroll twice:
    the one-contract guard answers it (409 while the run holds it, `ContractAlreadyEnrolled` after)."""
    return {
        "statusCode": int(HTTPStatus.GATEWAY_TIMEOUT),
        "body": {
            "error": "EnrollmentStillRunning",
            "message": (
                f"the enrollment did not finish in time and may still complete: GET /enrollments/{contract_id} "
                "shows its outcome; sending this request again is safe, a contract is never enrolled twice"
            ),
        },
    }


def _is_read_timeout(error: Exception) -> bool:
    # Loaded by then: the client that raised it is botocore's.
    exceptions = sys.modules.get("botocore.exceptions")
    return exceptions is not None and isinstance(error, exceptions.ReadTimeoutError)


class EnrollmentWorkflowError(DomainError):
    """The workflow failed unexpectedly; the client gets a 5xx with the correlation id only."""


def start_enrollment(stepfunctions: Any, state_machine_arn: str, offer: dict[str, Any]) -> dict[str, Any]:
    """Run the workflow synchronously; return `{"statusCode", "body"}` for every expected outcome, a run
    that outlives the API's wait included (`still_running`).

    Raises `EnrollmentWorkflowError` for anything unexpected, so an idempotency record is not kept
    for it and the client may retry with the same key."""
    try:
        with aws_errors_as_domain_errors():
            execution = stepfunctions.start_sync_execution(stateMachineArn=state_machine_arn, input=json.dumps(offer))
    except Exception as error:
        if _is_read_timeout(error):
            return still_running(offer.get("contractId"))
        raise
    status = execution["status"]
    if status == "SUCCEEDED":
        output = json.loads(execution["output"])
        code = SUCCESS_STATUS.get(output.get("status"))
        if code is None:
            raise EnrollmentWorkflowError(f"unexpected workflow output status {output.get('status')!r}")
        return {"statusCode": int(code), "body": json_ready(public_output(output))}
    error, cause = execution.get("error", ""), execution.get("cause", "")
    if status == "FAILED" and error in CONFLICT_ERRORS:
        return {"statusCode": int(HTTPStatus.CONFLICT), "body": {"error": error, "message": cause}}
    if status == "FAILED" and error == "InvalidEnrollmentRequest":
        return {"statusCode": int(HTTPStatus.BAD_REQUEST), "body": {"error": error, "errors": json.loads(cause)}}
    raise EnrollmentWorkflowError(f"workflow ended {status}: {error}", error=error, cause=cause[:2000])
