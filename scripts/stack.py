"""Build the SAM application and deploy it to the local emulator; read stack outputs.

    python scripts/stack.py up [--port N] [--stack-name S]
    python scripts/stack.py repair|warm-up|outputs [--port N] [--stack-name S]   # one step alone

Used by `make up`, by the demo and by the integration tests, so all three deploy the same way:
`sam build` then `sam deploy --config-env local` with `AWS_ENDPOINT_URL` pointing at the emulator.

`up` then puts back whatever was changed behind CloudFormation's back (`repair_drift`: a function's
code from `aws lambda update-function-code`, a state machine's definition from `aws stepfunctions
update-state-machine`), since `sam deploy` alone answers "No changes to deploy" and leaves them live,
bounds each function's concurrent calls on the emulator (`limit_concurrency`), and invokes every
function once with the warm-up event (`warm_up`) so that each has a ready worker before the first
request. It prints one line per step; sam's own output goes to `.emulator/sam-PORT.log`
(printed in full when a step fails).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
import tomllib
import urllib.parse
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import emulator
from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACK = "mock-payment-workflow-stack"
# The only hosts this script deploys to: samconfig `local` carries test-only settings (fault injection,
# 3-second days) that must never reach a real account. Real AWS is `sam build && sam deploy` (`default`).
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class NonLocalEndpointError(RuntimeError):
    """AWS_ENDPOINT_URL names something other than a local emulator: nothing was deployed."""


def require_local_endpoint(url: str | None) -> str:
    """`url` when it is an http(s) URL on localhost, 127.0.0.1 or [::1]; otherwise refuse."""
    try:
        parts = urllib.parse.urlsplit(url or "")
        local = parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTS and parts.port != 0
    except ValueError:  # a malformed address or port
        local = False
    if not local:
        raise NonLocalEndpointError(
            f"refusing to deploy: AWS_ENDPOINT_URL={url!r} is not a local address (localhost, 127.0.0.1, [::1]). "
            "This script and `sam deploy --config-env local` deploy test-only settings (FaultInjection=enabled, "
            "OffsetUnitSeconds=3) and are for the local emulator only; deploy to AWS with `sam build && sam deploy`."
        )
    return url or ""


LOCAL_POLL_DELAY_SECONDS = "0.5"


def local_environment(port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": emulator.endpoint(port),
            "SAM_CLI_TELEMETRY": "0",
            # sam deploy polls the changeset and the stack's events every SAM_CLI_POLL_DELAY seconds (5 by
            # default, for CloudFormation's API rate limits, which the emulator has not): the emulator has
            # answered long before, and each deploy would sleep about 4 s more.
            "SAM_CLI_POLL_DELAY": LOCAL_POLL_DELAY_SECONDS,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def sam_log(port: int) -> Path:
    """Where `up` writes sam's own output (build logs, changeset tables) for the emulator on `port`."""
    return emulator.STATE_DIR / f"sam-{port}.log"


def sam_cli() -> Path:
    return Path(sys.executable).parent / "sam"


