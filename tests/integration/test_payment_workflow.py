"""The mock payment workflow deployed from template.yaml to a fresh emulator, driven with boto3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import STACK_NAME, LocalStack
from tests.support.state_machines import walk
from tests.support.waiting import finished_execution

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events" / "payment"


def start(local_stack: LocalStack, payload: Any) -> dict[str, Any]:
    stepfunctions = local_stack.client("stepfunctions")
    execution_arn = stepfunctions.start_execution(
        stateMachineArn=local_stack.outputs["PaymentStateMachineArn"], input=json.dumps(payload)
    )["executionArn"]
    return finished_execution(stepfunctions, execution_arn)


def order(local_stack: LocalStack, order_id: str) -> dict[str, Any] | None:
    item = local_stack.client("dynamodb").get_item(
        TableName=local_stack.outputs["OrdersTableName"], Key={"orderId": {"S": order_id}}, ConsistentRead=True
    )
    return {key: value["S"] for key, value in item["Item"].items()} if "Item" in item else None


def all_orders(local_stack: LocalStack) -> list[dict[str, Any]]:
    return local_stack.client("dynamodb").scan(TableName=local_stack.outputs["OrdersTableName"])["Items"]


def test_seed_input_ends_paid_with_three_timestamps(local_stack: LocalStack) -> None:
    seed_input = json.loads((EVENTS / "start-execution.json").read_text())
    assert seed_input == {"orderId": "1234"}

    execution = start(local_stack, seed_input)

    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    stored = order(local_stack, "1234")
    assert stored["status"] == "paid"
    assert stored["createdAt"] < stored["heldAt"] < stored["paidAt"]
    assert output["confirmation"] == f"Payment for order 1234 accepted at {stored['paidAt']}."
    assert output["order"] == {key: stored[key] for key in ("orderId", "status", "createdAt", "heldAt", "paidAt")}


def test_duplicate_order_fails_named_and_changes_nothing(local_stack: LocalStack) -> None:
    first = start(local_stack, {"orderId": "dup-1"})
    assert first["status"] == "SUCCEEDED"
    before = order(local_stack, "dup-1")

    second = start(local_stack, {"orderId": "dup-1"})

    assert second["status"] == "FAILED"
    assert second["error"] == "OrderAlreadyExists"
    assert "dup-1 already exists" in second["cause"]
    assert order(local_stack, "dup-1") == before


@pytest.mark.parametrize(
    ("payload", "cause_fragment"),
    [
        ({}, "orderId: Field required"),
        ({"orderId": ""}, "orderId: String should have at least 1 character"),
        ({"orderId": 1234}, "orderId: Input should be a valid string"),
        ({"orderId": "x" * 65}, "orderId: String should have at most 64 characters"),
        ({"orderId": "ok-1", "amount": 10}, "amount: Extra inputs are not permitted"),
        ("1234", "(body): expected a JSON object, got string"),
        ([{"orderId": "1234"}], "(body): expected a JSON object, got array"),
    ],
)
def test_invalid_input_fails_named_and_writes_nothing(
    local_stack: LocalStack, payload: Any, cause_fragment: str
) -> None:
    before = all_orders(local_stack)

    execution = start(local_stack, payload)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "InvalidOrderInput"
    assert cause_fragment in execution["cause"]
    assert "Traceback" not in execution["cause"]
    assert all_orders(local_stack) == before


def test_unexpected_failure_is_caught_and_marks_the_order_failed(local_stack: LocalStack) -> None:
    lambda_client = local_stack.client("lambda")
    function_name = local_stack.outputs["HoldPaymentFunctionArn"]
    configuration = lambda_client.get_function_configuration(FunctionName=function_name)
    variables = configuration["Environment"]["Variables"]
    # A real dependency failure: the hold step is pointed at a table that does not exist, which its
    # role does not cover either, so (as on AWS) the call is refused before the table is looked up.
    lambda_client.update_function_configuration(
        FunctionName=function_name, Environment={"Variables": {**variables, "ORDERS_TABLE_NAME": "NoSuchTable"}}
    )
    try:
        execution = start(local_stack, {"orderId": "catch-1"})
    finally:
        lambda_client.update_function_configuration(FunctionName=function_name, Environment={"Variables": variables})

    assert execution["status"] == "FAILED"
    assert execution["error"] == "PaymentWorkflowFailed"
    assert "AccessDenied" in execution["cause"]
    stored = order(local_stack, "catch-1")
    assert stored["status"] == "failed"
    assert stored["failureReason"]
    assert "heldAt" not in stored

    history = local_stack.client("stepfunctions").get_execution_history(
        executionArn=execution["executionArn"], maxResults=1000
    )["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if e["type"].endswith("StateEntered")]
    assert entered[-3:] == ["HasOrderToMarkFailed", "MarkOrderFailed", "PaymentFailed"]


def physical_function_name(local_stack: LocalStack, logical_id: str) -> str:
    return local_stack.client("cloudformation").describe_stack_resource(
        StackName=STACK_NAME, LogicalResourceId=logical_id
    )["StackResourceDetail"]["PhysicalResourceId"]


def invoke(local_stack: LocalStack, function_name: str, payload: Any) -> tuple[str | None, Any]:
    """`sam remote invoke` of one function: (FunctionError or None, the answer)."""
    response = local_stack.client("lambda").invoke(FunctionName=function_name, Payload=json.dumps(payload).encode())
    return response.get("FunctionError"), json.loads(response["Payload"].read())


def test_sample_invocations_run_three_times_answer_the_same_and_write_nothing_new(local_stack: LocalStack) -> None:
    """README's `sam remote invoke` examples of the payment steps, run three times in a row."""
    steps = [
        (physical_function_name(local_stack, logical_id), json.loads((EVENTS / event_file).read_text()))
        for logical_id, event_file in (
            ("CreateOrderFunction", "create-order.json"),
            ("HoldPaymentFunction", "hold-payment.json"),
            ("AcceptPaymentFunction", "accept-payment.json"),
        )
    ]
    order_id = steps[1][1]["orderId"]

    runs, stored_after = [], []
    for _ in range(3):
        runs.append([invoke(local_stack, name, payload) for name, payload in steps])
        stored_after.append(order(local_stack, order_id))

    assert [error for run in runs for error, _ in run] == [None] * 9, runs
    assert runs[1:] == [runs[0], runs[0]]
    assert stored_after[1:] == [stored_after[0], stored_after[0]]
    (_, created), (_, held), (_, accepted) = runs[0]
    assert created["outcome"] == "created"
    assert held["order"]["status"] == "hold"
    assert accepted["order"] == {
        key: stored_after[0][key] for key in ("orderId", "status", "createdAt", "heldAt", "paidAt")
    }
    assert accepted["confirmation"] == f"Payment for order {order_id} accepted at {stored_after[0]['paidAt']}."


