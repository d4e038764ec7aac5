"""Bad input at every entry point of the deployed stack, and proof that none of it writes anything.

- At least 100 generated malformed requests (tests/support/malformed.py, hypothesis with a fixed
  seed) over real HTTP with the API key: each gets a 400 naming exactly the broken fields (or
  `(body)`), never a 5xx, never a stack trace.
- Malformed records on the real stream: each is rejected by name (rejects queue + audit entry in
  the `_rejected` partition), starts nothing; an enrollment's record behind them in the same shard
  is still processed.
- Malformed payloads to the real hook target (FulfillAction): each is a named, audited rejection
  answered as data, not a function error.

Before and after each: every table (the idempotency table included: a 400 is answered before the
idempotency layer is reached), the stream, the executions of the three state machines, the hook
schedules and the queues. Every wait has a deadline.
"""

from __future__ import annotations

import base64
import copy
import json
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import api_client
import pytest
from hypothesis import given

from tests.integration.conftest import EnrollmentApi, LocalStack
from tests.support import malformed
from tests.support.enrollment import post, raw_stream_records, request, scan
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
SEED = json.loads((Path(__file__).resolve().parents[2] / "events/enrollment/input.json").read_text())
TABLES = (
    "OffersTableName",
    "UcpTableName",
    "ActionsTableName",
    "AuditTableName",
    "IdempotencyTableName",
    "OrdersTableName",
)
STATE_MACHINES = ("PaymentStateMachineArn", "EnrollmentStateMachineArn", "EnrollmentAsyncStateMachineArn")
QUEUES = ("RejectedRecordsQueueUrl", "HookDeadLetterQueueUrl")
REJECTIONS = "_rejected"  # enrollment.store.REJECTIONS
REQUEST_TIMEOUT_SECONDS = 30
SETTLE_SECONDS = 180
HOOK_FREE_WINDOW_SECONDS = 120  # no hook of an earlier test may fire while a test here runs
PROCESSED_SECONDS = 90
# Hooks far in the future (300 days x 3 s locally): none fires while these tests run; the contracts
# enrolled here stay enrolled with their hooks scheduled (the invariants hold for them).
FAR_DRAFT = {"List": [{"name": "action2", "offset": 0}, {"name": "action1", "offset": 300}]}


# ---------------------------------------------------------------- everything the stack can write


def _stream(local_stack: LocalStack) -> list[tuple[str, str, bytes]]:
    return raw_stream_records(local_stack.client("kinesis"), local_stack.outputs["EnrollmentStreamName"])


def _executions(local_stack: LocalStack, output: str) -> list[tuple[str, str]]:
    paginator = local_stack.client("stepfunctions").get_paginator("list_executions")
    pages = paginator.paginate(stateMachineArn=local_stack.outputs[output])
    return sorted((e["name"], e["status"]) for page in pages for e in page["executions"])


def _schedules(local_stack: LocalStack) -> list[str]:
    paginator = local_stack.client("scheduler").get_paginator("list_schedules")
    pages = paginator.paginate(GroupName=local_stack.outputs["HookScheduleGroupName"])
    return sorted(s["Name"] for page in pages for s in page["Schedules"])


