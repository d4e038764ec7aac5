"""API-key mode: two clients, each with its own API key on the stack's usage plan.

Client A is the session's key (the `EnrollmentApiKeyId` output). Client B is onboarded the way the
README shows: a new API key added to the API's usage plan, no code change, no redeploy. Each
contract is its creator's: the other client cannot read, cancel, replay or take it over, and learns
nothing of it. (The IAM-mode counterpart is in test_enrollment_iam_auth.py. A 409 ContractInProgress
cannot be provoked deterministically over HTTP: that it is never replayed is unit-tested in
tests/unit/test_clients.py.)
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import EnrollmentApi, LocalStack
from tests.support.enrollment import audit_trail, post, request

pytestmark = pytest.mark.integration
SEED = json.loads((Path(__file__).resolve().parents[2] / "events/enrollment/input.json").read_text())
NEUTRAL_CONFLICT = {"error": "ContractUnavailable", "message": "this contract id cannot be used"}


def offer(contract_id: str, **changes: Any) -> dict[str, Any]:
    return copy.deepcopy(SEED) | {"contractId": contract_id} | changes


def api_id(local_stack: LocalStack) -> str:
    return local_stack.outputs["EnrollmentApiUrl"].split("/restapis/", 1)[1].split("/", 1)[0]


@pytest.fixture(scope="module")
def key_b(local_stack: LocalStack) -> str:
    """Onboard client B: a new API key on the API's usage plan (what the README's commands do)."""
    apigateway = local_stack.client("apigateway")
    plan = next(
        plan
        for plan in apigateway.get_usage_plans(limit=500)["items"]
        if any(stage.get("apiId") == api_id(local_stack) for stage in plan.get("apiStages", []))
    )
    key = apigateway.create_api_key(name="enrollment-client-b", enabled=True)
    apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key["id"], keyType="API_KEY")
    return apigateway.get_api_key(apiKey=key["id"], includeValue=True)["value"]


def without_correlation(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "correlationId"}


def test_another_client_cannot_read_cancel_replay_or_take_a_contract(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, key_b: str
) -> None:
    url, key_a = enrollment_api.url, enrollment_api.api_key
    created = post(url, offer("CL-A-1"), key_a, {"Idempotency-Key": "cl-1", "X-Correlation-Id": "corr-of-a"})
    assert created.status == 201, created

    unknown_get = request("GET", f"{url}/CL-UNKNOWN-1", key_b)
    read = request("GET", f"{url}/CL-A-1", key_b)
    cancel = request("DELETE", f"{url}/CL-A-1", key_b)
    # Same key, same body: for B it is a request of its own, refused like any POST of A's contract id.
    replay = post(url, offer("CL-A-1"), key_b, {"Idempotency-Key": "cl-1"})
    other_key = post(url, offer("CL-A-1"), key_b, {"Idempotency-Key": "cl-1-b"})
    no_key = post(url, offer("CL-A-1"), key_b)

    assert unknown_get.status == 404
    for answer in (read, cancel):
        assert answer.status == 404
        assert answer.body == {"error": "EnrollmentNotFound", "message": "no offer for contract CL-A-1"}
        assert answer.body["message"] == unknown_get.body["message"].replace("CL-UNKNOWN-1", "CL-A-1")
    for answer in (replay, other_key, no_key):
        assert answer.status == 409, answer
        assert without_correlation(answer.body) == NEUTRAL_CONFLICT
        text = json.dumps(answer.body)
        assert "corr-of-a" not in text
        assert "enrolled" not in text
    # A still has its contract, untouched, and its own key still replays its answer.
    mine = request("GET", f"{url}/CL-A-1", key_a)
    assert (mine.status, mine.body["status"]) == (200, "enrolled")
    assert post(url, offer("CL-A-1"), key_a, {"Idempotency-Key": "cl-1"}) == created
    # Its owner hears the specific conflict.
    again = post(url, offer("CL-A-1"), key_a, {"Idempotency-Key": "cl-1-again"})
    assert (again.status, again.body["error"]) == (409, "ContractAlreadyEnrolled")


def test_the_same_idempotency_key_of_two_clients_is_two_requests(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, key_b: str
) -> None:
    url, key_a = enrollment_api.url, enrollment_api.api_key
    headers = {"Idempotency-Key": "cl-shared-2"}

    first_a = post(url, offer("CL-A-2"), key_a, headers)
    first_b = post(url, offer("CL-B-2", accountId="A-400"), key_b, headers)  # another body: no 422 across clients

    assert (first_a.status, first_a.body["contractId"]) == (201, "CL-A-2")
    assert (first_b.status, first_b.body["contractId"]) == (201, "CL-B-2")
    assert post(url, offer("CL-A-2"), key_a, headers) == first_a
    assert post(url, offer("CL-B-2", accountId="A-400"), key_b, headers) == first_b
    assert request("GET", f"{url}/CL-B-2", key_b).status == 200
    assert request("GET", f"{url}/CL-B-2", key_a).status == 404
    assert request("GET", f"{url}/CL-A-2", key_b).status == 404
    # B cancels its own contract; A's is still enrolled.
    assert request("DELETE", f"{url}/CL-B-2", key_b).body["status"] == "cancelled"
    assert request("GET", f"{url}/CL-A-2", key_a).body["status"] == "enrolled"


def test_no_answer_about_a_flagged_account_names_the_flag(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    """A-200 has the bankruptcy flag (events/enrollment/sample-accounts.json)."""
    url, key = enrollment_api.url, enrollment_api.api_key
    answer = post(url, offer("CL-A200-1", accountId="A-200"), key)
    status = request("GET", f"{url}/CL-A200-1", key)

    assert (answer.status, answer.body["status"]) == (200, "ineligible")
    assert answer.body["reasons"] == [
        {"code": "NotEligibleThroughThisChannel", "message": "not eligible through this channel"}
    ]
    assert (status.status, status.body["status"]) == (200, "ineligible")
    assert status.body["reason"] == "not eligible through this channel"
    for body in (answer.body, status.body):
        text = json.dumps(body).lower()
        assert "bankruptcy" not in text
        assert "flagged" not in text
    # The audit trail keeps the full reason.
    assert "rules-lab=ineligible: the account is flagged for bankruptcy" in audit_trail(local_stack, "CL-A200-1")