def test_an_invalid_transition_is_still_a_clear_error(local_stack: LocalStack) -> None:
    create = physical_function_name(local_stack, "CreateOrderFunction")
    accept = physical_function_name(local_stack, "AcceptPaymentFunction")
    assert invoke(local_stack, create, {"request": {"orderId": "never-held-1"}, "executionId": "manual-1"})[0] is None
    before = order(local_stack, "never-held-1")

    error, answer = invoke(local_stack, accept, {"orderId": "never-held-1", "executionId": "manual-1"})

    assert error
    assert answer["errorMessage"] == (
        "cannot accept payment for order never-held-1: the order is 'created', and only a 'hold' order can become 'paid'"
    )
    assert order(local_stack, "never-held-1") == before


def test_the_deployed_definitions_name_the_emulators_partition(local_stack: LocalStack) -> None:
    """The ASL writes `arn:${Partition}:states:::…`; CloudFormation's AWS::Partition (`aws` on the emulator, as
    in the commercial Regions) fills it in through DefinitionSubstitutions, so the emulator, which dispatches
    its service integrations on `arn:aws:states:::`, runs the same definitions as before. Every workflow test
    of this suite runs through those integrations; this names the cause when one is left unresolved."""
    stepfunctions = local_stack.client("stepfunctions")
    # This stack's three (another test may have deployed a second stack to the same emulator).
    machines = [arn for output, arn in local_stack.outputs.items() if output.endswith("StateMachineArn")]
    assert len(machines) == 3, machines
    for arn in machines:
        definition = stepfunctions.describe_state_machine(stateMachineArn=arn)["definition"]
        assert "${" not in definition, f"{arn}: a DefinitionSubstitution is left unresolved"
        tasks = [state for _, state in walk(json.loads(definition)) if state["Type"] == "Task"]
        assert tasks
        assert all(task["Resource"].startswith("arn:aws:states:::") for task in tasks), arn
