"""Build the SAM application and deploy it to the local emulator; read stack outputs.

    python scripts/stack.py up [--port N] [--stack-name S]

Used by `make up`, by the demo and by the integration tests, so all three deploy the same way:
`sam build` then `sam deploy --config-env local` with `AWS_ENDPOINT_URL` pointing at the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib
import urllib.parse
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
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
    )
    return env


def sam(args: list[str], env: dict[str, str]) -> None:
    sam_cli = Path(sys.executable).parent / "sam"
    subprocess.run([str(sam_cli), *args], cwd=ROOT, env=env, check=True)


def build(env: dict[str, str]) -> None:
    sam(["build", "--config-env", "local"], env)


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
) -> None:
    """`sam deploy --config-env local` to the emulator at env's AWS_ENDPOINT_URL, which must be local.

    --parameter-overrides replaces samconfig's list, so pass it whole, plus the emulator's URL (the API
    URL output differs there; the template's Rules accept the test-only settings only with it) and
    whatever the caller adds. `with_emulator_endpoint=False` leaves EmulatorEndpoint out, as a deploy
    to AWS would: only the deploy guards' tests do that, to see the template refuse those settings.
    """
    endpoint = require_local_endpoint(env.get("AWS_ENDPOINT_URL"))
    emulator_endpoint = [f"EmulatorEndpoint={endpoint}"] if with_emulator_endpoint else []
    overrides = merge_overrides(local_parameter_overrides(), emulator_endpoint, extra_overrides or [])
    args = ["deploy", "--config-env", "local", "--stack-name", stack_name, "--no-progressbar"]
    sam([*args, "--parameter-overrides", *overrides], env)


def seed_sample_accounts(port: int, stack_outputs: dict[str, str]) -> tuple[int, int]:
    """Put the sample customers of events/enrollment/sample-accounts.json into the emulator's UCP table."""
    return seed_accounts(local_client("dynamodb", port), stack_outputs["UcpTableName"])


def seed_accounts(dynamodb: Any, table_name: str) -> tuple[int, int]:
    """Add each sample account that is absent; keep one that is there, with the contracts enrolled on
    it since (a redeploy loses nothing). Returns (added, kept)."""
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


def up(port: int, stack_name: str, extra_overrides: list[str] | None = None) -> dict[str, str]:
    emulator.start(port)
    env = local_environment(port)
    build(env)
    deploy(env, stack_name, extra_overrides)
    found = outputs(local_client("cloudformation", port), stack_name)
    added, kept = seed_sample_accounts(port, found)
    print(
        f"sample UCP accounts (events/enrollment/sample-accounts.json): {added} added,"
        f" {kept} already there and kept as they are"
    )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "outputs"])
    parser.add_argument("--port", type=int, default=emulator.DEFAULT_PORT)
    parser.add_argument("--stack-name", default=DEFAULT_STACK)
    args = parser.parse_args()
    if args.command == "up":
        try:
            # `up` deploys to the emulator on --port; an AWS_ENDPOINT_URL that says otherwise (say, real
            # AWS) is a mistake to stop at, not to override silently. deploy() checks its own env again.
            if "AWS_ENDPOINT_URL" in os.environ:
                require_local_endpoint(os.environ["AWS_ENDPOINT_URL"])
            found = up(args.port, args.stack_name)
        except NonLocalEndpointError as error:
            sys.exit(f"stack.py: {error}")
    else:
        found = outputs(local_client("cloudformation", args.port), args.stack_name)
    width = max(map(len, found), default=0)
    print(f"\nStack {args.stack_name} on {emulator.endpoint(args.port)}:")
    for key, value in sorted(found.items()):
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
