"""Static checks of template.yaml and the ASL files against what the issue and seed require."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support.template import ROOT, resource, template

TRANSIENT_LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def asl(name: str) -> dict:
    return json.loads((ROOT / "statemachine" / name).read_text())


def test_orders_table_matches_seed() -> None:
    properties = resource("OrdersTable")["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": "orderId", "KeyType": "HASH"}]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert template()["Parameters"]["OrdersTableName"]["Default"] == "MockOrders"


def test_seed_names_under_name_prefix() -> None:
    expected = {
        "CreateOrderFunction": "${NamePrefix}mock-create-order",
        "HoldPaymentFunction": "${NamePrefix}mock-hold-payment",
        "AcceptPaymentFunction": "${NamePrefix}mock-accept-payment",
    }
    for logical_id, name in expected.items():
        assert resource(logical_id)["Properties"]["FunctionName"] == {"Fn::Sub": name}
    machine = resource("PaymentStateMachine")["Properties"]
    assert machine["Name"] == {"Fn::Sub": "${NamePrefix}mock-payment-workflow"}
    assert template()["Globals"]["Function"]["Runtime"] == "python3.13"


def test_payment_lambda_role_grants_exactly_put_and_update_on_the_table() -> None:
    policies = resource("PaymentFunctionsRole")["Properties"]["Policies"]
    statements = [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]
    dynamodb = [statement for statement in statements if any(a.startswith("dynamodb:") for a in statement["Action"])]
    assert dynamodb == [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem"],
            "Resource": {"Fn::GetAtt": "OrdersTable.Arn"},
        }
    ]


def test_state_machine_role_invokes_only_the_three_functions() -> None:
    policies = resource("PaymentStateMachineRole")["Properties"]["Policies"]
    statements = [statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]]
    invoke = [statement for statement in statements if statement["Action"] == "lambda:InvokeFunction"]
    assert len(invoke) == 1
    assert sorted(r["Fn::GetAtt"] for r in invoke[0]["Resource"]) == [
        "AcceptPaymentFunction.Arn",
        "CreateOrderFunction.Arn",
        "HoldPaymentFunction.Arn",
    ]


ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}


def iam_statements() -> list[dict]:
    found = []
    for body in template()["Resources"].values():
        properties = body.get("Properties", {})
        documents = [
            policy["PolicyDocument"] for policy in properties.get("Policies", []) if "PolicyDocument" in policy
        ]
        documents += [policy for policy in properties.get("Policies", []) if "Statement" in policy]
        if "PolicyDocument" in properties:
            documents.append(properties["PolicyDocument"])
        for document in documents:
            found += document["Statement"]
    return found


def test_wildcard_resources_only_where_aws_offers_nothing_narrower() -> None:
    for statement in iam_statements():
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        if statement.get("Resource") == "*":
            assert set(actions) <= ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS, statement


def test_each_wildcard_resource_carries_its_reason() -> None:
    lines = (ROOT / "template.yaml").read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() != 'Resource: "*"':
            continue
        start = next(n for n in range(number, 0, -1) if lines[n].strip().startswith("- Effect"))
        assert lines[start - 1].strip().startswith("#"), f"template.yaml:{number + 1} has no reason comment"


def test_every_task_has_timeout_and_transient_retries() -> None:
    for path in sorted((ROOT / "statemachine").glob("*.asl.json")):
        for name, state in asl(path.name)["States"].items():
            if state["Type"] != "Task":
                continue
            assert "TimeoutSeconds" in state, f"{path.name}:{name} has no timeout"
            retried = {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}
            if state["Resource"] == "arn:aws:states:::lambda:invoke":
                assert retried >= TRANSIENT_LAMBDA_ERRORS, f"{path.name}:{name} misses transient retries"
            else:
                assert retried, f"{path.name}:{name} retries nothing"


def test_definition_substitutions_cover_every_placeholder() -> None:
    machines = {
        logical_id: body
        for logical_id, body in template()["Resources"].items()
        if body["Type"] == "AWS::Serverless::StateMachine"
    }
    for logical_id, body in machines.items():
        definition = (ROOT / body["Properties"]["DefinitionUri"]).read_text()
        placeholders = set(re.findall(r"\$\{(\w+)\}", definition))
        assert placeholders == set(body["Properties"]["DefinitionSubstitutions"]), logical_id


def test_outputs_required_by_the_foundation() -> None:
    assert {
        "PaymentStateMachineArn",
        "OrdersTableName",
        "CreateOrderFunctionArn",
        "HoldPaymentFunctionArn",
        "AcceptPaymentFunctionArn",
    } <= set(template()["Outputs"])


def test_events_are_json() -> None:
    for path in Path(ROOT / "events").rglob("*.json"):
        json.loads(path.read_text())
