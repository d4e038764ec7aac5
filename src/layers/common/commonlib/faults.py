"""Fault injection for local resilience tests: make a chosen function fail at a chosen point of its
next N invocations.

Only a stack deployed with `FaultInjection=enabled` (samconfig `local`; the default is `disabled`, and
the template's `Rules` refuse it outside the emulator) has the fault table and the
`FAULT_INJECTION_TABLE` variable. Without the variable the decorator does nothing but read the
environment, so nothing here can fire on a default deployment.

A fault is armed for one *point* of one function (see `arm`):
- `before`: the invocation fails before the handler runs, so none of its effects happen;
- `after`: the handler runs to the end, then the invocation fails (crash after commit: every write
  and effect happened, the caller sees a failure and retries);
- any name the domain code passes to `checkpoint`, for example `after-claim` or `after-effect`: the
  invocation fails right there, between two writes.

Each armed invocation atomically takes one unit of that point's count while it is above zero, then
raises `InjectedFaultError`. The function's item is read once per invocation; a function with nothing
armed costs that one read and nothing else.

A fault may be armed for one contract (`arm(..., contract_id=...)`): it then fires only in an invocation
whose event names that contract (`contractId` at the top, as a hook's or a step's event has it, or in
its `offer`). Background work of another contract (a hook due from an earlier scenario on the same
stack, a reconciler run) then never takes a fault meant for this one.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from commonlib import aws

FAULT_TABLE_VARIABLE = "FAULT_INJECTION_TABLE"
BEFORE, AFTER = "before", "after"


class InjectedFaultError(RuntimeError):
    """Raised at an armed point instead of going on."""


class _Invocation:
    """The function running now and the points armed for it (one invocation at a time per worker)."""

    function_name: str | None = None
    armed: frozenset[str] = frozenset()


def injectable[F: Callable[..., Any]](handler: F) -> F:
    @functools.wraps(handler)
    def guarded(event: Any, context: Any) -> Any:
        table_name = os.environ.get(FAULT_TABLE_VARIABLE)
        _Invocation.function_name, _Invocation.armed = None, frozenset()
        if table_name:
            _Invocation.function_name = context.function_name
            _Invocation.armed = _armed_points(
                aws.client("dynamodb"), table_name, context.function_name, _contract_of(event)
            )
        try:
            checkpoint(BEFORE)
            result = handler(event, context)
            checkpoint(AFTER)
            return result
        finally:
            _Invocation.function_name, _Invocation.armed = None, frozenset()

    return guarded  # type: ignore[return-value]


def checkpoint(point: str) -> None:
    """Fail here if a fault is armed for this point of the running function; otherwise do nothing."""
    if point not in _Invocation.armed or _Invocation.function_name is None:
        return
    table_name = os.environ[FAULT_TABLE_VARIABLE]
    dynamodb = aws.client("dynamodb")
    try:
        answer = dynamodb.update_item(
            TableName=table_name,
            Key={"functionName": {"S": _Invocation.function_name}},
            UpdateExpression="SET points.#point = points.#point - :one, injected.#point = injected.#point + :one",
            ConditionExpression="points.#point > :zero",
            ExpressionAttributeNames={"#point": point},
            ExpressionAttributeValues={":one": {"N": "1"}, ":zero": {"N": "0"}},
            ReturnValues="ALL_NEW",
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return  # used up by an earlier invocation
    injected = answer["Attributes"]["injected"]["M"][point]["N"]
    where = _Invocation.function_name if point == BEFORE else f"{_Invocation.function_name} ({point})"
    raise InjectedFaultError(f"injected fault {injected} in {where} (local fault injection)")


def _contract_of(event: Any) -> str | None:
    """The contract an invocation's event names: `contractId` at the top, or in its `offer`."""
    if not isinstance(event, dict):
        return None
    offer = event.get("offer")
    contract_id = event.get("contractId", offer.get("contractId") if isinstance(offer, dict) else None)
    return contract_id if isinstance(contract_id, str) else None


def _armed_points(dynamodb: Any, table_name: str, function_name: str, contract_id: str | None) -> frozenset[str]:
    """The points armed for this invocation: a count above zero, and no contract or this one."""
    key = {"functionName": {"S": function_name}}
    item = dynamodb.get_item(TableName=table_name, Key=key, ConsistentRead=True).get("Item", {})
    points = item.get("points", {}).get("M", {})
    scopes = item.get("contracts", {}).get("M", {})
    return frozenset(
        point
        for point, count in points.items()
        if int(count["N"]) > 0 and scopes.get(point, {}).get("S") in (None, contract_id)
    )


def arm(
    dynamodb: Any, table_name: str, function_name: str, failures: int, at: str = BEFORE, contract_id: str | None = None
) -> None:
    """Make `function_name` fail at point `at` of its next `failures` invocations (0 disarms it), only
    those whose event names `contract_id` when it is given."""
    key = {"functionName": {"S": function_name}}
    dynamodb.update_item(
        TableName=table_name,
        Key=key,
        # One placeholder per map: ministack 1.5.33 stores a value used twice as one shared object, so
        # the maps would then change together.
        UpdateExpression="SET points = if_not_exists(points, :points), injected = if_not_exists(injected, :injected),"
        " contracts = if_not_exists(contracts, :contracts)",
        ExpressionAttributeValues={":points": {"M": {}}, ":injected": {"M": {}}, ":contracts": {"M": {}}},
    )
    values = {":failures": {"N": str(failures)}, ":zero": {"N": "0"}}
    scope = " REMOVE contracts.#point"
    if contract_id:
        values[":contract"] = {"S": contract_id}
        scope = ", contracts.#point = :contract"
    dynamodb.update_item(
        TableName=table_name,
        Key=key,
        UpdateExpression=f"SET points.#point = :failures, injected.#point = :zero{scope}",
        ExpressionAttributeNames={"#point": at},
        ExpressionAttributeValues=values,
    )


def injected_count(dynamodb: Any, table_name: str, function_name: str, at: str = BEFORE) -> int:
    item = dynamodb.get_item(TableName=table_name, Key={"functionName": {"S": function_name}}, ConsistentRead=True)
    return int(item.get("Item", {}).get("injected", {}).get("M", {}).get(at, {"N": "0"})["N"])
