"""`ApiAuthType=AWS_IAM`: the same template deployed a second time (NamePrefix iam-) on the same
emulator, where the enrollment API accepts SigV4-signed requests instead of an API key.

The emulator runs with AUTH=true, so it checks each signature and the caller's IAM policies for
`execute-api:Invoke`. Two IAM users allowed to invoke the API are two clients: each
contract is its creator's."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
import stack
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from tests.integration.conftest import LocalStack
from tests.support.enrollment import HttpAnswer, post, send

pytestmark = pytest.mark.integration
IAM_STACK = "enrollment-iam-auth"
SEED = json.loads((Path(__file__).resolve().parents[2] / "events/enrollment/input.json").read_text())


@pytest.fixture(scope="module")
def iam_api_url(local_stack: LocalStack) -> str:
    stack.deploy(local_stack.env, IAM_STACK, ["NamePrefix=iam-", "ApiAuthType=AWS_IAM", "PaymentDestination=none"])
    outputs = stack.outputs(local_stack.client("cloudformation"), IAM_STACK)
    stack.seed_sample_accounts(local_stack.port, outputs)
    return f"{outputs['EnrollmentApiUrl']}/enrollments"


def signed_post(url: str, body: dict) -> HttpAnswer:
    return signed("POST", url, body)


@dataclass(frozen=True)
class Principal:
    name: str
    access_key: str
    secret_key: str


def signed(
    method: str,
    url: str,
    body: dict | None = None,
    principal: Principal | None = None,
    extra_headers: dict[str, str] | None = None,
) -> HttpAnswer:
    """A SigV4-signed request, as `principal` (the account root `test` when None)."""
    data = json.dumps(body) if body is not None else None
    access_key, secret_key = (principal.access_key, principal.secret_key) if principal else ("test", "test")
    credentials = boto3.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key).get_credentials()
    headers = ({"Content-Type": "application/json"} if data is not None else {}) | (extra_headers or {})
    request = AWSRequest(method=method, url=url, data=data, headers=headers)
    SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(request)
    payload = data.encode() if data is not None else None
    return send(urllib.request.Request(url, data=payload, headers=dict(request.headers), method=method))  # noqa: S310


INVOKE_POLICY = "enrollment-api-invoke"


@pytest.fixture(scope="module")
def principals(local_stack: LocalStack, iam_api_url: str) -> dict[str, Principal]:
    """Onboard two clients the way the README shows (an IAM user whose policy allows execute-api:Invoke
    on the API), and one user without that permission."""
    iam = local_stack.client("iam")
    api_id = iam_api_url.split("/restapis/", 1)[1].split("/", 1)[0]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": f"arn:aws:execute-api:*:*:{api_id}/*"}
        ],
    }
    found = {}
    for name, allowed in (("enrollment-client-a", True), ("enrollment-client-b", True), ("no-invoke", False)):
        iam.create_user(UserName=name)
        if allowed:
            iam.put_user_policy(UserName=name, PolicyName=INVOKE_POLICY, PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        found[name] = Principal(name, key["AccessKeyId"], key["SecretAccessKey"])
    return found


def test_unsigned_request_is_rejected(iam_api_url: str) -> None:
    answer = post(iam_api_url, {**SEED, "contractId": "IAM-1"}, api_key=None)
    assert answer.status == 403


def test_signed_request_enrolls(iam_api_url: str) -> None:
    answer = signed_post(iam_api_url, {**SEED, "contractId": "IAM-2"})
    assert answer.status == 201, answer
    assert answer.body["status"] == "enrolled"
    assert answer.body["firstPayment"] == {"status": "recorded-only"}


def test_a_wrong_signature_is_refused_and_writes_nothing(iam_api_url: str, principals: dict[str, Principal]) -> None:
    client = principals["enrollment-client-a"]
    forged = Principal(client.name, client.access_key, client.secret_key[:-4] + "XXXX")
    answer = signed("POST", iam_api_url, {**SEED, "contractId": "IAM-FORGED-1"}, forged)
    assert answer.status == 403, answer
    assert signed("GET", f"{iam_api_url}/IAM-FORGED-1", principal=client).status == 404


def test_a_principal_without_execute_api_invoke_is_refused(iam_api_url: str, principals: dict[str, Principal]) -> None:
    denied = principals["no-invoke"]
    assert signed("POST", iam_api_url, {**SEED, "contractId": "IAM-DENIED-1"}, denied).status == 403
    assert signed("GET", f"{iam_api_url}/IAM-DENIED-1", principal=denied).status == 403
    assert signed("GET", f"{iam_api_url}/IAM-DENIED-1", principal=principals["enrollment-client-a"]).status == 404


def test_two_principals_are_two_clients(iam_api_url: str, principals: dict[str, Principal]) -> None:
    a, b = principals["enrollment-client-a"], principals["enrollment-client-b"]
    key = {"Idempotency-Key": "iam-shared-1"}
    created = signed("POST", iam_api_url, {**SEED, "contractId": "IAM-CL-A-1"}, a, key)
    assert created.status == 201, created
    # B's identical key and body: refused like any POST of A's contract id, without A's answer.
    replay = signed("POST", iam_api_url, {**SEED, "contractId": "IAM-CL-A-1"}, b, key)
    assert (replay.status, replay.body["error"]) == (409, "ContractUnavailable")
    assert "enrolled" not in json.dumps(replay.body)
    # That 409 was not kept for B's key, and A's key is not B's: B's next body under it is a request of
    # its own, neither a replay nor a 422.
    own = signed("POST", iam_api_url, {**SEED, "contractId": "IAM-CL-B-1", "accountId": "A-400"}, b, key)
    assert (own.status, own.body["contractId"]) == (201, "IAM-CL-B-1")
    assert signed("POST", iam_api_url, {**SEED, "contractId": "IAM-CL-A-1"}, a, key) == created

    assert signed("GET", f"{iam_api_url}/IAM-CL-A-1", principal=b).status == 404
    assert signed("DELETE", f"{iam_api_url}/IAM-CL-A-1", principal=b).status == 404
    taken = signed("POST", iam_api_url, {**SEED, "contractId": "IAM-CL-A-1"}, b)
    assert (taken.status, taken.body["error"]) == (409, "ContractUnavailable")
    assert signed("GET", f"{iam_api_url}/IAM-CL-A-1", principal=a).body["status"] == "enrolled"
    assert signed("DELETE", f"{iam_api_url}/IAM-CL-A-1", principal=a).body["status"] == "cancelled"
    assert signed("GET", f"{iam_api_url}/IAM-CL-B-1", principal=a).status == 404