def _queued(local_stack: LocalStack, output: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = local_stack.client("sqs").get_queue_attributes(
        QueueUrl=local_stack.outputs[output], AttributeNames=names
    )["Attributes"]
    return sum(int(attributes.get(name, 0)) for name in names)


def _key(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True, default=str)


def _hook_due_within(local_stack: LocalStack, seconds: float) -> str | None:
    scheduler = local_stack.client("scheduler")
    group = local_stack.outputs["HookScheduleGroupName"]
    soon = datetime.now(UTC) + timedelta(seconds=seconds)
    for name in _schedules(local_stack):
        try:
            expression = scheduler.get_schedule(GroupName=group, Name=name)["ScheduleExpression"]
        except scheduler.exceptions.ResourceNotFoundException:
            continue  # fired and deleted itself
        due = datetime.fromisoformat(expression.removeprefix("at(").removesuffix(")")).replace(tzinfo=UTC)
        if due < soon:
            return f"{name} at {expression}"
    return None


# The reconciler's mark on an offer: its scheduled runs remove it from earlier tests' offers at any time
# (once they find them settled). Input that wrote anything would show elsewhere: an offer or an audit entry.
RECONCILER_MARK = ("watch", "watchedSince")


def snapshot(local_stack: LocalStack) -> dict[str, Any]:
    dynamodb = local_stack.client("dynamodb")
    state: dict[str, Any] = {name: sorted(scan(dynamodb, local_stack.outputs[name]), key=_key) for name in TABLES}
    state["OffersTableName"] = [
        {name: value for name, value in offer.items() if name not in RECONCILER_MARK}
        for offer in state["OffersTableName"]
    ]
    state["stream"] = _stream(local_stack)
    state["executions"] = {output: _executions(local_stack, output) for output in STATE_MACHINES}
    state["schedules"] = _schedules(local_stack)
    state["queued"] = {output: _queued(local_stack, output) for output in QUEUES}
    return state


def settled_snapshot(local_stack: LocalStack) -> dict[str, Any]:
    """A snapshot equal to the one taken a second earlier, with no execution running and no hook due
    in the next minutes: background work of earlier tests (stream consumer, payment workflows, hooks)
    is not between two writes and will not write during the test."""
    previous = [snapshot(local_stack)]

    unsettled: list[str] = []

    def settled() -> dict[str, Any] | None:
        time.sleep(1)
        current = snapshot(local_stack)
        running = [name for runs in current["executions"].values() for name, status in runs if status == "RUNNING"]
        due = _hook_due_within(local_stack, HOOK_FREE_WINDOW_SECONDS)
        if current == previous[0] and not running and not due:
            return current
        changed = sorted(differences(previous[0], current))
        unsettled[:] = [f"changed: {changed}", f"running: {running[:5]}", f"hook due soon: {due}"]
        previous[0] = current
        return None

    try:
        return wait_until(settled, SETTLE_SECONDS, "the stack to settle before the snapshot", interval=0)
    except TimeoutError as error:
        raise TimeoutError(f"{error}; last seen: {'; '.join(unsettled)}") from error


def differences(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What changed, part by part: for lists, what was added and what went away."""
    changed = {}
    for part in before:
        if before[part] == after[part]:
            continue
        if isinstance(before[part], list):
            old = [_key(i) if isinstance(i, dict) else repr(i) for i in before[part]]
            new = [_key(i) if isinstance(i, dict) else repr(i) for i in after[part]]
            changed[part] = {"added": [i for i in new if i not in old], "removed": [i for i in old if i not in new]}
        else:
            changed[part] = {"before": before[part], "after": after[part]}
    return changed


def new_rejections(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    old = {_key(e) for e in before["AuditTableName"]}
    return [e for e in after["AuditTableName"] if _key(e) not in old]


def enrollment_status(api: EnrollmentApi, contract_id: str) -> dict[str, Any]:
    """GET /enrollments/{id}; empty while it is not (yet) answered with 200."""
    answer = request("GET", f"{api.url}/{contract_id}", api.api_key)
    return answer.body if answer.status == 200 else {}


# ---------------------------------------------------------------- 1. generated malformed requests


def send(api: EnrollmentApi, bad: malformed.Malformed) -> tuple[int, str]:
    prepared = urllib.request.Request(api.url, data=bad.body, method="POST")  # noqa: S310 - local emulator URL
    prepared.add_header("Content-Type", bad.content_type)
    prepared.add_header("x-api-key", api.api_key)
    for name, value in bad.headers.items():
        prepared.add_header(name, value)
    answer = api_client.send(prepared, REQUEST_TIMEOUT_SECONDS)
    return answer.status, answer.body.decode(errors="replace")


def check_answer(bad: malformed.Malformed, status: int, text: str) -> None:
    where = f"{bad.category} ({bad.content_type}): {bad.body[:120]!r} -> {status} {text[:300]}"
    assert status == 400, where
    assert "Traceback" not in text, where
    assert 'File "' not in text, where
    answer = json.loads(text)
    assert answer["error"] == "InvalidEnrollmentRequest", where
    assert all(isinstance(e["field"], str) and isinstance(e["message"], str) for e in answer["errors"]), where
    assert {e["field"] for e in answer["errors"]} == bad.fields, where
    if "X-Correlation-Id" in bad.headers:
        assert answer["correlationId"] == bad.headers["X-Correlation-Id"], where


def test_generated_malformed_requests_get_a_named_400_and_write_nothing(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    warmup = malformed.Malformed("warm-up", b"{}", frozenset(malformed.TOP_LEVEL - {"correlationId"}))
    check_answer(warmup, *send(enrollment_api, warmup))  # the API's worker starts here, not in the loop
    before = settled_snapshot(local_stack)
    sent: list[malformed.Malformed] = []
    started = time.monotonic()  # for the printed summary only: speed is measured by `make bench`

    @malformed.SETTINGS
    @given(malformed.malformed_requests())
    def send_one(bad: malformed.Malformed) -> None:
        check_answer(bad, *send(enrollment_api, bad))
        sent.append(bad)

    for bad in malformed.one_of_each():
        send_one.hypothesis.inner_test(bad)
    send_one()
    elapsed = time.monotonic() - started
    after = snapshot(local_stack)

    assert differences(before, after) == {}
    assert len(sent) >= malformed.MIN_SENT
    assert malformed.distinct(sent) >= malformed.MIN_SENT
    assert {bad.category for bad in sent} == malformed.CATEGORIES
    counts = Counter(bad.category for bad in sent)
    wrong_type = sum(bad.wrong_content_type for bad in sent)
    print(f"\n{len(sent)} malformed requests ({malformed.distinct(sent)} distinct) in {elapsed:.1f}s: {dict(counts)}")
    print(f"with a non-JSON Content-Type: {wrong_type}; with an Idempotency-Key: ", end="")
    print(sum("Idempotency-Key" in bad.headers for bad in sent))


# ---------------------------------------------------------------- 2. malformed stream records


def _record(contract_id: str, **changes: Any) -> dict[str, Any]:
    record = {
        "type": "ContractEnrolled",
        "version": 1,
        "contractId": contract_id,
        "accountId": "A-100",
        "enrollmentDate": "2026-11-22T10:00:00.000Z",
        "correlationId": f"corr-{contract_id}",
        "eventualActions": [{"name": "action1", "offset": 3, "dueAt": "2026-11-25T10:00:00.000Z", "data": {}}],
        "publishedAt": "2026-11-22T10:00:01.000Z",
    }
    record.update(changes)
    return record


def _without(record: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != key}


def _action(**changes: Any) -> list[dict[str, Any]]:
    return [{"name": "action1", "offset": 3, "dueAt": "2026-11-25T10:00:00.000Z", "data": {}, **changes}]


# (label, data, the rejection's name, the fields it names). Each record claims its own contract, which
# has no offer: a rejected record must not count as a publication (tests/support/invariants.py).
MALFORMED_RECORDS: list[tuple[str, bytes | dict[str, Any], str, set[str]]] = [
    ("not JSON", b"not json {", "MalformedStreamRecord", {"(record)"}),
    ("not UTF-8", b"\xff\xfe\xfd", "MalformedStreamRecord", {"(record)"}),
    ("JSON array", b"[1, 2]", "MalformedStreamRecord", {"(record)"}),
    (
        "empty object",
        b"{}",
        "MalformedStreamRecord",
        {
            "type",
            "version",
            "contractId",
            "accountId",
            "enrollmentDate",
            "correlationId",
            "eventualActions",
            "publishedAt",
        },
    ),
    ("another type", _record("MAL-REC-1", type="ContractCancelled"), "MalformedStreamRecord", {"type"}),
    ("another version", _record("MAL-REC-2", version=2), "MalformedStreamRecord", {"version"}),
    ("missing contract id", _without(_record("MAL-REC-3"), "contractId"), "MalformedStreamRecord", {"contractId"}),
    ("contract id a number", _record("MAL-REC-4", contractId=4), "MalformedStreamRecord", {"contractId"}),
    ("contract id with a space", _record("MAL REC 5"), "MalformedStreamRecord", {"contractId"}),
    (
        "due date not a time",
        _record("MAL-REC-6", eventualActions=_action(dueAt="soon")),
        "MalformedStreamRecord",
        {"eventualActions.0.dueAt"},
    ),
    (
        "same-day action on the stream",
        _record("MAL-REC-7", eventualActions=_action(offset=0)),
        "MalformedStreamRecord",
        {"eventualActions.0.offset"},
    ),
    (
        "actions not a list",
        _record("MAL-REC-8", eventualActions="action1"),
        "MalformedStreamRecord",
        {"eventualActions"},
    ),
    ("unknown field", _record("MAL-REC-9", extra={"nested": [1]}), "MalformedStreamRecord", {"extra"}),
    ("unknown contract", _record("MAL-REC-NOBODY"), "UnknownContract", {"contractId"}),
]


def _rejected_by_sequence(local_stack: LocalStack, sequences: set[str]) -> dict[str, dict[str, Any]] | None:
    entries = scan(local_stack.client("dynamodb"), local_stack.outputs["AuditTableName"])
    found = {
        e["details"]["sequenceNumber"]: e
        for e in entries
        if e["contractId"] == REJECTIONS and e["details"].get("sequenceNumber") in sequences
    }
    return found if set(found) == sequences else None


def _queue_reports(local_stack: LocalStack, sequences: set[str]) -> dict[str, dict[str, Any]]:
    """Read (and remove) this test's reports from the rejects queue. Other reports stay there (hidden
    for the queue's visibility timeout once received here)."""
    sqs = local_stack.client("sqs")
    queue = local_stack.outputs["RejectedRecordsQueueUrl"]
    found: dict[str, dict[str, Any]] = {}

    def all_read() -> bool:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for message in messages:
            report = json.loads(message["Body"])
            if report.get("sequenceNumber") in sequences:
                found[report["sequenceNumber"]] = report
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        return set(found) == sequences

    wait_until(all_read, PROCESSED_SECONDS, "every malformed record's report on the rejects queue", interval=0)
    return found


def test_malformed_stream_records_are_rejected_by_name_audited_and_skipped(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    kinesis = local_stack.client("kinesis")
    stream = local_stack.outputs["EnrollmentStreamName"]
    contract = "MAL-STREAM-1"  # enrolled below: its record goes behind the malformed ones, same shard
    before = settled_snapshot(local_stack)

    put = {}
    for label, data, error, fields in MALFORMED_RECORDS:
        raw = data if isinstance(data, bytes) else json.dumps(data).encode()
        answer = kinesis.put_record(StreamName=stream, PartitionKey=contract, Data=raw)
        put[answer["SequenceNumber"]] = (label, answer["ShardId"], error, fields)
    audited = wait_until(
        lambda: _rejected_by_sequence(local_stack, set(put)), PROCESSED_SECONDS, "every malformed record's audit"
    )
    reports = _queue_reports(local_stack, set(put))
    after = snapshot(local_stack)

    for sequence, (label, _, error, fields) in put.items():
        entry, report = audited[sequence], reports[sequence]
        assert (entry["step"], entry["outcome"]) == ("reject:stream-record", f"rejected: {error}"), label
        assert {e["field"] for e in entry["details"]["errors"]} == fields, (label, entry["details"])
        assert (report["error"], report["partitionKey"]) == (error, contract), label
        assert report["reason"].startswith(f"{error}: "), label
        assert base64.b64decode(report["dataBase64"]) == next(
            (d if isinstance(d, bytes) else json.dumps(d).encode())
            for lab, d, _, _ in MALFORMED_RECORDS
            if lab == label
        )
    # Nothing else was written: the audit gained the rejections only, the stream the records put here.
    assert sorted(_key(e) for e in new_rejections(before, after)) == sorted(_key(e) for e in audited.values())
    assert [r[1] for r in after["stream"] if r not in before["stream"]] == list(put)
    untouched = {part: value for part, value in after.items() if part not in ("AuditTableName", "stream")}
    assert differences({part: before[part] for part in untouched}, untouched) == {}

    # A valid record behind them in the same shard is processed: the enrollment's own.
    enrolled = post(
        enrollment_api.url,
        {**copy.deepcopy(SEED), "contractId": contract, "contractDraft": FAR_DRAFT},
        enrollment_api.api_key,
    )
    assert enrolled.status == 201, enrolled
    status = wait_until(
        lambda: (
            (s := enrollment_status(enrollment_api, contract))
            and any(e["step"] == "eventual-workflow" for e in s["audit"])
            and {a["name"]: a["state"] for a in s["actions"]}.get("action1") == "scheduled"
            and s
        ),
        PROCESSED_SECONDS,
        f"the stream record of {contract} to start its eventual workflow",
        interval=1,
    )
    assert [e["outcome"] for e in status["audit"] if e["step"] == "eventual-workflow"] == [
        "starting: 1 hooks to schedule"
    ]
    shards = {shard for _, shard, _, _ in put.values()}
    [(shard, sequence)] = [
        (r[0], r[1])
        for r in _stream(local_stack)
        if r[2].startswith(b"{") and json.loads(r[2]).get("contractId") == contract
    ]
    assert shard in shards
    assert int(sequence) > max(int(s) for s in put)  # behind every malformed record


# ---------------------------------------------------------------- 3. malformed hook payloads

HOOK_CONTRACT = "MAL-HOOK-1"
HOOK = {
    "contractId": HOOK_CONTRACT,
    "correlationId": "mal-hook",
    "trigger": "hook",
    "action": {"name": "action1", "offset": 300},
}


def hook(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(HOOK)
    for key, value in changes.items():
        if value is None:
            del event[key]
        else:
            event[key] = value
    return event


# (label, payload, the rejection's name, the fields it names)
MALFORMED_HOOKS: list[tuple[str, Any, str, set[str]]] = [
    ("null", None, "InvalidHookPayload", {"(payload)"}),
    ("a string", "action1", "InvalidHookPayload", {"(payload)"}),
    ("a list", [HOOK], "InvalidHookPayload", {"(payload)"}),
    ("empty object", {}, "InvalidHookPayload", {"contractId", "correlationId", "action"}),
    ("missing contract id", hook(contractId=None), "InvalidHookPayload", {"contractId"}),
    ("contract id a number", hook(contractId=1), "InvalidHookPayload", {"contractId"}),
    ("contract id with a space", hook(contractId="MAL HOOK 1"), "InvalidHookPayload", {"contractId"}),
    ("missing correlation id", hook(correlationId=None), "InvalidHookPayload", {"correlationId"}),
    ("unknown trigger", hook(trigger="cron"), "InvalidHookPayload", {"trigger"}),
    ("action a string", hook(action="action1"), "InvalidHookPayload", {"action"}),
    ("action without name", hook(action={"offset": 300}), "InvalidHookPayload", {"action.name"}),
    ("action name a number", hook(action={"name": 1, "offset": 300}), "InvalidHookPayload", {"action.name"}),
    ("offset a string", hook(action={"name": "action1", "offset": "300"}), "InvalidHookPayload", {"action.offset"}),
    ("offset negative", hook(action={"name": "action1", "offset": -1}), "InvalidHookPayload", {"action.offset"}),
    ("unknown field", hook(extra=[1]), "InvalidHookPayload", {"extra"}),
    ("unknown contract", hook(contractId="MAL-HOOK-NOBODY"), "ActionNotEnrolled", {"action"}),
    ("unknown action", hook(action={"name": "teleport", "offset": 3}), "ActionNotEnrolled", {"action"}),
]


def test_malformed_hook_payloads_are_named_audited_rejections_not_function_errors(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    enrolled = post(
        enrollment_api.url,
        {**copy.deepcopy(SEED), "contractId": HOOK_CONTRACT, "contractDraft": FAR_DRAFT},
        enrollment_api.api_key,
    )
    assert enrolled.status == 201, enrolled
    wait_until(
        lambda: (
            {a["name"]: a["state"] for a in enrollment_status(enrollment_api, HOOK_CONTRACT).get("actions", [])}
            == {"action2": "fulfilled", "action1": "scheduled"}
        ),
        PROCESSED_SECONDS,
        f"the hook of {HOOK_CONTRACT} to be scheduled",
        interval=1,
    )
    lambda_client = local_stack.client("lambda")
    before = settled_snapshot(local_stack)

    answers = {}
    for label, payload, _, _ in MALFORMED_HOOKS:
        invoked = lambda_client.invoke(FunctionName="FulfillAction", Payload=json.dumps(payload).encode())
        assert (invoked["StatusCode"], invoked.get("FunctionError")) == (200, None), (label, invoked)
        answers[label] = json.loads(invoked["Payload"].read())
    after = snapshot(local_stack)

    rejections = new_rejections(before, after)
    assert len(rejections) == len(MALFORMED_HOOKS)
    audited = Counter(
        (e["step"], e["outcome"], tuple(sorted(x["field"] for x in e["details"]["errors"]))) for e in rejections
    )
    assert audited == Counter(
        ("reject:hook", f"rejected: {error}", tuple(sorted(fields))) for _, _, error, fields in MALFORMED_HOOKS
    )
    for label, _, error, _ in MALFORMED_HOOKS:
        answer = answers[label]
        assert (answer["status"], answer["error"], answer["duplicate"], answer["result"]) == (
            "rejected",
            error,
            False,
            None,
        ), (label, answer)
        assert answer["reason"].startswith(f"{error}: "), (label, answer)
    assert all(e["contractId"] == REJECTIONS for e in rejections)
    untouched = {part: value for part, value in after.items() if part != "AuditTableName"}
    assert differences({part: before[part] for part in untouched}, untouched) == {}
