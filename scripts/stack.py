"""Build the SAM application and deploy it to the local emulator; read stack outputs.

    python scripts/stack.py up [--port N] [--stack-name S]

Used by `make up`, by the demo and by the integration tests, so all three deploy the same way:
`sam build` then `sam deploy --config-env local` with `AWS_ENDPOINT_URL` pointing at the emulator.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import boto3
import emulator
from boto3.dynamodb.types import TypeSerializer
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACK = "mock-payment-workflow-stack"


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


def local_parameter_overrides() -> list[str]:
    """The `local` environment's overrides from samconfig.toml: the one place they are written."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    return config["local"]["deploy"]["parameters"]["parameter_overrides"].split()


def deploy(env: dict[str, str], stack_name: str, extra_overrides: list[str] | None = None) -> None:
    # --parameter-overrides replaces samconfig's list, so pass it whole, plus the emulator's URL
    # (the API URL output differs there) and whatever the caller adds.
    overrides = [*local_parameter_overrides(), f"EmulatorEndpoint={env['AWS_ENDPOINT_URL']}", *(extra_overrides or [])]
    args = ["deploy", "--config-env", "local", "--stack-name", stack_name, "--no-progressbar"]
    sam([*args, "--parameter-overrides", *overrides], env)


def seed_sample_accounts(port: int, stack_outputs: dict[str, str]) -> int:
    """Put the sample customers of events/enrollment/sample-accounts.json into the UCP table."""
    accounts = json.loads((ROOT / "events/enrollment/sample-accounts.json").read_text())
    dynamodb = local_client("dynamodb", port)
    serializer = TypeSerializer()
    for account in accounts:
        item = {key: serializer.serialize(value) for key, value in account.items()}
        dynamodb.put_item(TableName=stack_outputs["UcpTableName"], Item=item)
    return len(accounts)


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
    count = seed_sample_accounts(port, found)
    print(f"seeded {count} sample UCP accounts (events/enrollment/sample-accounts.json)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "outputs"])
    parser.add_argument("--port", type=int, default=emulator.DEFAULT_PORT)
    parser.add_argument("--stack-name", default=DEFAULT_STACK)
    args = parser.parse_args()
    if args.command == "up":
        found = up(args.port, args.stack_name)
    else:
        found = outputs(local_client("cloudformation", args.port), args.stack_name)
    width = max(map(len, found), default=0)
    print(f"\nStack {args.stack_name} on {emulator.endpoint(args.port)}:")
    for key, value in sorted(found.items()):
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
