"""Static checks of template.yaml and the ASL files against what the issue and seed require."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from asl_diagram import integration

from tests.support.iam import (
    LOG_DELIVERY_ACTIONS,
    XRAY_ACTIONS,
    all_statements,
    as_list,
    attached_policies,
    conditional_items,
    role_statements,
)
from tests.support.iam import logical_id as referenced_id
from tests.support.state_machines import Machine
from tests.support.template import ROOT, resource, template

TRANSIENT_LAMBDA_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    # The second throttle name: Lambda.Unknown on the emulator (how it reports a lambda:invoke it throttled),
    # Lambda.EC2ThrottledException on AWS (a DefinitionSubstitution; see the test of it below).
    "${LambdaThrottleError}",
}
# A throttle lasts as long as the burst behind it: the retrier that absorbs it tries at least 5 times,
# where a Lambda service hiccup would need one or two.
THROTTLE_RETRY_MIN_ATTEMPTS = 5
# The immediate workflow runs inside the API's 29 s wait: a throttled step waits at most this long in
# all. The emulator ignores MaxDelaySeconds and JitterStrategy (it sleeps IntervalSeconds x
# BackoffRate^n, up to 60 s), so the bound must follow from those two and MaxAttempts alone.
IMMEDIATE_THROTTLE_WAIT_SECONDS = 10


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


HOOK_SCHEDULES = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/${HookScheduleGroup}/*"
# The form the emulator authorizes schedule calls on, granted only when deploying to it (OnEmulator).
EMULATOR_SCHEDULES = "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/default/*"
KINESIS_CONSUMER = {
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
}


def grants(*actions: str, on: str) -> set[tuple[str, str]]:
    return {(action, on) for action in actions}


# What each function's code calls (src/), and on what: its role must grant exactly this, besides
# writing its own log group and sending its traces (checked below).
# Create a hook, read it (whose it is), delete it (replace or remove): ScheduleHook and Reconcile.
RECONCILER_SCHEDULE_CALLS = ("scheduler:GetSchedule", "scheduler:CreateSchedule", "scheduler:DeleteSchedule")
FUNCTION_GRANTS = {
    "CreateOrderFunction": grants("dynamodb:PutItem", on="OrdersTable"),
    "HoldPaymentFunction": grants("dynamodb:UpdateItem", on="OrdersTable"),
    "AcceptPaymentFunction": grants("dynamodb:UpdateItem", on="OrdersTable"),
    "EnrollmentApiFunction": grants("states:StartSyncExecution", on="EnrollmentStateMachine")
    | grants(
        "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", on="IdempotencyTable"
    ),
    "AcceptOfferFunction": grants("dynamodb:PutItem", on="OffersTable") | grants("dynamodb:PutItem", on="AuditTable"),
    "VerifyCustomerFunction": grants("dynamodb:GetItem", on="UcpTable")
    | grants("dynamodb:UpdateItem", on="OffersTable")
    | grants("dynamodb:PutItem", on="AuditTable"),
    "RulesLabFunction": set(),
    "RecordOutcomeFunction": grants("dynamodb:UpdateItem", on="OffersTable")
    | grants("dynamodb:PutItem", on="AuditTable"),
    "CommitEnrollmentFunction": grants("dynamodb:UpdateItem", "dynamodb:GetItem", on="OffersTable")
    | grants("dynamodb:ConditionCheckItem", "dynamodb:PutItem", on="UcpTable")
    | grants("dynamodb:PutItem", on="ActionsTable")
    | grants("dynamodb:PutItem", on="AuditTable"),
    "RevertEnrollmentFunction": grants("dynamodb:UpdateItem", "dynamodb:GetItem", on="OffersTable")
    | grants("dynamodb:DeleteItem", on="UcpTable")
    | grants("dynamodb:UpdateItem", on="ActionsTable")
    | grants("dynamodb:PutItem", on="AuditTable"),
    "PublishEnrollmentFunction": grants("kinesis:PutRecord", on="EnrollmentStream"),
    "FulfillActionFunction": grants("dynamodb:GetItem", "dynamodb:UpdateItem", on="ActionsTable")
    | grants("dynamodb:GetItem", "dynamodb:ConditionCheckItem", on="OffersTable")
    | grants("dynamodb:PutItem", on="AuditTable")
    | grants("dynamodb:GetItem", "dynamodb:UpdateItem", on="UcpTable")
    | grants("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", on="ActionEffectsTable")
    | grants("sqs:SendMessage", on="HookDeadLetterQueue"),  # its OnFailure destination (the hooks)
    "DataLambdaFunction": grants(*KINESIS_CONSUMER, on="EnrollmentStream")
    | grants("dynamodb:UpdateItem", on="OffersTable")
    | grants("dynamodb:PutItem", on="AuditTable")
    | grants("states:StartExecution", on="EnrollmentAsyncStateMachine")
    | grants("sqs:SendMessage", on="RejectedRecordsQueue"),
    "ScheduleHookFunction": grants(*RECONCILER_SCHEDULE_CALLS, on=HOOK_SCHEDULES)
    | grants(*RECONCILER_SCHEDULE_CALLS, on=EMULATOR_SCHEDULES)
    | grants("iam:PassRole", on="SchedulerRole")
    | grants("dynamodb:GetItem", on="OffersTable"),
    "EnrollmentManageFunction": grants("dynamodb:GetItem", "dynamodb:UpdateItem", on="OffersTable")
    | grants("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem", on="ActionsTable")
    | grants("dynamodb:Query", "dynamodb:PutItem", on="AuditTable")
    | grants("dynamodb:UpdateItem", "dynamodb:GetItem", on="UcpTable")
    | grants("scheduler:DeleteSchedule", on=HOOK_SCHEDULES)
    | grants("scheduler:DeleteSchedule", on=EMULATOR_SCHEDULES),
    "ReconcileFunction": grants(
        "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem", on="OffersTable"
    )
    | grants("dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem", on="ActionsTable")
    # What a run reads: the offers marked for it, the open actions by due time (never a scan of either table).
    | grants("dynamodb:Query", on="${OffersTable.Arn}/index/Watched")
    | grants("dynamodb:Query", on="${ActionsTable.Arn}/index/ByStateAndDue")
    | grants("dynamodb:Query", "dynamodb:PutItem", on="AuditTable")
    | grants("dynamodb:UpdateItem", "dynamodb:GetItem", on="UcpTable")
    | grants("states:StartExecution", on="EnrollmentAsyncStateMachine")
    | grants("states:StartExecution", on="PaymentStateMachine")  # a first payment not started (SendsPayments)
    | grants(*RECONCILER_SCHEDULE_CALLS, on=HOOK_SCHEDULES)
    | grants(*RECONCILER_SCHEDULE_CALLS, on=EMULATOR_SCHEDULES)
    | grants("scheduler:ListSchedules", on="*")
    | grants("iam:PassRole", on="SchedulerRole"),
}
LOG_WRITES = {"logs:CreateLogStream", "logs:PutLogEvents"}
LAMBDA_TRACING = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def functions() -> dict[str, dict]:
    return {
        name: body["Properties"]
        for name, body in template()["Resources"].items()
        if body["Type"] == "AWS::Serverless::Function"
    }


def function_role(function: str) -> str:
    return referenced_id(functions()[function]["Role"])


def resource_key(resource: object) -> str:
    if resource == "*":
        return "*"
    if isinstance(resource, dict) and set(resource) == {"Fn::Sub"}:
        return resource["Fn::Sub"]
    found = referenced_id(resource)
    assert found is not None, resource
    return found


def test_every_function_has_an_execution_role_of_its_own() -> None:
    assert set(functions()) == set(FUNCTION_GRANTS)
    roles = [function_role(function) for function in functions()]
    assert len(set(roles)) == len(roles), "a role is shared by two functions"
    for function, properties in functions().items():
        # With `Policies` (and no `Role`) SAM would generate a role with AWS managed policies on "*".
        assert "Policies" not in properties, function
        role = resource(function_role(function))
        assert role["Type"] == "AWS::IAM::Role", function
        trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert [statement["Principal"] for statement in trust] == [{"Service": "lambda.amazonaws.com"}]
    assert "Policies" not in template()["Globals"]["Function"]
    assert "Role" not in template()["Globals"]["Function"]


def test_each_function_role_grants_exactly_what_its_code_calls() -> None:
    for function, expected in FUNCTION_GRANTS.items():
        found = set()
        for statement in role_statements(function_role(function)):
            assert statement["Effect"] == "Allow"
            assert not {"NotAction", "NotResource"} & set(statement)
            actions = set(as_list(statement["Action"]))
            if (
                actions <= LOG_WRITES
                or actions <= LAMBDA_TRACING
                or statement.get("Resource") == {"Fn::GetAtt": "FaultInjectionTable.Arn"}
            ):
                continue  # checked by the tests below
            found |= {(action, resource_key(r)) for action in actions for r in as_list(statement["Resource"])}
        assert found == expected, f"{function}: missing {expected - found}, not used {found - expected}"


def test_default_schedule_group_is_granted_only_on_the_emulator() -> None:
    for function in ("ScheduleHookFunction", "EnrollmentManageFunction", "ReconcileFunction"):
        (policy,) = resource(function_role(function))["Properties"]["Policies"]
        statements = policy["PolicyDocument"]["Statement"]
        conditional = [s for s in statements if "Fn::If" in s and s["Fn::If"][0] == "OnEmulator"]
        assert len(conditional) == 1, function
        condition, statement, otherwise = conditional[0]["Fn::If"]
        assert (condition, otherwise) == ("OnEmulator", {"Ref": "AWS::NoValue"})
        assert statement["Resource"] == {"Fn::Sub": EMULATOR_SCHEDULES}


def role_grants(function: str) -> set[tuple[str, str]]:
    return {
        (action, resource_key(r))
        for statement in role_statements(function_role(function))
        if statement.get("Resource") != "*"
        for action in as_list(statement["Action"])
        for r in as_list(statement["Resource"])
    }


def test_event_sources_and_destinations_are_granted_to_the_function_role() -> None:
    """SAM adds these to the roles it generates, never to an explicit `Role`: each one is granted here."""
    for function, properties in functions().items():
        needed = set()
        destinations = list(properties.get("EventInvokeConfig", {}).get("DestinationConfig", {}).values())
        for event in properties.get("Events", {}).values():
            if event["Type"] == "Kinesis":
                needed |= grants(*KINESIS_CONSUMER, on=referenced_id(event["Properties"]["Stream"]))
            destinations += event["Properties"].get("DestinationConfig", {}).values()
        for destination in destinations:
            assert destination["Type"] == "SQS", f"{function}: extend this test for {destination['Type']}"
            needed |= grants("sqs:SendMessage", on=referenced_id(destination["Destination"]))
        assert needed <= role_grants(function), f"{function} misses {needed - role_grants(function)}"


@pytest.mark.parametrize("function", ["ScheduleHookFunction", "ReconcileFunction"])
def test_scheduler_role_is_passed_only_to_scheduler(function: str) -> None:
    passes = [s for s in role_statements(function_role(function)) if s["Action"] == "iam:PassRole"]
    assert passes == [
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": {"Fn::GetAtt": "SchedulerRole.Arn"},
            "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
        }
    ]


def test_each_function_writes_only_its_own_log_group_which_has_a_retention() -> None:
    for function, properties in functions().items():
        statements = [s for s in role_statements(function_role(function)) if set(as_list(s["Action"])) & LOG_WRITES]
        assert len(statements) == 1, function
        assert sorted(as_list(statements[0]["Action"])) == sorted(LOG_WRITES), function
        log_group = referenced_id(statements[0]["Resource"])
        assert statements[0]["Resource"] == {"Fn::GetAtt": f"{log_group}.Arn"}, function
        group = resource(log_group)
        assert group["Type"] == "AWS::Logs::LogGroup"
        # The group Lambda writes to by default: /aws/lambda/<function name>.
        assert group["Properties"]["LogGroupName"] == {
            "Fn::Sub": f"/aws/lambda/{properties['FunctionName']['Fn::Sub']}"
        }
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


def test_each_function_role_traces_and_takes_injected_faults_through_the_shared_policies() -> None:
    tracing = resource("FunctionTracingPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert len(tracing) == 1
    assert set(tracing[0]["Action"]) == LAMBDA_TRACING
    assert tracing[0]["Resource"] == "*"
    faults = resource("FaultInjectionPolicy")
    assert faults["Condition"] == "FaultInjectionEnabled"
    assert faults["Properties"]["PolicyDocument"]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            "Resource": {"Fn::GetAtt": "FaultInjectionTable.Arn"},
        }
    ]
    for function in functions():
        role = resource(function_role(function))["Properties"]
        attached = attached_policies(function_role(function))
        assert {"FunctionTracingPolicy", "FaultInjectionPolicy"} <= set(attached), function
        # Only while FaultInjection=enabled (local resilience tests).
        assert {"Fn::If": ["FaultInjectionEnabled", {"Ref": "FaultInjectionPolicy"}, {"Ref": "AWS::NoValue"}]} in (
            role["ManagedPolicyArns"]
        ), function


def test_seed_lambda_role_is_verify_customers_with_lambda_policy() -> None:
    assert function_role("VerifyCustomerFunction") == "LambdaRole"
    assert resource("LambdaRole")["Properties"]["RoleName"] == {"Fn::Sub": "${NamePrefix}lambda-role"}
    assert resource("LambdaPolicy")["Properties"]["ManagedPolicyName"] == {"Fn::Sub": "${NamePrefix}lambda-policy"}
    assert attached_policies("LambdaRole")[0] == "LambdaPolicy"


def test_role_names_follow_name_prefix() -> None:
    """A second stack with another NamePrefix deploys beside the first: no fixed role or policy name."""
    for name, body in template()["Resources"].items():
        for key in ("RoleName", "ManagedPolicyName"):
            if key in body.get("Properties", {}):
                assert body["Properties"][key]["Fn::Sub"].startswith("${NamePrefix}"), name


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


# The reconciler lists the hook group's schedules: ListSchedules takes no resource (the group is a parameter).
ACTIONS_WITHOUT_RESOURCE_LEVEL_PERMISSIONS = XRAY_ACTIONS | LOG_DELIVERY_ACTIONS | {"scheduler:ListSchedules"}


# The AWS managed policies a role may attach: each needs "*" and the template says why next to it.
AWS_MANAGED_POLICIES = {
    # The account's one API Gateway CloudWatch Logs role, shared by every REST API of the account and
    # Region: the policy API Gateway documents for it (its log groups are named by API Gateway).
    "ApiGatewayCloudWatchRole": [
        "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
    ],
}


def test_no_aws_managed_policy_except_the_documented_ones() -> None:
    for name, body in template()["Resources"].items():
        if body["Type"] != "AWS::IAM::Role":
            continue
        arns = conditional_items(body["Properties"].get("ManagedPolicyArns", []))
        foreign = [arn for arn in arns if referenced_id(arn) is None]
        assert [arn["Fn::Sub"] if isinstance(arn, dict) else arn for arn in foreign] == AWS_MANAGED_POLICIES.get(
            name, []
        ), name


def test_wildcard_resources_only_where_aws_offers_nothing_narrower() -> None:
    for statement in all_statements():
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
            if integration(state["Resource"]) == "lambda:invoke":
                assert retried >= TRANSIENT_LAMBDA_ERRORS, f"{path.name}:{name} misses transient retries"
                throttle = next(r for r in state["Retry"] if "Lambda.TooManyRequestsException" in r["ErrorEquals"])
                assert throttle["MaxAttempts"] >= THROTTLE_RETRY_MIN_ATTEMPTS, f"{path.name}:{name} gives up early"
                assert throttle.get("JitterStrategy") == "FULL", f"{path.name}:{name} retries in lockstep"
            else:
                assert retried, f"{path.name}:{name} retries nothing"


def lambda_tasks(states: dict) -> Iterator[tuple[str, dict]]:
    for name, state in states.items():
        if state["Type"] == "Task" and integration(state["Resource"]) == "lambda:invoke":
            yield name, state
        for nested in (
            (state.get("ItemProcessor") or state.get("Iterator") or {"States": {}})["States"],
            *(branch["States"] for branch in state.get("Branches", [])),
        ):
            yield from lambda_tasks(nested)


def test_the_immediate_workflow_waits_out_a_throttle_within_the_apis_time_the_same_everywhere() -> None:
    tasks = list(lambda_tasks(asl("enrollment.asl.json")["States"]))
    assert len(tasks) >= 7  # six steps and the same-day actions' FulfillAction in the Map
    for name, state in tasks:
        throttle = next(r for r in state["Retry"] if "Lambda.TooManyRequestsException" in r["ErrorEquals"])
        assert "${LambdaThrottleError}" in throttle["ErrorEquals"], name  # how the emulator names a throttle
        assert "MaxDelaySeconds" not in throttle, name  # a cap the emulator does not apply
        waits = [throttle["IntervalSeconds"] * throttle["BackoffRate"] ** n for n in range(throttle["MaxAttempts"])]
        assert sum(waits) <= IMMEDIATE_THROTTLE_WAIT_SECONDS, (name, waits)


@pytest.mark.parametrize("machine", ["PaymentStateMachine", "EnrollmentStateMachine", "EnrollmentAsyncStateMachine"])
def test_on_aws_a_lambda_timeout_is_not_retried_as_a_throttle_while_the_emulators_throttle_is(machine: str) -> None:
    """Lambda.Unknown is how the emulator reports a lambda:invoke it throttled; on AWS it names a function's
    timeout or out-of-memory error, which the throttle retrier (10 attempts in the immediate workflow) must
    leave to the States.TaskFailed retrier and the Catch."""
    on_aws = Machine(machine, machine).definition()
    on_emulator = Machine(machine, machine, (("EmulatorEndpoint", "http://localhost:4566"),)).definition()
    assert "Lambda.Unknown" not in json.dumps(on_aws)
    for definition, second_throttle in ((on_aws, "Lambda.EC2ThrottledException"), (on_emulator, "Lambda.Unknown")):
        tasks = list(lambda_tasks(definition["States"]))
        assert tasks, machine
        for name, state in tasks:
            throttle = next(r for r in state["Retry"] if "Lambda.TooManyRequestsException" in r["ErrorEquals"])
            assert second_throttle in throttle["ErrorEquals"], (machine, name)


def test_the_asl_names_no_partition_of_its_own() -> None:
    """Every ARN in the ASL carries the stack's partition (`${Partition}`, AWS::Partition through the
    DefinitionSubstitutions) or comes whole from a substitution: the same file deploys to aws-cn and aws-us-gov."""
    for path in sorted((ROOT / "statemachine").glob("*.asl.json")):
        text = path.read_text()
        assert not re.findall(r"arn:aws[a-z-]*:", text), f"{path.name} names a partition"
        for arn in re.findall(r'"(arn:[^"]*)"', text):
            assert arn.startswith("arn:${Partition}:"), f"{path.name}: {arn}"
    for body in template()["Resources"].values():
        if body["Type"] == "AWS::Serverless::StateMachine":
            assert body["Properties"]["DefinitionSubstitutions"]["Partition"] == {"Ref": "AWS::Partition"}


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
        "ActionEffectsTableName",  # where the tests count the actions' effects
    } <= set(template()["Outputs"])


def test_events_are_json() -> None:
    paths = sorted(Path(ROOT / "events").rglob("*.json"))
    assert paths, "no events/**/*.json"
    for path in paths:
        json.loads(path.read_text())


def test_log_levels_drop_info_lines_on_aws_but_never_the_metrics() -> None:
    document = template()
    assert document["Parameters"]["LogLevel"]["Default"] == "WARNING"
    logging_config = document["Globals"]["Function"]["LoggingConfig"]
    assert logging_config["LogFormat"] == "JSON"  # Lambda filters by level only in JSON format
    levels = document["Mappings"]["LambdaLogLevels"]
    assert set(levels) == set(document["Parameters"]["LogLevel"]["AllowedValues"])
    assert logging_config["ApplicationLogLevel"] == {
        "Fn::FindInMap": ["LambdaLogLevels", {"Ref": "LogLevel"}, "Application"]
    }
    assert logging_config["SystemLogLevel"] == {"Fn::FindInMap": ["LambdaLogLevels", {"Ref": "LogLevel"}, "System"]}
    # EMF metric lines carry no "level", which Lambda files as INFO: a higher application level drops them.
    assert {level["Application"] for level in levels.values()} <= {"TRACE", "DEBUG", "INFO"}
    assert levels["WARNING"]["System"] == "WARN"  # no START/END/REPORT lines at the AWS default
    # Every function takes the Globals' settings: none overrides them.
    functions = [b for b in document["Resources"].values() if b["Type"] == "AWS::Serverless::Function"]
    assert functions
    assert all("LoggingConfig" not in f["Properties"] for f in functions)


# The enrollments' tables of record: a bank's contracts and their audit trail.
CONTRACT_RECORD_TABLES = ("OffersTable", "UcpTable", "ActionsTable", "AuditTable")


def test_contract_records_outlive_the_stack_protected_unless_a_throwaway_stack_says_otherwise() -> None:
    document = template()
    assert document["Parameters"]["ContractRecordsDeletionPolicy"]["Default"] == "Retain"
    assert document["Conditions"]["ProtectContractRecords"] == {
        "Fn::Equals": [{"Ref": "ContractRecordsDeletionPolicy"}, "Retain"]
    }
    for table in CONTRACT_RECORD_TABLES:
        body = resource(table)
        assert body["DeletionPolicy"] == {"Ref": "ContractRecordsDeletionPolicy"}, table
        assert body["UpdateReplacePolicy"] == "Retain", table
        assert body["Properties"]["DeletionProtectionEnabled"] == {"Fn::If": ["ProtectContractRecords", True, False]}, (
            table
        )
    # Only the local environment deletes them with the stack; `sam deploy` to AWS keeps the default.
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert "ContractRecordsDeletionPolicy=Delete" in config["local"]["deploy"]["parameters"]["parameter_overrides"]
    assert "ContractRecordsDeletionPolicy" not in config["default"]["deploy"]["parameters"]["parameter_overrides"]


def test_sam_cli_expands_the_language_extensions_the_template_uses() -> None:
    """SAM CLI expands Fn::ForEach only when asked: both samconfig environments ask, for every command."""
    written = (ROOT / "template.yaml").read_text()
    assert "Fn::ForEach::" in written
    assert "Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]" in written
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for environment in ("default", "local"):
        assert config[environment]["global"]["parameters"]["language_extensions"] is True, environment


def _condition_names_used(node: object) -> set[str]:
    if isinstance(node, list):
        return set().union(*(_condition_names_used(value) for value in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    used = {node["Condition"]} if isinstance(node.get("Condition"), str) else set()
    if isinstance(node.get("Fn::If"), list):
        used.add(node["Fn::If"][0])
    return used.union(*(_condition_names_used(value) for value in node.values()))


def test_every_condition_is_used_once_the_api_definition_is_included() -> None:
    """cfn-lint's unused-condition check (W8001) is off because it does not read AWS::Include: this is it."""
    document = template()
    body = {key: value for key, value in document.items() if key != "Conditions"}
    used = _condition_names_used(body) | _condition_names_used(list(document["Conditions"].values()))
    assert set(document["Conditions"]) <= used, set(document["Conditions"]) - used


