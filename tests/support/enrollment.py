"""Helpers for driving the deployed enrollment over HTTP and reading back every place it writes."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import api_client
from boto3.dynamodb.types import TypeDeserializer

REQUEST_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: Any
    # 429s retried before this answer (scripts/api_client.py): how it was delivered, not what it says.
    throttled: int = field(default=0, compare=False)


def post(
    url: str,
    body: Any,
    api_key: str | None,
    headers: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
    retry_throttled_for: float = api_client.THROTTLE_RETRY_SECONDS,
) -> HttpAnswer:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310 - local emulator URL
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("x-api-key", api_key)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    return send(request, timeout, retry_throttled_for)


def send(
    request: urllib.request.Request,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
    retry_throttled_for: float = api_client.THROTTLE_RETRY_SECONDS,
) -> HttpAnswer:
    """The answer, after any 429s were retried (for up to `retry_throttled_for` s) the way an AWS SDK does."""
    raw = api_client.send(request, timeout, retry_throttled_for)
    return HttpAnswer(raw.status, _json_or_text(raw.body), raw.throttled)


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def scan(dynamodb: Any, table_name: str, **only: Any) -> list[dict[str, Any]]:
    """Every item of the table (`only`: a FilterExpression and its values), read consistently."""
    return _pages(dynamodb.scan, {"TableName": table_name, "ConsistentRead": True, **only})


def contract_items(dynamodb: Any, table_name: str, contract_id: str) -> list[dict[str, Any]]:
    """The items of one contract in a table keyed by `contractId` (the actions, the audit trail): a query,
    so a probe polled while a test waits reads one contract, not every contract the stack holds."""
    return _pages(
        dynamodb.query,
        {
            "TableName": table_name,
            "ConsistentRead": True,
            "KeyConditionExpression": "contractId = :contract",
            "ExpressionAttributeValues": {":contract": {"S": contract_id}},
        },
    )


def _pages(read: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    deserializer = TypeDeserializer()
    items: list[dict[str, Any]] = []
    while True:
        page = read(**request)
        items += [{k: deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def raw_stream_records(kinesis: Any, stream_name: str) -> list[tuple[str, str, bytes]]:
    """Every record on the stream, as (shard id, sequence number, data), from the trim horizon."""
    records = []
    for shard in kinesis.list_shards(StreamName=stream_name)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream_name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            records += [(shard["ShardId"], r["SequenceNumber"], r["Data"]) for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def stream_records(kinesis: Any, stream_name: str) -> list[dict[str, Any]]:
    """The records on the stream that name a contract: JSON objects with a string `contractId`. Others
    (test_malformed_inputs.py puts malformed records on purpose) are skipped."""
    return [data for _, _, raw in raw_stream_records(kinesis, stream_name) if (data := _contract_record(raw))]


def audit_trail(local_stack: Any, contract_id: str) -> list[str]:
    """A contract's audit trail in order, as `step=outcome`: each item expanded into the steps it
    carries (one item per run, `store.expand`)."""
    from enrollment.store import expand

    items = contract_items(local_stack.client("dynamodb"), local_stack.outputs["AuditTableName"], contract_id)
    return [
        f"{entry['step']}={entry['outcome']}"
        for item in sorted(items, key=lambda item: item["entryId"])
        for entry in expand(item)
    ]


def _contract_record(raw: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("contractId"), str) else None


def payment_executions(stepfunctions: Any, state_machine_arn: str) -> list[dict[str, Any]]:
    paginator = stepfunctions.get_paginator("list_executions")
    return [e for page in paginator.paginate(stateMachineArn=state_machine_arn) for e in page["executions"]]


def request(method: str, url: str, api_key: str | None) -> HttpAnswer:
    prepared = urllib.request.Request(url, method=method)  # noqa: S310 - local emulator URL
    if api_key:
        prepared.add_header("x-api-key", api_key)
    return send(prepared)


def effects(local_stack: Any, contract_id: str) -> dict[str, dict[str, Any]]:
    """What the actions of a contract did: the mock downstream's items (ActionEffects), by action name.
    One item per idempotency key; `calls` counts every call the downstream received with that key."""
    items = scan(
        local_stack.client("dynamodb"),
        local_stack.outputs["ActionEffectsTableName"],
        FilterExpression="contractId = :contract",
        ExpressionAttributeValues={":contract": {"S": contract_id}},
    )
    found: dict[str, dict[str, Any]] = {}
    for item in items:
        assert item["actionName"] not in found, f"{contract_id}/{item['actionName']} has two effects"
        found[item["actionName"]] = item
    return found


def reconcile(local_stack: Any, dry_run: bool = False) -> dict[str, Any]:
    """Run the reconciler now (what its schedule does every minute locally) and return its report."""
    answer = local_stack.client("lambda").invoke(
        FunctionName=local_stack.outputs["ReconcileFunctionName"], Payload=json.dumps({"dryRun": dry_run}).encode()
    )
    report = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, report
    return report
