"""`ApiAuthType=AWS_IAM`: the same template deployed a second time (NamePrefix iam-) on the same
emulator, where the enrollment API accepts SigV4-signed requests instead of an API key."""

from __future__ import annotations

import json
import urllib.request
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
    data = json.dumps(body)
    credentials = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test").get_credentials()
    signed = AWSRequest(method="POST", url=url, data=data, headers={"Content-Type": "application/json"})
    SigV4Auth(credentials, "execute-api", "us-east-1").add_auth(signed)
    return send(urllib.request.Request(url, data=data.encode(), headers=dict(signed.headers), method="POST"))  # noqa: S310


def test_unsigned_request_is_rejected(iam_api_url: str) -> None:
    answer = post(iam_api_url, {**SEED, "contractId": "IAM-1"}, api_key=None)
    assert answer.status == 403


def test_signed_request_enrolls(iam_api_url: str) -> None:
    answer = signed_post(iam_api_url, {**SEED, "contractId": "IAM-2"})
    assert answer.status == 201, answer
    assert answer.body["status"] == "enrolled"
    assert answer.body["firstPayment"] == {"status": "recorded-only"}
