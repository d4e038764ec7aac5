"""The alarms of template.yaml: what must have one is computed from the template's resources,
so a queue, stream, state machine or function added later without its alarms fails here."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.template import ROOT, template

GE = "GreaterThanOrEqualToThreshold"
TOPIC = {"Ref": "AlarmTopic"}


def resources_of(*types: str) -> list[str]:
    return sorted(name for name, body in template()["Resources"].items() if body["Type"] in types)


def alarms() -> dict[str, dict[str, Any]]:
    return {
        name: body["Properties"]
        for name, body in template()["Resources"].items()
        if body["Type"] == "AWS::CloudWatch::Alarm"
    }


def alarm_on(namespace: str, metric: str, dimension: str, value: Any) -> dict[str, Any]:
    """The one alarm on this metric of this resource."""
    found = [
        properties
        for properties in alarms().values()
        if properties["Namespace"] == namespace
        and properties["MetricName"] == metric
        and properties.get("Dimensions") == [{"Name": dimension, "Value": value}]
    ]
    assert len(found) == 1, f"expected one {namespace} {metric} alarm on {dimension}={value}, found {len(found)}"
    return found[0]


def assert_fires_on_one(properties: dict[str, Any]) -> None:
    assert properties["Statistic"] in {"Sum", "Maximum"}
    assert properties["Threshold"] == 1
    assert properties["ComparisonOperator"] == GE


@pytest.mark.parametrize("queue", resources_of("AWS::SQS::Queue"))
def test_every_queue_alarms_on_a_visible_message(queue: str) -> None:
    properties = alarm_on(
        "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", {"Fn::GetAtt": f"{queue}.QueueName"}
    )
    assert properties["Statistic"] == "Maximum"
    assert_fires_on_one(properties)


@pytest.mark.parametrize("stream", resources_of("AWS::Kinesis::Stream"))
def test_every_stream_alarms_on_its_iterator_age(stream: str) -> None:
    properties = alarm_on("AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", {"Ref": stream})
    assert properties["Statistic"] == "Maximum"
    assert properties["Threshold"] == 60000
    assert properties["ComparisonOperator"] == "GreaterThanThreshold"
    assert properties["EvaluationPeriods"] > 1  # a few periods running, not one slow poll


@pytest.mark.parametrize("machine", resources_of("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"))
@pytest.mark.parametrize("metric", ["ExecutionsFailed", "ExecutionsTimedOut"])
def test_every_state_machine_alarms_on_failed_and_timed_out_executions(machine: str, metric: str) -> None:
    properties = alarm_on("AWS/States", metric, "StateMachineArn", {"Ref": machine})
    assert properties["Statistic"] == "Sum"
    assert_fires_on_one(properties)


@pytest.mark.parametrize("function", resources_of("AWS::Serverless::Function", "AWS::Lambda::Function"))
@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_errors_and_throttles(function: str, metric: str) -> None:
    properties = alarm_on("AWS/Lambda", metric, "FunctionName", {"Ref": function})
    assert properties["Statistic"] == "Sum"
    assert_fires_on_one(properties)


def test_failed_actions_alarm_on_the_enrollment_services_metric() -> None:
    document = template()
    namespace = document["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    properties = alarm_on(namespace, "ActionFailed", "service", "enrollment")
    assert properties["Statistic"] == "Sum"
    assert_fires_on_one(properties)
    # Powertools Metrics adds the dimension service = POWERTOOLS_SERVICE_NAME: a function's own, else the
    # Globals' (SAM merges a function's variables over them).
    shared = document["Globals"]["Function"]["Environment"]["Variables"]
    services = {
        {**shared, **body["Properties"].get("Environment", {}).get("Variables", {})}.get("POWERTOOLS_SERVICE_NAME")
        for body in document["Resources"].values()
        if body["Type"] == "AWS::Serverless::Function"
    }
    assert "enrollment" in services


def test_the_reconciler_alarms_on_each_repair_and_when_it_stops_running() -> None:
    namespace = template()["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"]
    repairs = alarm_on(namespace, "ReconcilerRepairs", "service", "enrollment")
    assert repairs["Statistic"] == "Sum"
    assert_fires_on_one(repairs)
    heartbeat = alarm_on("AWS/Lambda", "Invocations", "FunctionName", {"Ref": "ReconcileFunction"})
    assert (heartbeat["Statistic"], heartbeat["Threshold"], heartbeat["ComparisonOperator"]) == (
        "Sum",
        1,
        "LessThanThreshold",
    )
    assert heartbeat["TreatMissingData"] == "breaching", "no invocation is no data: that is the fault"
    # Its period outlasts the reconciler's default schedule several times over.
    assert template()["Parameters"]["ReconcileSchedule"]["Default"] == "rate(5 minutes)"
    assert heartbeat["Period"] == 3600


# Alarms on a component's absence: its metric has no data exactly when it fails.
HEARTBEATS = {"ReconcileNotRunningAlarm"}


def test_every_alarm_notifies_the_topic_when_it_fires_and_clears_and_says_what_to_do() -> None:
    found = alarms()
    assert found
    for name, properties in found.items():
        assert properties["AlarmActions"] == [TOPIC], name
        assert properties["OKActions"] == [TOPIC], name
        assert properties["TreatMissingData"] == ("breaching" if name in HEARTBEATS else "notBreaching"), name
        description = properties["AlarmDescription"]
        text = description["Fn::Sub"] if isinstance(description, dict) else description
        assert isinstance(text, str), name
        assert "First:" in text, f"{name}: the description must say the first thing to do"
        assert len(text) <= 1024, f"{name}: CloudWatch takes at most 1024 characters"


def test_topic_subscription_is_the_alarm_email_parameter_and_only_when_set() -> None:
    document = template()
    parameter = document["Parameters"]["AlarmEmail"]
    assert parameter["Type"] == "String"
    assert parameter["Default"] == ""
    assert document["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert document["Resources"]["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    subscriptions = resources_of("AWS::SNS::Subscription")
    assert subscriptions == ["AlarmEmailSubscription"]
    subscription = document["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"] == {"TopicArn": TOPIC, "Protocol": "email", "Endpoint": {"Ref": "AlarmEmail"}}
    assert document["Outputs"]["AlarmTopicArn"]["Value"] == TOPIC


def test_operations_page_explains_the_alarms() -> None:
    document = (ROOT / "docs" / "operations.md").read_text()
    assert "\n## Alarms\n" in document
    section = document.split("\n## Alarms\n", 1)[1].split("\n## ", 1)[0]
    for subject in ("enrollment-hooks-dlq", "enrollment-stream-rejects", "iterator-age", "-failed", "-timed-out"):
        assert subject in section, subject
    for subject in ("-errors", "-throttles", "enrollment-action-failed", "reconciler-repairs", "Reconcile-not-running"):
        assert subject in section, subject