def sam(args: list[str], env: dict[str, str], log: Path | None = None) -> str:
    """Run `sam args`. Without `log` its output goes to this process's; with `log` it is appended
    there, and printed in full to stderr when sam fails. Returns what this call wrote to `log`."""
    command = [str(sam_cli()), *args]
    if log is None:
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        return ""
    log.parent.mkdir(exist_ok=True)
    with log.open("a") as out:
        out.write(f"\n$ sam {' '.join(args)}\n")
        out.flush()
        start = out.tell()
        done = subprocess.run(
            command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    text = log.read_text(errors="replace")
    if done.returncode:
        sys.stderr.write(f"\nsam {args[0]} failed (exit {done.returncode}); its output, from {log}:\n{text}\n")
        raise subprocess.CalledProcessError(done.returncode, command)
    return text[start:]


def build_dir() -> Path | None:
    """Where `build` writes and `deploy` reads, when STACK_BUILD_DIR names one: each parallel test
    worker deploys from a directory of its own, so that one worker's rebuild (the README test runs
    `make demo`) never rewrites files another worker's `sam deploy` is packaging. Unset: SAM's own
    .aws-sam/build."""
    value = os.environ.get("STACK_BUILD_DIR", "").strip()
    return Path(value) if value else None


def build(env: dict[str, str], log: Path | None = None) -> None:
    directory = build_dir()
    sam(["build", "--config-env", "local", *(["--build-dir", str(directory)] if directory else [])], env, log)


# One `Key=Value` of a parameter_overrides string, as SAM reads it: a value with spaces is quoted.
_OVERRIDE = re.compile(r"""\s*([A-Za-z0-9]+=(?:"[^"]*"|'[^']*'|[^\s"']+))(?=\s|$)""")


def split_overrides(text: str) -> list[str]:
    """`A=1 B="x y"` -> ['A=1', 'B="x y"']: quotes kept, so `sam deploy --parameter-overrides` reads each
    value whole. Anything else (an unquoted value with a space) is refused rather than cut in two."""
    found, position = [], 0
    while text[position:].strip():
        match = _OVERRIDE.match(text, position)
        if not match:
            raise ValueError(
                f"samconfig.toml parameter_overrides: cannot read {text[position:].strip()!r};"
                ' quote a value that contains spaces (Key=\\"a b\\" in TOML)'
            )
        found.append(match[1])
        position = match.end()
    return found


def local_parameter_overrides() -> list[str]:
    """The `local` environment's overrides from samconfig.toml: the one place they are written."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    return split_overrides(config["local"]["deploy"]["parameters"]["parameter_overrides"])


def merge_overrides(*groups: list[str]) -> list[str]:
    """`Key=Value` lists merged in order: a later value of a key replaces an earlier one."""
    merged: dict[str, str] = {}
    for group in groups:
        for override in group:
            merged[override.partition("=")[0]] = override
    return list(merged.values())


def deploy(
    env: dict[str, str],
    stack_name: str,
    extra_overrides: list[str] | None = None,
    *,
    with_emulator_endpoint: bool = True,
    log: Path | None = None,
) -> str:
    """`sam deploy --config-env local` to the emulator at env's AWS_ENDPOINT_URL, which must be local.

    --parameter-overrides replaces samconfig's list, so pass it whole, plus the emulator's URL (the API
    URL output differs there; the template's Rules accept the test-only settings only with it) and
    whatever the caller adds. `with_emulator_endpoint=False` leaves EmulatorEndpoint out, as a deploy
    to AWS would: only the deploy guards' tests do that, to see the template refuse those settings.
    With `log`, sam's output goes there (see `sam`) and is returned.
    """
    endpoint = require_local_endpoint(env.get("AWS_ENDPOINT_URL"))
    emulator_endpoint = [f"EmulatorEndpoint={endpoint}"] if with_emulator_endpoint else []
    overrides = merge_overrides(local_parameter_overrides(), emulator_endpoint, extra_overrides or [])
    args = ["deploy", "--config-env", "local", "--stack-name", stack_name, "--no-progressbar"]
    if directory := build_dir():
        # SAM looks for samconfig.toml beside the template it deploys: name the project's.
        args += ["--template-file", str(directory / "template.yaml"), "--config-file", str(ROOT / "samconfig.toml")]
    return sam([*args, "--parameter-overrides", *overrides], env, log)


def seed_sample_accounts(port: int, stack_outputs: dict[str, str]) -> tuple[int, int]:
    """Put the sample customers of events/enrollment/sample-accounts.json into the emulator's UCP table."""
    return seed_accounts(local_client("dynamodb", port), stack_outputs["UcpTableName"])


def seed_accounts(dynamodb: Any, table_name: str) -> tuple[int, int]:
    """Add each sample account that is absent; keep one that is there (a redeploy loses nothing, and the
    contracts enrolled on an account are items of their own). Returns (added, kept)."""
    accounts = json.loads((ROOT / "events/enrollment/sample-accounts.json").read_text())
    serializer = TypeSerializer()
    added = kept = 0
    for account in accounts:
        item = {key: serializer.serialize(value) for key, value in account.items()}
        try:
            dynamodb.put_item(TableName=table_name, Item=item, ConditionExpression="attribute_not_exists(accountId)")
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            kept += 1
        else:
            added += 1
    return added, kept


def add_active_accounts(dynamodb: Any, table_name: str, prefix: str, count: int) -> list[str]:
    """`count` active UCP accounts with no contract (`PREFIX-00`, `PREFIX-01`, …): one per load client."""
    accounts = [f"{prefix}-{number:02d}" for number in range(count)]
    for account_id in accounts:
        dynamodb.put_item(
            TableName=table_name,
            Item={
                "accountId": {"S": account_id},
                "recordId": {"S": "account"},
                "status": {"S": "active"},
                "flags": {"L": []},
            },
        )
    return accounts


def local_client(service_name: str, port: int, **kwargs: Any) -> Any:
    """A boto3 client for the emulator. Host prefixes are off: `sync-localhost` does not resolve."""
    return boto3.client(
        service_name,
        endpoint_url=emulator.endpoint(port),
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(inject_host_prefix=False, read_timeout=90),
        **kwargs,
    )


def outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


# ------------------------------------------------------------------------------------- drift repair
# `sam deploy` compares templates, not what is live: after `aws lambda update-function-code` or
# `aws stepfunctions update-state-machine` straight against the emulator it answers "No changes to
# deploy" and the changed code stays live. What was built is what the stack's processed template names:
# each function's code is the zip `sam deploy` uploaded from .aws-sam/build (S3 key = the zip's MD5,
# so an unchanged build names the same object), whose base64 SHA-256 is what GetFunction reports as
# CodeSha256 (on AWS and on the emulator); each state machine's definition is the ASL file it uploaded,
# with the DefinitionSubstitutions applied as CloudFormation applies them.


@dataclass(frozen=True)
class Drift:
    """One resource whose live state differs from the build, and how to put the build back."""

    kind: str  # "function" or "state machine"
    name: str  # function name or state machine ARN
    detail: str
    repair: Callable[[], None]

    def describe(self) -> str:
        return f"{self.kind} {self.name.rsplit(':', 1)[-1]}: {self.detail}"


class UnresolvableError(ValueError):
    """A DefinitionSubstitutions value this script cannot evaluate: that state machine is not checked."""


def code_zip(files: dict[str, str]) -> bytes:
    """A Lambda deployment package built in memory: each path in the archive with its source."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, source in files.items():
            archive.writestr(path, source)
    return buffer.getvalue()


def code_sha256(zip_bytes: bytes) -> str:
    """CodeSha256 as Lambda reports it: the base64 of the zip's SHA-256."""
    return base64.b64encode(hashlib.sha256(zip_bytes).digest()).decode()


_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def substitute(definition: str, substitutions: dict[str, str]) -> str:
    """`${Name}` replaced by substitutions[Name], as CloudFormation applies DefinitionSubstitutions; a
    placeholder without a substitution is left as it is."""
    return _PLACEHOLDER.sub(lambda match: substitutions.get(match[1], match[0]), definition)


def pseudo_parameters(stack_id: str) -> dict[str, str]:
    """The pseudo parameters a DefinitionSubstitutions value may `Ref`, read from the stack's ARN
    (arn:<partition>:cloudformation:<region>:<account>:stack/<name>/<id>)."""
    _, partition, _, region, account, resource = stack_id.split(":", 5)
    return {
        "AWS::Partition": partition,
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::StackName": resource.split("/")[1],
    }


def resolve(
    value: Any,
    physical_ids: dict[str, str],
    parameters: dict[str, str],
    arn_of: Callable[[str], str],
    conditions: dict[str, Any] | None = None,
) -> str:
    """A DefinitionSubstitutions value of the processed template: a string, `Ref` of a parameter or a
    resource, `Fn::GetAtt [Resource, Arn]`, or `Fn::If` on one of the template's `conditions` (of
    parameters). Anything else raises UnresolvableError."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref" and isinstance(argument, str):
            if argument in parameters:
                return parameters[argument]
            if argument in physical_ids:
                return physical_ids[argument]
        if function == "Fn::GetAtt":
            logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
            if attribute == "Arn" and logical_id in physical_ids:
                return arn_of(logical_id)
        if function == "Fn::If" and isinstance(argument, list) and len(argument) == 3:
            condition, when_true, when_false = argument
            chosen = when_true if condition_holds(condition, parameters, conditions or {}) else when_false
            return resolve(chosen, physical_ids, parameters, arn_of, conditions)
    raise UnresolvableError(f"cannot evaluate {json.dumps(value)}")


def condition_holds(name: str, parameters: dict[str, str], conditions: dict[str, Any]) -> bool:
    """A template condition as CloudFormation evaluates it, from the stack's parameters."""
    if name not in conditions:
        raise UnresolvableError(f"no condition {name}")

    def holds(expression: Any) -> bool:
        if not (isinstance(expression, dict) and len(expression) == 1):
            raise UnresolvableError(f"cannot evaluate the condition {json.dumps(expression)}")
        ((function, argument),) = expression.items()
        if function == "Condition":
            return condition_holds(argument, parameters, conditions)
        if function == "Fn::Not":
            return not holds(argument[0])
        if function == "Fn::And":
            return all(holds(item) for item in argument)
        if function == "Fn::Or":
            return any(holds(item) for item in argument)
        if function == "Fn::Equals":
            left, right = (resolve(item, {}, parameters, _no_arn) for item in argument)
            return left == right
        raise UnresolvableError(f"cannot evaluate the condition {json.dumps(expression)}")

    return holds(conditions[name])


def _no_arn(logical_id: str) -> str:
    raise UnresolvableError(f"a condition cannot name the resource {logical_id}")


def same_definition(deployed: str, built: str) -> bool:
    """Equal as JSON (key order and whitespace aside); as text when either is not JSON."""
    try:
        return json.loads(deployed) == json.loads(built)
    except ValueError:
        return deployed.strip() == built.strip()


def processed_template(cloudformation: Any, stack_name: str) -> dict[str, Any]:
    body = cloudformation.get_template(StackName=stack_name, TemplateStage="Processed")["TemplateBody"]
    return json.loads(body) if isinstance(body, str) else body


def stack_resources(cloudformation: Any, stack_name: str) -> dict[str, tuple[str, str]]:
    """logical id -> (resource type, physical id) of every resource of the stack."""
    found = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack_name):
        for summary in page["StackResourceSummaries"]:
            found[summary["LogicalResourceId"]] = (summary["ResourceType"], summary.get("PhysicalResourceId", ""))
    return found


def find_drift(
    template: dict[str, Any],
    resources: dict[str, tuple[str, str]],
    parameters: dict[str, str],
    *,
    s3: Any,
    lambda_client: Any,
    stepfunctions: Any,
) -> tuple[list[Drift], list[str], list[str]]:
    """(what differs from the build, what was checked, what could not be checked and why)."""
    drifts: list[Drift] = []
    checked: list[str] = []
    unchecked: list[str] = []
    physical_ids = {logical_id: physical for logical_id, (_, physical) in resources.items()}
    configurations: dict[str, dict[str, Any]] = {}

    def configuration(logical_id: str) -> dict[str, Any]:
        if logical_id not in configurations:
            configurations[logical_id] = lambda_client.get_function_configuration(FunctionName=physical_ids[logical_id])
        return configurations[logical_id]

    def arn_of(logical_id: str) -> str:
        kind = resources[logical_id][0]
        if kind == "AWS::Lambda::Function":
            return configuration(logical_id)["FunctionArn"]
        if kind == "AWS::StepFunctions::StateMachine":
            return physical_ids[logical_id]  # a state machine's physical id is its ARN
        raise UnresolvableError(f"no Arn known for {kind} {logical_id}")

    def s3_bytes(bucket: str, key: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    for logical_id, body in sorted(template.get("Resources", {}).items()):
        kind, properties = body.get("Type"), body.get("Properties", {})
        if logical_id not in physical_ids:
            continue
        if kind == "AWS::Lambda::Function":
            code = properties.get("Code", {})
            if not (isinstance(code.get("S3Bucket"), str) and isinstance(code.get("S3Key"), str)):
                unchecked.append(f"function {logical_id}: code not in S3")
                continue
            built = code_sha256(s3_bytes(code["S3Bucket"], code["S3Key"]))
            live = configuration(logical_id).get("CodeSha256", "")
            name = physical_ids[logical_id]
            checked.append(name)
            if live != built:
                drifts.append(
                    Drift(
                        "function",
                        name,
                        f"live code (CodeSha256 {live[:10] or 'none'}…) is not the build's ({built[:10]}…)",
                        _code_repair(lambda_client, name, code["S3Bucket"], code["S3Key"]),
                    )
                )
        elif kind == "AWS::StepFunctions::StateMachine":
            location = properties.get("DefinitionS3Location")
            if isinstance(location, dict):
                built_text = s3_bytes(location["Bucket"], location["Key"]).decode()
            elif isinstance(properties.get("DefinitionString"), str):
                built_text = properties["DefinitionString"]
            elif isinstance(properties.get("Definition"), dict):
                built_text = json.dumps(properties["Definition"])
            else:
                unchecked.append(f"state machine {logical_id}: definition not readable")
                continue
            try:
                values = {
                    name: resolve(value, physical_ids, parameters, arn_of, template.get("Conditions", {}))
                    for name, value in properties.get("DefinitionSubstitutions", {}).items()
                }
            except UnresolvableError as error:
                unchecked.append(f"state machine {logical_id}: {error}")
                continue
            built_definition = substitute(built_text, values)
            arn = physical_ids[logical_id]
            live_definition = stepfunctions.describe_state_machine(stateMachineArn=arn)["definition"]
            checked.append(arn)
            if not same_definition(live_definition, built_definition):
                drifts.append(
                    Drift(
                        "state machine",
                        arn,
                        "live definition is not the build's",
                        _definition_repair(stepfunctions, arn, built_definition),
                    )
                )
    return drifts, checked, unchecked


def _code_repair(lambda_client: Any, name: str, bucket: str, key: str) -> Callable[[], None]:
    def repair() -> None:
        lambda_client.update_function_code(FunctionName=name, S3Bucket=bucket, S3Key=key)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if lambda_client.get_function_configuration(FunctionName=name).get("LastUpdateStatus") != "InProgress":
                return
            time.sleep(0.2)

    return repair


def _definition_repair(stepfunctions: Any, arn: str, definition: str) -> Callable[[], None]:
    return lambda: stepfunctions.update_state_machine(stateMachineArn=arn, definition=definition)


def repair_drift(port: int, stack_name: str) -> list[Drift]:
    """Put back the built code of every function and the built definition of every state machine that
    differs from it; print one line per repair (or one line saying all matched). Returns the repairs."""
    cloudformation = local_client("cloudformation", port)
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    parameters = {item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])}
    parameters |= pseudo_parameters(stack["StackId"])
    drifts, checked, unchecked = find_drift(
        processed_template(cloudformation, stack_name),
        stack_resources(cloudformation, stack_name),
        parameters,
        s3=local_client("s3", port),
        lambda_client=local_client("lambda", port),
        stepfunctions=local_client("stepfunctions", port),
    )
    for drift in drifts:
        drift.repair()
        print(f"drift repaired: {drift.describe()}: the build's is back")
    if not drifts:
        print(f"drift: none ({len(checked)} functions and state machines match the build)")
    for reason in unchecked:
        print(f"drift: not checked: {reason}")
    return drifts


