from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from enrollment.api import enroll_answer, enroll_handler

EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"


class FakeStepFunctions:
    """Stands in for the EXPRESS sync start; records every start so tests can count them."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.inputs: list[dict[str, Any]] = []

    def start_sync_execution(self, stateMachineArn: str, input: str) -> dict[str, Any]:  # noqa: N803
        self.inputs.append(json.loads(input))
        return self.answers.pop(0)


def succeeded(output: dict[str, Any]) -> dict[str, Any]:
    return {"status": "SUCCEEDED", "output": json.dumps(output)}


def failed(error: str, cause: str) -> dict[str, Any]:
    return {"status": "FAILED", "error": error, "cause": cause}


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (succeeded({"status": "enrolled"}), 201),
        (succeeded({"status": "ineligible", "reasons": ["x"]}), 200),
        (succeeded({"status": "not_verified", "reason": "AccountNotFound"}), 422),
        (failed("ContractInProgress", "contract C is being processed"), 409),
        (failed("ContractAlreadyEnrolled", "contract C is already enrolled"), 409),
        (failed("InvalidEnrollmentRequest", json.dumps([{"field": "contractId", "message": "bad"}])), 400),
    ],
)
def test_workflow_outcomes_map_to_http(answer: dict[str, Any], status: int) -> None:
    assert enroll_answer.start_enrollment(FakeStepFunctions(answer), "arn", {"contractId": "C"})["statusCode"] == status


@pytest.mark.parametrize(
    "answer",
    [failed("EnrollmentFailed", "Traceback: secret internals"), {"status": "TIMED_OUT"}, succeeded({"status": "?"})],
)
def test_unexpected_outcomes_raise(answer: dict[str, Any]) -> None:
    with pytest.raises(enroll_answer.EnrollmentWorkflowError):
        enroll_answer.start_enrollment(FakeStepFunctions(answer), "arn", {"contractId": "C"})


class TimedOutStepFunctions(FakeStepFunctions):
    """The first start outlives the SDK's read timeout (the run goes on); later starts answer."""

    def start_sync_execution(self, stateMachineArn: str, input: str) -> dict[str, Any]:  # noqa: N803
        if not self.inputs:
            self.inputs.append(json.loads(input))
            raise ReadTimeoutError(endpoint_url="http://states")
        return super().start_sync_execution(stateMachineArn, input)


def test_a_run_that_outlives_the_wait_is_504_still_running_never_failed() -> None:
    answer = enroll_answer.start_enrollment(TimedOutStepFunctions(), "arn", {"contractId": "C-1"})

    assert answer["statusCode"] == 504
    assert answer["body"]["error"] == "EnrollmentStillRunning"
    assert "GET /enrollments/C-1" in answer["body"]["message"]
    assert not enroll_answer.is_final(answer)


def call(http: Any, event_name: str, lambda_context: Any, **changes: Any) -> tuple[int, dict[str, Any]]:
    event = json.loads((EVENTS / event_name).read_text())
    event.update(changes)
    response = http.api_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def use(monkeypatch: pytest.MonkeyPatch, fake: FakeStepFunctions) -> None:
    monkeypatch.setattr(enroll_handler, "_stepfunctions", lambda: fake)


def test_invalid_body_is_400_naming_each_field_and_starts_nothing(
    http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    fake = FakeStepFunctions()
    use(monkeypatch, fake)

    status, body = call(http, "api-post-invalid.json", lambda_context)

    assert status == 400
    assert sorted(e["field"] for e in body["errors"]) == [
        "accountId", "contractDraft.List.0.offset", "contractId",
        "contractInfo.monthlyPayment", "contractInfo.termMonths",
    ]  # fmt: skip
    assert body["correlationId"] == "req-invalid"
    assert fake.inputs == []


@pytest.mark.parametrize("raw", ["not json", "", "[1, 2]", "null"])
def test_non_object_bodies_are_400(http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any, raw: str) -> None:
    use(monkeypatch, FakeStepFunctions())
    status, body = call(http, "api-post-invalid.json", lambda_context, body=raw)
    assert status == 400
    assert body["errors"][0]["field"] == "(body)"


def test_eligible_is_201_with_correlation_id(http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    fake = FakeStepFunctions(succeeded({"status": "enrolled", "contractId": "C-2001", "correlationId": "req-eligible"}))
    use(monkeypatch, fake)

    status, body = call(http, "api-post-eligible.json", lambda_context)

    assert status == 201
    assert body["status"] == "enrolled"
    assert fake.inputs[0]["correlationId"] == "req-eligible"
    assert fake.inputs[0]["contractId"] == "C-2001"


def test_same_idempotency_key_replays_the_original_answer(
    http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    fake = FakeStepFunctions(succeeded({"status": "enrolled", "correlationId": "req-eligible"}))
    use(monkeypatch, fake)

    first = call(http, "api-post-eligible.json", lambda_context)
    event = json.loads((EVENTS / "api-post-eligible.json").read_text())
    event["requestContext"]["requestId"] = "req-retry"
    second = call(http, "api-post-eligible.json", lambda_context, requestContext=event["requestContext"])

    assert first == second
    assert len(fake.inputs) == 1


def test_same_key_with_another_body_is_422(http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    use(monkeypatch, FakeStepFunctions(succeeded({"status": "enrolled"})))
    call(http, "api-post-eligible.json", lambda_context)
    other = json.loads((EVENTS / "api-post-eligible.json").read_text())
    changed = json.loads(other["body"]) | {"contractId": "C-9999"}

    status, body = call(http, "api-post-eligible.json", lambda_context, body=json.dumps(changed))

    assert (status, body["error"]) == (422, "IdempotencyKeyReused")


def test_unexpected_failure_is_500_without_internals(
    http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    use(monkeypatch, FakeStepFunctions(failed("EnrollmentFailed", "Traceback (most recent call last): secret")))

    status, body = call(http, "api-post-ineligible.json", lambda_context)

    assert status == 500
    assert body == {
        "error": "EnrollmentFailed",
        "message": "the enrollment could not be completed; it is safe to retry",
        "correlationId": "req-ineligible",
    }


def test_a_request_whose_run_outlived_the_wait_may_be_sent_again_with_its_key(
    http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    """The 504 is not kept for the Idempotency-Key: the same request runs the workflow again, and the
    one-contract guard answers it (here the first run had enrolled the contract meanwhile)."""
    fake = TimedOutStepFunctions(failed("ContractAlreadyEnrolled", "contract C-2001 is already enrolled"))
    use(monkeypatch, fake)

    first = call(http, "api-post-eligible.json", lambda_context)
    second = call(http, "api-post-eligible.json", lambda_context)

    assert first[0] == 504
    assert set(first[1]) == {"error", "message", "correlationId"}
    assert first[1]["error"] == "EnrollmentStillRunning"
    assert (second[0], second[1]["error"]) == (409, "ContractAlreadyEnrolled")
    assert len(fake.inputs) == 2
