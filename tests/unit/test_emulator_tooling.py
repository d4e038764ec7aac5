from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import emulator
import pytest
import stack

from tests.support.template import template

ROOT = Path(__file__).resolve().parents[2]


def test_each_emulator_gets_its_own_temp_dir_which_forget_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "STATE_DIR", tmp_path)
    assert emulator.emulator_environment(4567)["TMPDIR"] == str(tmp_path / "tmp-4567")
    worker_dir = emulator.temp_dir(4567) / "ministack-lambda-Fn-abc"
    worker_dir.mkdir(parents=True)
    emulator.pid_file(4567).write_text("12345")

    emulator.forget(4567)

    assert not emulator.temp_dir(4567).exists()
    assert not emulator.pid_file(4567).exists()


def test_handlers_run_on_an_interpreter_without_the_dev_tools() -> None:
    """The emulator's workers import what Lambda's python3.13 runtime offers (boto3), not what only `.venv`
    has: a handler importing a dev-only package fails locally as on AWS, and no worker loads pyOpenSSL."""
    interpreter = emulator.EMULATOR_BIN / "python"
    assert (emulator.EMULATOR_BIN / "ministack").exists(), "run `make emulator-venv`"
    probe = "import importlib.util as u, sys; print(*[m for m in sys.argv[1:] if u.find_spec(m)])"
    dev_only = ["OpenSSL", "awscrt", "cryptography", "moto", "samcli", "pytest", "aws_lambda_powertools"]
    runtime = ["boto3", "botocore"]
    found = subprocess.run(
        [str(interpreter), "-c", probe, *dev_only, *runtime], capture_output=True, text=True, check=True
    ).stdout.split()
    assert found == runtime
    assert emulator.emulator_environment(4567)["PATH"].startswith(f"{emulator.EMULATOR_BIN}{os.pathsep}")


def test_emulator_environment_drops_an_inherited_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:1")
    env = emulator.emulator_environment(4567)
    assert "AWS_ENDPOINT_URL" not in env
    assert env["GATEWAY_PORT"] == "4567"


# ------------------------------------------------------------------ bounded Lambda workers
def test_the_emulator_gets_explicit_lambda_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMBDA_ACCOUNT_CONCURRENCY", raising=False)
    monkeypatch.delenv("LAMBDA_WARM_TTL_SECONDS", raising=False)
    env = emulator.emulator_environment(4567)
    assert env["LAMBDA_ACCOUNT_CONCURRENCY"] == str(emulator.LAMBDA_ACCOUNT_CONCURRENCY) == "50"
    assert env["LAMBDA_WARM_TTL_SECONDS"] == str(emulator.LAMBDA_WARM_TTL_SECONDS) == "60"


def test_the_callers_environment_overrides_the_lambda_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMBDA_ACCOUNT_CONCURRENCY", "50")
    monkeypatch.setenv("LAMBDA_WARM_TTL_SECONDS", "300")
    env = emulator.emulator_environment(4567)
    assert (env["LAMBDA_ACCOUNT_CONCURRENCY"], env["LAMBDA_WARM_TTL_SECONDS"]) == ("50", "300")
    # A test session's own extra environment still wins over both.
    assert emulator.emulator_environment(4567, {"LAMBDA_ACCOUNT_CONCURRENCY": "5"})["LAMBDA_ACCOUNT_CONCURRENCY"] == "5"


def test_the_scheduler_sweeps_every_second_unless_the_caller_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHEDULER_TICK_SECONDS", raising=False)
    assert emulator.emulator_environment(4567)["SCHEDULER_TICK_SECONDS"] == "1.0"
    monkeypatch.setenv("SCHEDULER_TICK_SECONDS", "10")
    assert emulator.emulator_environment(4567)["SCHEDULER_TICK_SECONDS"] == "10.0"


