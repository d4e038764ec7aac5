"""IAM is enforced on the emulator: a function's role allows what its policy says and nothing more.

The emulator runs with AUTH=true (scripts/emulator.py), so every Lambda runs with temporary
credentials of its execution role and each call it makes is evaluated against that role's policies.
A probe function is created with a deployed function's role and makes a few calls inside and
outside that role's policy. No call writes anything whatever the verdict: every write carries a
condition that cannot hold, so an allowed write ends in ConditionalCheckFailedException (the
request was authorized, then refused by DynamoDB) and a refused one in AccessDeniedException.
With AUTH off every call would be authorized and these tests would fail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import emulator
import pytest
import stack

from tests.integration.conftest import LocalStack

pytestmark = pytest.mark.integration

PROBE_SOURCE = """
import boto3
from botocore.exceptions import ClientError


def handler(event, context):
    verdicts = {}
    for name, call in event["calls"].items():
        client = boto3.client(call["service"])
        try:
            getattr(client, call["operation"])(**call["params"])
            verdicts[name] = "allowed"
        except ClientError as error:
            verdicts[name] = error.response["Error"]["Code"]
    return {"caller": boto3.client("sts").get_caller_identity()["Arn"], "verdicts": verdicts}
"""
ALLOWED = "allowed"
# Authorized, then refused by the table: the request passed IAM and wrote nothing.
AUTHORIZED_NOT_WRITTEN = "ConditionalCheckFailedException"
DENIED = "AccessDeniedException"


def probe_zip() -> bytes:
    return stack.code_zip({"probe.py": PROBE_SOURCE})


@pytest.fixture
def probe_as(local_stack: LocalStack) -> Iterator[Any]:
    """`probe_as(function, calls)`: run `calls` with the execution role of the deployed `function`."""
    lambda_client = local_stack.client("lambda")
    created: list[str] = []

    def run(function: str, calls: dict[str, dict[str, Any]]) -> dict[str, Any]:
        role_arn = lambda_client.get_function_configuration(FunctionName=function)["Role"]
        name = f"iam-probe-{function}"
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.13",
            Role=role_arn,
            Handler="probe.handler",
            Code={"ZipFile": probe_zip()},
            Timeout=30,
        )
        created.append(name)
        lambda_client.get_waiter("function_active_v2").wait(FunctionName=name)
        answer = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"calls": calls}).encode())
        payload = json.loads(answer["Payload"].read())
        assert "FunctionError" not in answer, payload
        return payload

    yield run
    for name in created:
        lambda_client.delete_function(FunctionName=name)


def key(name: str, value: str) -> dict[str, dict[str, str]]:
    return {name: {"S": value}}


def put_offer(local_stack: LocalStack) -> dict[str, Any]:
    """Would create an offer: outside every role but AcceptOffer's. Never writes (the condition fails)."""
    return {
        "service": "dynamodb",
        "operation": "put_item",
        "params": {
            "TableName": local_stack.outputs["OffersTableName"],
            "Item": {**key("OfferId", "IAM-PROBE"), **key("status", "enrolled")},
            "ConditionExpression": "attribute_exists(OfferId)",
        },
    }


def update_offer(local_stack: LocalStack) -> dict[str, Any]:
    return {
        "service": "dynamodb",
        "operation": "update_item",
        "params": {
            "TableName": local_stack.outputs["OffersTableName"],
            "Key": key("OfferId", "IAM-PROBE"),
            "UpdateExpression": "SET #status = :status",
            "ConditionExpression": "attribute_exists(OfferId)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": {"S": "verified"}},
        },
    }


def read_account(local_stack: LocalStack) -> dict[str, Any]:
    return {
        "service": "dynamodb",
        "operation": "get_item",
        "params": {
            "TableName": local_stack.outputs["UcpTableName"],
            "Key": key("accountId", "A-100") | key("recordId", "account"),
        },
    }


def test_the_emulator_enforces_iam(local_stack: LocalStack) -> None:
    assert emulator.iam_enforcement(local_stack.port) == "enabled"


def test_verify_customer_role_allows_its_policy_and_denies_the_rest(local_stack: LocalStack, probe_as: Any) -> None:
    answer = probe_as(
        "VerifyCustomer",
        {
            "read the UCP account": read_account(local_stack),
            "update the offer's status": update_offer(local_stack),
            "create an offer": put_offer(local_stack),
            "start the payment workflow": {
                "service": "stepfunctions",
                "operation": "start_execution",
                "params": {"stateMachineArn": local_stack.outputs["PaymentStateMachineArn"], "input": "{}"},
            },
        },
    )

    assert answer["verdicts"] == {
        "read the UCP account": ALLOWED,
        "update the offer's status": AUTHORIZED_NOT_WRITTEN,
        "create an offer": DENIED,  # lambda-policy grants UpdateItem on Offers, not PutItem
        "start the payment workflow": DENIED,
    }
    # ...because the probe ran with the role's own credentials, not the account's.
    assert answer["caller"].endswith(":assumed-role/lambda-role/iam-probe-VerifyCustomer")


def test_rules_lab_role_may_call_nothing(local_stack: LocalStack, probe_as: Any) -> None:
    answer = probe_as(
        "RulesLab",
        {
            "read the UCP account": read_account(local_stack),
            "update the offer's status": update_offer(local_stack),
            "create an offer": put_offer(local_stack),
        },
    )

    assert answer["verdicts"] == dict.fromkeys(
        ("read the UCP account", "update the offer's status", "create an offer"), DENIED
    )
    # ...because the probe ran with the role's own credentials, not the account's.
    assert answer["caller"].endswith(":assumed-role/RulesLab-role/iam-probe-RulesLab")
