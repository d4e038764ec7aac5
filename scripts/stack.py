"""Build the SAM application and deploy it to the local emulator; read stack outputs.

    python scripts/stack.py up [--port N] [--stack-name S]

Used by `make up`, by the demo and by the integration tests, so all three deploy the same way:
`sam build` then `sam deploy --config-env local` with `AWS_ENDPOINT_URL` pointing at the emulator.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import emulator

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


def deploy(env: dict[str, str], stack_name: str, parameter_overrides: list[str] | None = None) -> None:
    args = ["deploy", "--config-env", "local", "--stack-name", stack_name, "--no-progressbar"]
    if parameter_overrides:
        # Replaces the local environment's overrides, so callers pass the complete list.
        args += ["--parameter-overrides", *parameter_overrides]
    sam(args, env)


def local_client(service_name: str, port: int, **kwargs: Any) -> Any:
    return boto3.client(
        service_name,
        endpoint_url=emulator.endpoint(port),
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        **kwargs,
    )


def outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def up(port: int, stack_name: str) -> dict[str, str]:
    emulator.start(port)
    env = local_environment(port)
    build(env)
    deploy(env, stack_name)
    return outputs(local_client("cloudformation", port), stack_name)


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