# ------------------------------------------------------------------------------------------ warm-up
# The event commonlib.warm_up.answers_warm_up answers without running the handler (the handlers import
# it from the layer; this script keeps its own copy, and tests/unit/test_warm_up.py checks both agree).
WARM_UP_EVENT: dict[str, Any] = {"warmUp": True}
WARM_UP_ANSWER: dict[str, Any] = {"warmUp": "ready"}


@dataclass(frozen=True)
class WarmUp:
    function: str
    ok: bool
    seconds: float
    detail: str = ""


def warm_up_function(lambda_client: Any, name: str) -> WarmUp:
    started = time.monotonic()
    try:
        answer = lambda_client.invoke(FunctionName=name, Payload=json.dumps(WARM_UP_EVENT).encode())
        payload = answer["Payload"].read()
    except Exception as error:  # reported, never raised: the stack is deployed either way
        return WarmUp(name, False, time.monotonic() - started, f"{type(error).__name__}: {error}")
    seconds = time.monotonic() - started
    if answer.get("FunctionError"):
        return WarmUp(name, False, seconds, f"{answer['FunctionError']}: {payload[:300]!r}")
    try:
        ready = json.loads(payload) == WARM_UP_ANSWER
    except ValueError:
        ready = False
    return WarmUp(name, ready, seconds, "" if ready else f"unexpected answer {payload[:300]!r}")


