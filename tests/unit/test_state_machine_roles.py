"""Each state machine's role grants exactly what its ASL touches, checked statically.

The emulator does not evaluate state machine roles (it does evaluate Lambda execution roles, see
tests/integration/test_iam_enforcement.py), so this test is what keeps them least-privileged: every
Task state's integration is resolved through the machine's DefinitionSubstitutions to an IAM action
on a resource of this template, and the role must grant exactly that set. The only `"*"` statements
allowed are X-Ray (when tracing is on) and CloudWatch Logs delivery (when logging is on), which AWS
offers no narrower resource for, each preceded by a comment saying so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from asl_diagram import integration

from tests.support.iam import (
    LOG_DELIVERY_ACTIONS,
    XRAY_ACTIONS,
    as_list,
    logical_id,
    resource_text,
    role_statements,
    uncommented_wildcards,
)
from tests.support.template import ROOT, template

# Optimized integrations (`arn:${Partition}:states:::<integration>`): the IAM action each needs, and the
# parameter naming its resource.
OPTIMIZED = {
    "lambda:invoke": ("lambda:InvokeFunction", "FunctionName"),
    "dynamodb:getItem": ("dynamodb:GetItem", "TableName"),
    "dynamodb:putItem": ("dynamodb:PutItem", "TableName"),
    "dynamodb:updateItem": ("dynamodb:UpdateItem", "TableName"),
    "dynamodb:deleteItem": ("dynamodb:DeleteItem", "TableName"),
    "states:startExecution": ("states:StartExecution", "StateMachineArn"),
    "sqs:sendMessage": ("sqs:SendMessage", "QueueUrl"),
}
# AWS SDK integrations (`arn:${Partition}:states:::aws-sdk:<service>:<action>`): IAM prefix and resource parameter.
SDK_SERVICES = {
    "dynamodb": ("dynamodb", "TableName"),
    "kinesis": ("kinesis", "StreamName"),
    "sfn": ("states", "StateMachineArn"),
    "lambda": ("lambda", "FunctionName"),
    "sqs": ("sqs", "QueueUrl"),
}
PLACEHOLDER = re.compile(r"^\$\{(\w+)\}$")


def state_machines() -> dict[str, dict[str, Any]]:
    return {
        name: body["Properties"]
        for name, body in template()["Resources"].items()
        if body["Type"] in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine")
    }


def task_states(states: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        if state["Type"] == "Task":
            yield f"{path}{name}", state
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from task_states(state[key]["States"], f"{path}{name}/")
        for index, branch in enumerate(state.get("Branches", [])):
            yield from task_states(branch["States"], f"{path}{name}[{index}]/")


def resolve(properties: dict[str, Any], state_name: str, value: Any) -> str:
    """The logical id a `${Placeholder}` parameter names through DefinitionSubstitutions."""
    match = PLACEHOLDER.match(value) if isinstance(value, str) else None
    assert match, f"{state_name}: {value!r} is not a DefinitionSubstitutions placeholder; it cannot be checked"
    target = logical_id(properties["DefinitionSubstitutions"][match.group(1)])
    assert target in template()["Resources"], f"{state_name}: {value} names no resource of the template"
    return target


def required_grants(properties: dict[str, Any]) -> set[tuple[str, str]]:
    """`(action, logical id)` for every Task state of the machine's definition."""
    definition = json.loads((ROOT / properties["DefinitionUri"]).read_text())
    required = set()
    for name, state in task_states(definition["States"]):
        resource = state["Resource"]
        parameters = state.get("Parameters", state.get("Arguments", {}))
        service_integration = integration(resource) or ""
        if service_integration in OPTIMIZED:
            action, parameter = OPTIMIZED[service_integration]
        elif service_integration.startswith("aws-sdk:"):
            service, operation = service_integration.removeprefix("aws-sdk:").split(":")
            assert service in SDK_SERVICES, f"{name}: {resource} is not known to this test"
            assert "." not in operation, f"{name}: {resource} (a .sync or callback pattern) is not known to this test"
            prefix, parameter = SDK_SERVICES[service]
            action = f"{prefix}:{operation[0].upper()}{operation[1:]}"
        elif PLACEHOLDER.match(resource):  # the legacy form: the function ARN is the Resource
            required.add(("lambda:InvokeFunction", resolve(properties, name, resource)))
            continue
        else:
            pytest.fail(f"{name}: integration {resource} is not known to this test; add what it needs")
        assert parameter in parameters, f"{name}: {parameter} must be static to be checked"
        required.add((action, resolve(properties, name, parameters[parameter])))
    return required


def granted(role_id: str) -> tuple[set[tuple[str, str]], set[str]]:
    """The role's `(action, logical id)` grants, and the actions it grants on `"*"`."""
    grants, wildcard_actions = set(), set()
    for statement in role_statements(role_id):
        assert statement["Effect"] == "Allow", statement
        assert not {"NotAction", "NotResource"} & set(statement), statement
        actions = as_list(statement["Action"])
        assert all("*" not in action for action in actions), statement
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                wildcard_actions.update(actions)
                continue
            target = logical_id(resource)
            assert target is not None, f"{role_id}: resource {resource} is not a reference to this template"
            grants.update((action, target) for action in actions)
    return grants, wildcard_actions


@pytest.mark.parametrize("machine", sorted(state_machines()))
def test_state_machine_has_an_explicit_role_of_its_own(machine: str) -> None:
    properties = state_machines()[machine]
    assert "Policies" not in properties, "SAM would generate a role; give the machine an explicit one"
    role_id = logical_id(properties["Role"])
    role = template()["Resources"][role_id]
    assert role["Type"] == "AWS::IAM::Role"
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [statement["Principal"] for statement in trust] == [{"Service": "states.amazonaws.com"}]
    assert "ManagedPolicyArns" not in role["Properties"]
    users = [name for name, other in state_machines().items() if logical_id(other["Role"]) == role_id]
    assert users == [machine]


@pytest.mark.parametrize("machine", sorted(state_machines()))
def test_role_grants_exactly_what_the_definition_uses(machine: str) -> None:
    properties = state_machines()[machine]
    role_id = logical_id(properties["Role"])
    grants, _ = granted(role_id)
    required = required_grants(properties)
    assert required - grants == set(), f"{role_id} misses what {properties['DefinitionUri']} uses"
    assert grants - required == set(), f"{role_id} grants what {properties['DefinitionUri']} never uses"


@pytest.mark.parametrize("machine", sorted(state_machines()))
def test_wildcards_only_for_tracing_and_log_delivery_with_a_reason(machine: str) -> None:
    properties = state_machines()[machine]
    role_id = logical_id(properties["Role"])
    _, wildcard_actions = granted(role_id)
    expected = set()
    if properties.get("Tracing", {}).get("Enabled"):
        expected |= XRAY_ACTIONS
    if properties.get("Logging", {}).get("Destinations"):
        expected |= LOG_DELIVERY_ACTIONS
    assert wildcard_actions == expected
    assert uncommented_wildcards(resource_text(role_id)) == [], f"{role_id}: say why each '*' is needed"


def test_the_payment_workflow_resolves_to_its_functions_and_table() -> None:
    """The resolution itself, on the seed's workflow: three invocations and the failure record."""
    assert required_grants(state_machines()["PaymentStateMachine"]) == {
        ("lambda:InvokeFunction", "CreateOrderFunction"),
        ("lambda:InvokeFunction", "HoldPaymentFunction"),
        ("lambda:InvokeFunction", "AcceptPaymentFunction"),
        ("dynamodb:UpdateItem", "OrdersTable"),
    }
