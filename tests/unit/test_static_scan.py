"""What the static scan (checkov in `make lint`) relies on, checked without running checkov: every
suppression carries its reason, and the hardening the issue asks for is in the template."""

from __future__ import annotations

import re

import sam_template

from tests.support.locks import pins
from tests.support.template import ROOT, resource, template

CHECK_ID = re.compile(r"^CKV2?_AWS_\d+$")


def resources_of(*types: str) -> dict[str, dict]:
    return {name: body for name, body in template()["Resources"].items() if body["Type"] in types}


def test_every_checkov_skip_names_a_check_and_gives_its_reason() -> None:
    skips = 0
    for name, body in template()["Resources"].items():
        entries = body.get("Metadata", {}).get("checkov", {}).get("skip", [])
        ids = [entry.get("id", "") for entry in entries]
        assert len(ids) == len(set(ids)), f"{name} skips a check twice"
        for entry in entries:
            assert set(entry) == {"id", "comment"}, f"{name}: {entry}"
            assert CHECK_ID.match(entry["id"]), f"{name}: {entry['id']!r} is not a checkov AWS check id"
            comment = entry["comment"]
            assert isinstance(comment, str), f"{name} {entry['id']}: the reason must be text"
            assert len(comment.split()) >= 8, f"{name} {entry['id']}: the reason says too little: {comment!r}"
            skips += 1
    assert skips, "no checkov skip found: the scan's Metadata format changed?"


def test_no_check_is_skipped_for_the_whole_run() -> None:
    # Suppressions live next to the resource with their reason, never as a blanket --skip-check.
    makefile = (ROOT / "Makefile").read_text()
    assert "--skip-check" not in makefile
    assert not (ROOT / ".checkov.yaml").exists()
    assert not (ROOT / ".checkov.yml").exists()


def test_lint_runs_checkov_offline_from_its_own_lock() -> None:
    makefile = (ROOT / "Makefile").read_text()
    scan = makefile.split("CHECKOV_SCAN :=", 1)[1].split("\n\n", 1)[0]
    assert "--skip-download" in scan
    # checkov does not expand Fn::ForEach: it scans the expansion of template.yaml, written just before it.
    expanded = re.search(r"^CHECKOV_TEMPLATE := (\S+)$", makefile, re.M)
    assert expanded, "the Makefile must name the expanded template checkov scans"
    assert "scripts/sam_template.py --expand $(CHECKOV_TEMPLATE) &&" in scan
    assert "--file $(CHECKOV_TEMPLATE)" in scan
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    assert "$(CHECKOV_SCAN)" in lint
    pinned = re.search(r"^checkov==(\S+)$", (ROOT / "requirements-checkov.in").read_text(), re.M)
    assert pinned, "requirements-checkov.in must pin checkov exactly"
    assert pins(ROOT / "requirements-checkov.lock")["checkov"].version == pinned.group(1)


def test_tables_stream_and_queues_are_encrypted_and_tables_recoverable() -> None:
    for name, body in resources_of("AWS::DynamoDB::Table").items():
        properties = body["Properties"]
        assert properties["SSESpecification"]["SSEEnabled"] is True, name
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
    for name, body in resources_of("AWS::Kinesis::Stream").items():
        assert body["Properties"]["StreamEncryption"]["EncryptionType"] == "KMS", name
    for name, body in resources_of("AWS::SQS::Queue").items():
        assert body["Properties"].get("KmsMasterKeyId"), name


def test_every_log_group_expires() -> None:
    groups = resources_of("AWS::Logs::LogGroup")
    assert groups
    for name, body in groups.items():
        assert body["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}, name


def test_functions_state_machines_and_api_are_traced() -> None:
    assert template()["Globals"]["Function"]["Tracing"] == "Active"
    for name, body in resources_of("AWS::Serverless::Function").items():
        assert body["Properties"].get("Tracing", "Active") == "Active", name
    for name, body in resources_of("AWS::Serverless::StateMachine").items():
        assert body["Properties"]["Tracing"] == {"Enabled": True}, name
    assert resource("EnrollmentApi")["Properties"]["TracingEnabled"] is True


def test_api_logs_access_and_is_throttled() -> None:
    api = resource("EnrollmentApi")
    access = api["Properties"]["AccessLogSetting"]
    group = access["DestinationArn"]["Fn::GetAtt"].removesuffix(".Arn")
    assert resource(group)["Type"] == "AWS::Logs::LogGroup"
    assert "$context.requestId" in access["Format"]
    # API Gateway refuses access logging until the account names a CloudWatch Logs role.
    assert api["DependsOn"] == "ApiGatewayAccount"
    assert resource("ApiGatewayAccount")["Properties"]["CloudWatchRoleArn"] == {
        "Fn::GetAtt": "ApiGatewayCloudWatchRole.Arn"
    }
    [settings] = api["Properties"]["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}
    assert api["Properties"]["Auth"]["UsagePlan"]["Throttle"]


def test_every_asynchronous_path_ends_in_a_queue() -> None:
    # The hooks' schedules invoke FulfillAction asynchronously.
    fulfil = resource("FulfillActionFunction")["Properties"]["EventInvokeConfig"]
    assert fulfil["DestinationConfig"]["OnFailure"] == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": "HookDeadLetterQueue.Arn"},
    }
    # Every event source mapping sends what it cannot process somewhere.
    for name, body in resources_of("AWS::Serverless::Function").items():
        for event_name, event in body["Properties"].get("Events", {}).items():
            if event["Type"] in {"Kinesis", "DynamoDB"}:
                on_failure = event["Properties"].get("DestinationConfig", {}).get("OnFailure", {})
                assert on_failure.get("Destination"), f"{name}.{event_name} drops what it cannot process"


def test_the_scanned_expansion_holds_every_resource_of_the_template() -> None:
    """What checkov reads: each looped resource under its own logical id, with its skips and their reasons."""
    written = sam_template.load(ROOT / "template.yaml")
    loops = [key for key in written["Resources"] if key.startswith(sam_template.FOR_EACH)]
    assert loops, "no Fn::ForEach left: scan template.yaml itself again"
    expanded = template()["Resources"]
    assert not [key for key in expanded if key.startswith("Fn::")]
    looped = set(expanded) - set(written["Resources"])
    for function in (name for name, body in expanded.items() if body["Type"] == "AWS::Serverless::Function"):
        prefix = function.removesuffix("Function")
        assert {f"{prefix}LogGroup", f"{function}ErrorsAlarm", f"{function}ThrottlesAlarm"} <= looped, function
        assert expanded[f"{prefix}LogGroup"]["Metadata"]["checkov"]["skip"][0]["id"] == "CKV_AWS_158"
    assert "LanguageExtensions" not in str(template()["Transform"])