def warm_up_all(lambda_client: Any, names: Iterable[str]) -> list[WarmUp]:
    """Invoke every function once with the warm-up event, all at once (one thread each), then once more,
    alone, each function whose warm-up failed: ministack 1.5.33 now and then fails a call while it starts
    many workers at once ("dictionary changed size during iteration" in its own process, logged as "Warm
    worker execution error"; the handler never ran)."""
    names = sorted(names)
    if not names:
        return []
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        results = list(pool.map(lambda name: warm_up_function(lambda_client, name), names))
    return [result if result.ok else warm_up_function(lambda_client, result.function) for result in results]


def warm_up(port: int, stack_name: str) -> list[WarmUp]:
    """Give every function of the stack (its AWS::Lambda::Function resources) a ready worker."""
    resources = stack_resources(local_client("cloudformation", port), stack_name)
    names = [physical for kind, physical in resources.values() if kind == "AWS::Lambda::Function"]
    started = time.monotonic()
    results = warm_up_all(local_client("lambda", port), names)
    ready = [result for result in results if result.ok]
    slowest = max(results, key=lambda result: result.seconds, default=None)
    print(
        f"warm-up: {len(ready)} of {len(results)} functions ready in {time.monotonic() - started:.1f} s"
        + (f" (slowest {slowest.function}, {slowest.seconds:.1f} s)" if slowest else "")
    )
    for result in results:
        if not result.ok:
            print(f"warm-up: {result.function} did not answer the warm-up event: {result.detail}")
    return results


