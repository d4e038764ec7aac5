"""Fault injection for local resilience tests: make a chosen function fail its next N invocations.

Only a stack deployed with `FaultInjection=enabled` (samconfig `local`; the default is `disabled`)
has the fault table and the `FAULT_INJECTION_TABLE` variable. Without the variable the decorator
does nothing but read the environment, so nothing here can fire on a default deployment.

A fault is armed by writing `{"functionName": <name>, "remaining": N}` to the table (see
`arm`). Each invocation of that function atomically takes one unit while `remaining > 0` and then
raises `InjectedFaultError` before the handler runs, so the handler's effects never happen: the fault
looks like a crash of the function, which is what Retry, Catch and the event sources must absorb.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from commonlib import aws

FAULT_TABLE_VARIABLE = "FAULT_INJECTION_TABLE"


class InjectedFaultError(RuntimeError):
    """Raised instead of running the handler while a fault is armed for the function."""


def injectable[F: Callable[..., Any]](handler: F) -> F:
    @functools.wraps(handler)
    def guarded(event: Any, context: Any) -> Any:
        table_name = os.environ.get(FAULT_TABLE_VARIABLE)
        if table_name:
            _fail_if_armed(aws.client("dynamodb"), table_name, context.function_name)
        return handler(event, context)

    return guarded  # type: ignore[return-value]


def _fail_if_armed(dynamodb: Any, table_name: str, function_name: str) -> None:
    try:
        answer = dynamodb.update_item(
            TableName=table_name,
            Key={"functionName": {"S": function_name}},
            UpdateExpression="SET remaining = remaining - :one ADD injected :one",
            ConditionExpression="remaining > :zero",
            ExpressionAttributeValues={":one": {"N": "1"}, ":zero": {"N": "0"}},
            ReturnValues="ALL_NEW",
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return  # nothing armed for this function
    injected = answer["Attributes"]["injected"]["N"]
    raise InjectedFaultError(f"injected fault {injected} in {function_name} (local fault injection)")


def arm(dynamodb: Any, table_name: str, function_name: str, failures: int) -> None:
    """Make `function_name` fail its next `failures` invocations (0 disarms it)."""
    dynamodb.put_item(
        TableName=table_name,
        Item={
            "functionName": {"S": function_name},
            "remaining": {"N": str(failures)},
            "injected": {"N": "0"},
        },
    )


def injected_count(dynamodb: Any, table_name: str, function_name: str) -> int:
    item = dynamodb.get_item(TableName=table_name, Key={"functionName": {"S": function_name}}, ConsistentRead=True)
    return int(item.get("Item", {}).get("injected", {"N": "0"})["N"])