def test_the_api_definition_is_included_from_its_own_file_in_full_intrinsic_forms() -> None:
    """CloudFormation refuses short forms (!Sub) in an AWS::Include snippet; `sam build` and `sam deploy`
    upload the file named by a relative Location."""
    written = (ROOT / "template.yaml").read_text()
    assert "Location: api/enrollment-api.yaml" in written
    snippet = (ROOT / "api" / "enrollment-api.yaml").read_text()
    assert not re.search(r"^[^#]*!(Sub|If|Ref|GetAtt|Join|Select|Equals)\b", snippet, re.MULTILINE)
    body = resource("EnrollmentApi")["Properties"]["DefinitionBody"]
    assert body["swagger"] == "2.0"
    assert {"/enrollments", "/enrollments/{contractId}"} == set(body["paths"])


def test_the_indexes_the_reconciler_queries_are_the_tables_own_with_what_it_reads_projected() -> None:
    from enrollment.store import tables

    def index(table: str, name: str) -> dict:
        [found] = [i for i in resource(table)["Properties"]["GlobalSecondaryIndexes"] if i["IndexName"] == name]
        return found

    watched = index("OffersTable", tables.WATCHED_INDEX)
    assert [(k["AttributeName"], k["KeyType"]) for k in watched["KeySchema"]] == [
        (tables.WATCH, "HASH"), (tables.WATCHED_SINCE, "RANGE")
    ]  # fmt: skip
    due = index("ActionsTable", tables.ACTIONS_DUE_INDEX)
    assert [(k["AttributeName"], k["KeyType"]) for k in due["KeySchema"]] == [("state", "HASH"), ("dueAt", "RANGE")]
    # What reconcile._check_action reads of an action besides the keys.
    assert set(due["Projection"]["NonKeyAttributes"]) == {
        "scheduledAt", "leaseUntil", "enrollmentDate", "offset", "correlationId"
    }  # fmt: skip