# ------------------------------------------------------------------------------------- concurrency
# The emulator runs each concurrent call of a function in a worker process of its own, started on demand
# (about 0.8 CPU-seconds and 57 MB each) and with no cap per function: on 2 cores a burst starts workers
# instead of running calls. Each function's reserved concurrency, which the emulator honours as a cap when
# it is set with put-function-concurrency (it ignores the template's ReservedConcurrentExecutions), bounds
# its workers; a call over it is throttled (TooManyRequestsException), and the state machines' Retry backs
# off and calls again, as on AWS. EnrollmentApi waits for the whole synchronous workflow, one call per
# request in flight, so it gets a slot per concurrent client the local stack is sized for (10); a request
# over it is answered 429 and retried by the client. Most functions get 2, which `make bench` measured
# against 1 and 3 (docs/reliability.md, "Local capacity"): 1 made throttled steps exhaust their retries
# (500s in a burst), 3 started more workers than 3 GB holds. FulfillAction and Reconcile get no limit: the
# emulator's Scheduler and EventBridge invoke them once and drop a throttled call (AWS queues an
# asynchronous call and retries it), so a limit would lose a hook's delivery until the reconciler re-drove
# it. None means no reserved concurrency (any set before is removed).
# Local only: on AWS reserved concurrency is carved out of the account's pool, and the template sets none.
LOCAL_RESERVED_CONCURRENCY: dict[str, int | None] = {
    "EnrollmentApiFunction": 10,
    "FulfillActionFunction": None,
    "ReconcileFunction": None,
}
LOCAL_RESERVED_CONCURRENCY_DEFAULT = 2