@pytest.mark.parametrize(("setting", "swept_every"), [(None, "10.0"), ("1", "1.0"), ("0.5", "0.5")])
def test_the_emulators_entry_point_sets_the_scheduler_sweep_before_ministack_starts(
    setting: str | None, swept_every: str
) -> None:
    """scripts/emulator_main.py on the emulator's own interpreter, with ministack's server replaced by a probe
    that prints the sweep interval ministack's scheduler then reads (its default is 10 s)."""
    probe = (
        "import runpy, sys, ministack.app, ministack.services.scheduler as s;"
        "ministack.app.main = lambda: print(s._SCHEDULE_TICK_INTERVAL);"
        "sys.argv = [sys.argv[1]]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    env = {k: v for k, v in os.environ.items() if k != "SCHEDULER_TICK_SECONDS"}
    if setting is not None:
        env["SCHEDULER_TICK_SECONDS"] = setting
    ran = subprocess.run(
        [str(emulator.EMULATOR_BIN / "python"), "-c", probe, str(emulator.EMULATOR_MAIN)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == swept_every


@pytest.mark.parametrize("setting", ["0", "-1", "61"])
def test_the_emulators_entry_point_refuses_a_sweep_out_of_bounds(setting: str) -> None:
    ran = subprocess.run(
        [str(emulator.EMULATOR_BIN / "python"), str(emulator.EMULATOR_MAIN)],
        env={**os.environ, "SCHEDULER_TICK_SECONDS": setting},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode != 0
    assert f"SCHEDULER_TICK_SECONDS={float(setting)}" in ran.stderr


# -------------------------------------------------------------------------- the port travels
@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(emulator, "STATE_DIR", tmp_path / ".emulator")
    monkeypatch.setattr(emulator, "CURRENT_PORT_FILE", tmp_path / ".emulator" / "current-port")
    return tmp_path / ".emulator"


def test_the_recorded_port_is_the_default_unless_emulator_port_is_set(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EMULATOR_PORT", raising=False)
    assert emulator.recorded_port() is None
    assert emulator.default_port() == 4566

    emulator.record_port(4610)
    assert (state_dir / "current-port").read_text().strip() == "4610"
    assert emulator.default_port() == 4610

    monkeypatch.setenv("EMULATOR_PORT", "4620")
    assert emulator.default_port() == 4620


@pytest.mark.parametrize("text", ["", "abc", "0", "70000", "46 10", "4\u00b2"])
def test_an_unreadable_record_is_ignored(state_dir: Path, text: str) -> None:
    state_dir.mkdir()
    (state_dir / "current-port").write_text(text)
    assert emulator.recorded_port() is None


def test_stop_forgets_the_record_of_its_own_port_only(state_dir: Path) -> None:
    emulator.record_port(4610)
    emulator.stop(4611)  # nothing of ours there: the record of 4610 stays
    assert emulator.recorded_port() == 4610
    emulator.stop(4610)
    assert emulator.recorded_port() is None


def _run_make(directory: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if key not in ("EMULATOR_PORT", "AWS_ENDPOINT_URL") and not key.startswith("MAKE")
    }
    return subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "-C", str(directory), *args],
        env=inherited | env,
        capture_output=True,
        text=True,
        check=check,
        timeout=30,
    )


def _make(directory: Path, *args: str) -> str:
    return _run_make(directory, *args).stdout


def test_make_env_and_help_follow_the_recorded_port(tmp_path: Path) -> None:
    assert "AWS_ENDPOINT_URL=http://localhost:4566 " in _make(tmp_path, "env")
    (tmp_path / ".emulator").mkdir()
    (tmp_path / ".emulator" / "current-port").write_text("4610\n")

    assert "AWS_ENDPOINT_URL=http://localhost:4610 " in _make(tmp_path, "env")
    assert "AWS_ENDPOINT_URL=http://localhost:4620 " in _make(tmp_path, "env", "EMULATOR_PORT=4620")
    assert "Emulator port: 4610" in _make(tmp_path, "help")


NON_LOCAL = [
    "https://cloudformation.us-east-1.amazonaws.com",
    "http://localhost.example.com:4566",
    "http://localhost:4566@example.com",
    "http://10.0.0.5:4566",
    "localhost:4566",
]


@pytest.mark.parametrize("target", ["up", "demo", "bench"])
@pytest.mark.parametrize("url", NON_LOCAL)
def test_make_refuses_to_deploy_the_local_settings_to_a_non_local_endpoint(
    tmp_path: Path, target: str, url: str
) -> None:
    """LOCAL_ENV replaces the caller's AWS_ENDPOINT_URL, so make itself refuses one that is not local,
    while it reads the Makefile. -n: a make that did not refuse would print its recipes, not run them
    (no emulator is started, no venv built, whatever this test finds)."""
    with pytest.raises(stack.NonLocalEndpointError):
        stack.require_local_endpoint(url)
    done = _run_make(tmp_path, "-n", target, check=False, AWS_ENDPOINT_URL=url)
    assert done.returncode != 0
    assert f"refusing to deploy: AWS_ENDPOINT_URL={url} is not a local address" in done.stderr
    assert "stack.py" not in done.stdout


@pytest.mark.parametrize("url", [None, "http://localhost:4566", "http://127.0.0.1:4599/", "http://[::1]:4566"])
def test_make_up_with_no_or_a_local_endpoint_deploys_to_the_emulator_port(tmp_path: Path, url: str | None) -> None:
    # The environments' prerequisites, for -n.
    for lock in ("requirements-dev.lock", "requirements-emulator.lock", "requirements-uv.lock"):
        (tmp_path / lock).touch()
    env = {"AWS_ENDPOINT_URL": url} if url else {}
    assert "refusing" not in _run_make(tmp_path, "-n", "up", **env).stderr
    printed = _run_make(tmp_path, "-n", "up", "EMULATOR_PORT=4620", **env).stdout
    assert "AWS_ENDPOINT_URL=http://localhost:4620 " in printed
    assert "scripts/stack.py up --port 4620 " in printed


def test_make_help_prints_commands_as_they_are_typed(tmp_path: Path) -> None:
    """The Makefile writes `$$` for a shell's `$`: help shows what to type, `eval "$(make -s env)"`."""
    text = _make(tmp_path, "help")
    assert 'eval "$(make -s env)"' in text
    assert "$$" not in text


# ------------------------------------------------------------------------------ drift repair
def _zip(text: str) -> bytes:
    return stack.code_zip({"handler.py": text})


BUILT_CODE = _zip("def handler(event, context): return 'built'\n")
CHANGED_CODE = _zip("def handler(event, context): return 'changed'\n")
ASL = '{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${FnArn}", "Parameters": {"T": "${Table}"}, "End": true}}}'


class FakeS3:
    objects = {("bucket", "code-a"): BUILT_CODE, ("bucket", "code-b"): BUILT_CODE, ("bucket", "asl"): ASL.encode()}

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


class FakeLambda:
    def __init__(self, code: dict[str, bytes]) -> None:
        self.code = code
        self.updates: list[dict[str, str]] = []

    def get_function_configuration(self, FunctionName: str) -> dict[str, Any]:  # noqa: N803
        return {
            "FunctionArn": f"arn:aws:lambda:us-east-1:000000000000:function:{FunctionName}",
            "CodeSha256": stack.code_sha256(self.code[FunctionName]),
            "LastUpdateStatus": "Successful",
        }

    def update_function_code(self, **kwargs: str) -> None:
        self.updates.append(kwargs)
        self.code[kwargs["FunctionName"]] = FakeS3.objects[(kwargs["S3Bucket"], kwargs["S3Key"])]


class FakeStepFunctions:
    def __init__(self, definition: str) -> None:
        self.definition = definition
        self.updates: list[dict[str, str]] = []

    def describe_state_machine(self, stateMachineArn: str) -> dict[str, Any]:  # noqa: N803
        return {"definition": self.definition}

    def update_state_machine(self, **kwargs: str) -> None:
        self.updates.append(kwargs)
        self.definition = kwargs["definition"]


SM_ARN = "arn:aws:states:us-east-1:000000000000:stateMachine:sm"
TEMPLATE = {
    "Resources": {
        "FnA": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Bucket": "bucket", "S3Key": "code-a"}}},
        "FnB": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Bucket": "bucket", "S3Key": "code-b"}}},
        "Table": {"Type": "AWS::DynamoDB::Table", "Properties": {}},
        "Machine": {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {
                "DefinitionS3Location": {"Bucket": "bucket", "Key": "asl"},
                "DefinitionSubstitutions": {"FnArn": {"Fn::GetAtt": ["FnA", "Arn"]}, "Table": {"Ref": "Table"}},
            },
        },
    }
}
RESOURCES = {
    "FnA": ("AWS::Lambda::Function", "fn-a"),
    "FnB": ("AWS::Lambda::Function", "fn-b"),
    "Table": ("AWS::DynamoDB::Table", "Orders"),
    "Machine": ("AWS::StepFunctions::StateMachine", SM_ARN),
}
BUILT_DEFINITION = ASL.replace("${FnArn}", "arn:aws:lambda:us-east-1:000000000000:function:fn-a").replace(
    "${Table}", "Orders"
)


def _find(lambda_client: FakeLambda, stepfunctions: FakeStepFunctions) -> tuple[list[Any], list[str], list[str]]:
    return stack.find_drift(
        TEMPLATE, RESOURCES, {}, s3=FakeS3(), lambda_client=lambda_client, stepfunctions=stepfunctions
    )


def test_nothing_drifted_when_live_code_and_definition_are_the_built_ones() -> None:
    # The same definition, reformatted (as the service may store it), is no drift.
    live = json.dumps(json.loads(BUILT_DEFINITION), indent=2, sort_keys=True)
    drifts, checked, unchecked = _find(FakeLambda({"fn-a": BUILT_CODE, "fn-b": BUILT_CODE}), FakeStepFunctions(live))
    assert drifts == []
    assert sorted(checked) == sorted(["fn-a", "fn-b", SM_ARN])
    assert unchecked == []


def test_changed_code_and_definition_are_found_and_put_back_from_the_build() -> None:
    lambda_client = FakeLambda({"fn-a": BUILT_CODE, "fn-b": CHANGED_CODE})
    stepfunctions = FakeStepFunctions(BUILT_DEFINITION.replace("Orders", "SomethingElse"))

    drifts, _, _ = _find(lambda_client, stepfunctions)
    assert [(drift.kind, drift.name) for drift in drifts] == [("function", "fn-b"), ("state machine", SM_ARN)]
    for drift in drifts:
        drift.repair()

    assert lambda_client.updates == [{"FunctionName": "fn-b", "S3Bucket": "bucket", "S3Key": "code-b"}]
    assert stepfunctions.updates == [{"stateMachineArn": SM_ARN, "definition": BUILT_DEFINITION}]
    assert _find(lambda_client, stepfunctions)[0] == []


def test_a_substitution_it_cannot_evaluate_leaves_that_machine_unchecked_and_says_so() -> None:
    template = json.loads(json.dumps(TEMPLATE))
    template["Resources"]["Machine"]["Properties"]["DefinitionSubstitutions"]["Table"] = {"Fn::ImportValue": "x"}
    drifts, checked, unchecked = stack.find_drift(
        template,
        RESOURCES,
        {},
        s3=FakeS3(),
        lambda_client=FakeLambda({"fn-a": BUILT_CODE, "fn-b": BUILT_CODE}),
        stepfunctions=FakeStepFunctions("{}"),
    )
    assert drifts == []
    assert SM_ARN not in checked
    assert len(unchecked) == 1
    assert "Machine" in unchecked[0]


def test_code_sha256_is_lambdas_base64_digest() -> None:
    assert stack.code_sha256(b"abc") == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="


def test_substitutions_resolve_like_cloudformation() -> None:
    physical = {"Fn": "fn", "Table": "Orders", "Machine": SM_ARN}

    def arn_of(logical_id: str) -> str:
        return f"arn:{logical_id}"

    assert stack.resolve({"Ref": "Mode"}, physical, {"Mode": "none"}, arn_of) == "none"
    assert stack.resolve({"Ref": "Table"}, physical, {}, arn_of) == "Orders"
    assert stack.resolve({"Fn::GetAtt": ["Fn", "Arn"]}, physical, {}, arn_of) == "arn:Fn"
    assert stack.resolve({"Fn::GetAtt": "Fn.Arn"}, physical, {}, arn_of) == "arn:Fn"
    assert stack.resolve("literal", physical, {}, arn_of) == "literal"
    for value in ({"Fn::GetAtt": ["Fn", "Name"]}, {"Ref": "Missing"}, {"Fn::Sub": "x"}, True):
        with pytest.raises(stack.UnresolvableError):
            stack.resolve(value, physical, {}, arn_of)
    assert stack.substitute('{"a": "${A}", "b": "${Unknown}"}', {"A": "1"}) == '{"a": "1", "b": "${Unknown}"}'


def test_a_substitution_chosen_by_a_condition_resolves_as_the_stacks_parameters_decide() -> None:
    conditions = {
        "OnEmulator": {"Fn::Not": [{"Fn::Equals": [{"Ref": "EmulatorEndpoint"}, ""]}]},
        "LocalAndFaults": {"Fn::And": [{"Condition": "OnEmulator"}, {"Fn::Equals": [{"Ref": "Faults"}, "on"]}]},
    }
    throttle = {"Fn::If": ["OnEmulator", "Lambda.Unknown", "Lambda.EC2ThrottledException"]}

    def resolved(value: Any, **parameters: str) -> str:
        return stack.resolve(value, {}, parameters, lambda logical_id: "", conditions)

    assert resolved(throttle, EmulatorEndpoint="") == "Lambda.EC2ThrottledException"
    assert resolved(throttle, EmulatorEndpoint="http://localhost:4566") == "Lambda.Unknown"
    faults = {"Fn::If": ["LocalAndFaults", {"Ref": "Faults"}, "off"]}
    assert resolved(faults, EmulatorEndpoint="http://localhost:4566", Faults="on") == "on"
    assert resolved(faults, EmulatorEndpoint="", Faults="on") == "off"
    for unknown in ({"Fn::If": ["Missing", "a", "b"]}, {"Fn::If": ["OnEmulator", "a"]}):
        with pytest.raises(stack.UnresolvableError):
            resolved(unknown, EmulatorEndpoint="")


def test_pseudo_parameters_a_substitution_refs_come_from_the_stack_arn() -> None:
    pseudo = stack.pseudo_parameters("arn:aws-us-gov:cloudformation:us-gov-west-1:123456789012:stack/seeds/abc-1")

    assert pseudo == {
        "AWS::Partition": "aws-us-gov",
        "AWS::Region": "us-gov-west-1",
        "AWS::AccountId": "123456789012",
        "AWS::StackName": "seeds",
    }
    assert stack.resolve({"Ref": "AWS::Partition"}, {}, pseudo, lambda logical_id: "") == "aws-us-gov"


def test_the_account_pool_holds_every_bounded_function_and_ten_more_calls() -> None:
    """So that EnrollmentApi's calls, each waiting for a whole workflow, never take its steps' slots, and the
    unbounded functions (whose throttled calls the emulator's Scheduler drops) have ten calls at once."""
    functions = [
        logical for logical, body in template()["Resources"].items() if body["Type"] == "AWS::Serverless::Function"
    ]
    limits = {logical: stack.reserved_concurrency(logical) for logical in functions}
    unbounded = sorted(logical for logical, limit in limits.items() if limit is None)
    assert unbounded == ["FulfillActionFunction", "ReconcileFunction"]
    bounded = sum(limit for limit in limits.values() if limit is not None)
    assert emulator.LAMBDA_ACCOUNT_CONCURRENCY - bounded >= 10
