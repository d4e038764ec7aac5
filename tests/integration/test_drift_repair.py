"""`make up` puts back code and definitions changed behind CloudFormation's back.

`aws lambda update-function-code` and `aws stepfunctions update-state-machine` straight against the
emulator leave the stack's template as it was, so `sam deploy` answers "No changes to deploy";
`stack.repair_drift` (run by `make up` after the deploy) compares what is live with what was built and
puts the build back. Here RulesLab's code is replaced by a handler that answers something else, and the
payment state machine's definition is changed, then the repair runs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import stack

from tests.integration.conftest import STACK_NAME, LocalStack

pytestmark = pytest.mark.integration
FUNCTION = "RulesLab"  # handler enrollment.immediate.handlers.rules_lab
DRIFTED_HANDLER = "def rules_lab(event, context):\n    print('drifted')\n    return {'drifted': True}\n"


def drifted_code() -> bytes:
    return stack.code_zip(
        {
            "enrollment/__init__.py": "",
            "enrollment/immediate/__init__.py": "",
            "enrollment/immediate/handlers.py": DRIFTED_HANDLER,
        }
    )


def warm_up_answer(lambda_client: Any) -> Any:
    """The function's answer to the warm-up event: the deployed handler answers it without side effects."""
    answer = lambda_client.invoke(FunctionName=FUNCTION, Payload=json.dumps(stack.WARM_UP_EVENT).encode())
    return json.loads(answer["Payload"].read())


def test_changed_code_and_definition_are_put_back_by_the_repair(local_stack: LocalStack) -> None:
    lambda_client = local_stack.client("lambda")
    stepfunctions = local_stack.client("stepfunctions")
    machine = local_stack.outputs["PaymentStateMachineArn"]
    built_definition = json.loads(stepfunctions.describe_state_machine(stateMachineArn=machine)["definition"])
    assert warm_up_answer(lambda_client) == stack.WARM_UP_ANSWER
    assert stack.repair_drift(local_stack.port, STACK_NAME) == []  # as deployed: nothing to repair

    try:
        lambda_client.update_function_code(FunctionName=FUNCTION, ZipFile=drifted_code())
        lambda_client.get_waiter("function_updated_v2").wait(FunctionName=FUNCTION)
        changed = {**built_definition, "Comment": "changed behind CloudFormation's back"}
        stepfunctions.update_state_machine(stateMachineArn=machine, definition=json.dumps(changed))
        assert warm_up_answer(lambda_client) == {"drifted": True}
    finally:
        repaired = stack.repair_drift(local_stack.port, STACK_NAME)

    assert sorted((drift.kind, drift.name) for drift in repaired) == [
        ("function", FUNCTION),
        ("state machine", machine),
    ]
    assert warm_up_answer(lambda_client) == stack.WARM_UP_ANSWER
    assert json.loads(stepfunctions.describe_state_machine(stateMachineArn=machine)["definition"]) == built_definition
    assert stack.repair_drift(local_stack.port, STACK_NAME) == []
