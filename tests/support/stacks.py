"""CloudFormation stacks as the integration tests read them."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


def stack_status(cloudformation: Any, stack_name: str) -> str | None:
    """The stack's status, or None when there is no such stack (never created, or deleted)."""
    try:
        return cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
    except ClientError as error:
        if "does not exist" not in error.response["Error"]["Message"]:
            raise
        return None