def describe_limits(limits: dict[str, int | None]) -> str:
    """`A 10, B no limit`: how `make up` and `make bench` name the limits they set."""
    return ", ".join(f"{name} {'no limit' if limit is None else limit}" for name, limit in limits.items())


def reserved_concurrency(logical_id: str) -> int | None:
    return LOCAL_RESERVED_CONCURRENCY.get(logical_id, LOCAL_RESERVED_CONCURRENCY_DEFAULT)


def limit_concurrency(port: int, stack_name: str) -> dict[str, int | None]:
    """Set every function's reserved concurrency on the emulator (LOCAL_RESERVED_CONCURRENCY). Returns it
    by function name."""
    resources = stack_resources(local_client("cloudformation", port), stack_name)
    lambda_client = local_client("lambda", port)
    limits = {
        physical: reserved_concurrency(logical)
        for logical, (kind, physical) in sorted(resources.items())
        if kind == "AWS::Lambda::Function"
    }
    for name, limit in limits.items():
        if limit is None:
            lambda_client.delete_function_concurrency(FunctionName=name)
        else:
            lambda_client.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=limit)
    return limits


# ----------------------------------------------------------------------------------------------- up
def up(port: int, stack_name: str, extra_overrides: list[str] | None = None) -> dict[str, str]:
    """Start (or reuse) the emulator on `port`, build, deploy, repair drift, warm up, seed the sample
    accounts: one line per step, sam's output in sam_log(port)."""
    emulator.start(port)
    env = local_environment(port)
    log = sam_log(port)
    log.parent.mkdir(exist_ok=True)
    log.write_text("")
    shown = log.relative_to(ROOT) if log.is_relative_to(ROOT) else log
    started = time.monotonic()
    print(f"build: sam build --config-env local (sam's output: {shown}) ...", end=" ", flush=True)
    build(env, log)
    print(f"done in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    print(f"deploy: sam deploy --config-env local --stack-name {stack_name} ...", end=" ", flush=True)
    deploy_output = deploy(env, stack_name, extra_overrides, log=log)
    what = "no changes to deploy" if "No changes to deploy" in deploy_output else "stack deployed"
    print(f"{what} in {time.monotonic() - started:.1f} s")
    found = outputs(local_client("cloudformation", port), stack_name)
    repair_drift(port, stack_name)
    limits = limit_concurrency(port, stack_name)
    default = LOCAL_RESERVED_CONCURRENCY_DEFAULT
    others = describe_limits({name: limit for name, limit in limits.items() if limit != default})
    print(f"concurrency: at most {default} calls at once per function; {others} (LOCAL_RESERVED_CONCURRENCY)")
    warm_up(port, stack_name)
    added, kept = seed_sample_accounts(port, found)
    print(
        f"sample UCP accounts (events/enrollment/sample-accounts.json): {added} added,"
        f" {kept} already there and kept as they are"
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "outputs", "repair", "warm-up"])
    parser.add_argument("--port", type=int, default=emulator.DEFAULT_PORT)
    parser.add_argument("--stack-name", default=DEFAULT_STACK)
    args = parser.parse_args()
    if args.command == "up":
        try:
            # `up` deploys to the emulator on --port; an AWS_ENDPOINT_URL that says otherwise (say, real
            # AWS) is a mistake to stop at, not to override silently. deploy() checks its own env again.
            if "AWS_ENDPOINT_URL" in os.environ:
                require_local_endpoint(os.environ["AWS_ENDPOINT_URL"])
            # Recorded first: when a later step fails, `make down` still finds the emulator it started.
            emulator.record_port(args.port)
            found = up(args.port, args.stack_name)
        except NonLocalEndpointError as error:
            sys.exit(f"stack.py: {error}")
        except subprocess.CalledProcessError as error:
            sys.exit(f"stack.py: {Path(error.cmd[0]).name} {error.cmd[1]} failed (exit {error.returncode}), see above")
    elif args.command == "repair":
        repair_drift(args.port, args.stack_name)
        return
    elif args.command == "warm-up":
        warm_up(args.port, args.stack_name)
        return
    else:
        found = outputs(local_client("cloudformation", args.port), args.stack_name)
    width = max(map(len, found), default=0)
    print(f"\nStack {args.stack_name} on {emulator.endpoint(args.port)}:")
    for key, value in sorted(found.items()):
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
