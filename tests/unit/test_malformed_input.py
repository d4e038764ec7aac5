"""Bad input at each entry point: a named 4xx or a named, audited rejection; nothing else written."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given

from commonlib.errors import InvalidInputError
from commonlib.validation import parse
from enrollment import model, store
from enrollment.action_names import SUPPORTED_ACTIONS
from enrollment.eventual import handlers as eventual_handlers
from enrollment.immediate import publisher
from enrollment.store import Tables
from tests.support import malformed
from tests.support.events import kinesis_event
from tests.unit.conftest import DataLambdaClients
from tests.unit.enrollment_fixtures import seed_offer

EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"


def fields_of(body: dict[str, Any]) -> set[str]:
    try:
        parse(model.EnrollmentRequest, body)
    except InvalidInputError as invalid:
        return {error["field"] for error in invalid.errors}
    return set()


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    return value


# ---------------------------------------------------------------- the request model


@pytest.mark.parametrize(
    ("value", "storable"),
    [
        (deep(model.MAX_EXTRA_DEPTH), True),
        (deep(model.MAX_EXTRA_DEPTH + 1), False),
        (deep(2000), False),
        (float("nan"), False),
        (float("inf"), False),
        (1e200, False),  # DynamoDB numbers stop below 1e126
        (5e-324, False),  # ... and above 1e-130
        (10**38, False),  # 39 digits: more than DynamoDB's 38
        (10**37, True),
        ([1.5, -2, 0, "x", None, True, {"a": []}], True),
    ],
)
def test_free_form_data_must_be_storable(value: Any, storable: bool) -> None:
    for where in ("contractInfo", "contractDraft", "action"):
        body = seed_offer()
        target = body["contractDraft"]["List"][0] if where == "action" else body[where]
        target["extra"] = value
        path = {"action": "contractDraft.List.0", "contractInfo": "contractInfo", "contractDraft": "contractDraft"}
        assert fields_of(body) == (set() if storable else {f"{path[where]}.extra"}), (where, value)


def test_a_payment_below_one_cent_is_invalid() -> None:
    body = seed_offer(contractInfo={**seed_offer()["contractInfo"], "monthlyPayment": 1e-200})
    assert fields_of(body) == {"contractInfo.monthlyPayment"}


# ---------------------------------------------------------------- the API body


class NoStart:
    def start_sync_execution(self, **kwargs: Any) -> dict[str, Any]:
        raise AssertionError("a malformed request must not start the workflow")


@pytest.fixture
def http(http: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The API entry point (tests/unit/conftest.py) with a workflow that must never start."""
    monkeypatch.setattr(http, "_stepfunctions", NoStart)
    return http


SEED_TEXT = (EVENTS / "input.json").read_text()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (SEED_TEXT.replace('"USD"', '"USD", "pad": "' + "x" * model.MAX_REQUEST_BYTES + '"'), "larger than"),
        (SEED_TEXT.replace("125.0", "NaN"), "not valid JSON"),
        (SEED_TEXT.replace("125.0", "Infinity"), "not valid JSON"),
        ("[" * 16000 + "]" * 16000, "nested too deeply"),
    ],
)
def test_unreadable_bodies_are_400_and_start_nothing(http: Any, lambda_context: Any, raw: str, message: str) -> None:
    event = json.loads((EVENTS / "api-post-eligible.json").read_text())
    event["body"] = raw

    response = http.api_handler(event, lambda_context)

    body = json.loads(response["body"])
    assert response["statusCode"] == 400
    assert body["error"] == "InvalidEnrollmentRequest"
    assert [e["field"] for e in body["errors"]] == ["(body)"]
    assert message in body["errors"][0]["message"]
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    assert dynamodb.scan(TableName="EnrollmentIdempotency")["Items"] == []


def api_event(request: malformed.Malformed) -> dict[str, Any]:
    """The proxy event API Gateway makes of the request (a body that is not UTF-8 arrives replaced)."""
    event = json.loads((EVENTS / "api-post-eligible.json").read_text())
    headers = {"Content-Type": request.content_type, "x-api-key": "k", **request.headers}
    event["headers"] = headers
    event["multiValueHeaders"] = {name: [value] for name, value in headers.items()}
    event["body"] = request.body.decode("utf-8", errors="replace") or None
    return event


def test_generated_malformed_requests_are_400_naming_each_field(http: Any, lambda_context: Any) -> None:
    """The same generated requests the integration test sends over HTTP, here in-process (fast)."""
    assert (malformed.MAX_REQUEST_BYTES, malformed.MAX_EXTRA_DEPTH) == (model.MAX_REQUEST_BYTES, model.MAX_EXTRA_DEPTH)
    assert malformed.SUPPORTED_ACTIONS == SUPPORTED_ACTIONS
    seen: list[malformed.Malformed] = []

    @malformed.SETTINGS
    @given(malformed.malformed_requests())
    def check(request: malformed.Malformed) -> None:
        response = http.api_handler(api_event(request), lambda_context)
        body = json.loads(response["body"])
        assert (response["statusCode"], body["error"]) == (400, "InvalidEnrollmentRequest"), body
        assert {error["field"] for error in body["errors"]} == request.fields, body
        seen.append(request)

    for request in malformed.one_of_each():
        check.hypothesis.inner_test(request)
    check()
    assert malformed.distinct(seen) >= malformed.MIN_SENT
    assert {request.category for request in seen} == malformed.CATEGORIES
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    assert dynamodb.scan(TableName="EnrollmentIdempotency")["Items"] == []


# ---------------------------------------------------------------- stream records


def everything(tables: Tables) -> dict[str, Any]:
    return {name: getattr(tables, name).scan()["Items"] for name in ("offers", "ucp", "actions", "audit")}


def rejections(tables: Tables) -> list[dict[str, Any]]:
    return sorted(
        (e for e in tables.audit.scan()["Items"] if e["contractId"] == store.REJECTIONS), key=lambda e: e["entryId"]
    )


def test_rejected_stream_records_are_named_audited_and_start_nothing(
    enrollment_tables: Tables, enrolled: dict[str, Any], data_lambda_clients: DataLambdaClients, lambda_context: Any
) -> None:
    stepfunctions, sqs, queue_url = (
        data_lambda_clients.stepfunctions,
        data_lambda_clients.sqs,
        data_lambda_clients.queue_url,
    )
    good = publisher.stream_record(enrolled, "2026-01-31T12:00:01.000Z")
    unknown = {**good, "contractId": "C-NOBODY"}
    bad_due = copy.deepcopy(good)
    bad_due["eventualActions"][0]["dueAt"] = "tomorrow"
    malformed = {
        b"not json": ("MalformedStreamRecord", {"(record)"}),
        b"\xff\xfe": ("MalformedStreamRecord", {"(record)"}),
        b"[]": ("MalformedStreamRecord", {"(record)"}),
        json.dumps({k: v for k, v in good.items() if k != "contractId"}).encode(): (
            "MalformedStreamRecord",
            {"contractId"},
        ),
        json.dumps({**good, "version": 2}).encode(): ("MalformedStreamRecord", {"version"}),
        json.dumps(bad_due).encode(): ("MalformedStreamRecord", {"eventualActions.0.dueAt"}),
        json.dumps(unknown).encode(): ("UnknownContract", {"contractId"}),
    }
    before = everything(enrollment_tables)

    response = eventual_handlers.data_lambda(
        kinesis_event(*malformed, json.dumps(good).encode(), json.dumps(good).encode()), lambda_context
    )

    assert response == {"batchItemFailures": []}
    assert len(stepfunctions.starts) == 1  # the good record behind the bad ones; its duplicate starts nothing
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    reported = sorted((json.loads(m["Body"]) for m in messages), key=lambda b: b["sequenceNumber"])
    expected = list(malformed.values())
    assert [(b["error"], {e["field"] for e in b["errors"]}) for b in reported] == expected
    assert all(b["reason"].startswith(b["error"]) for b in reported)
    audited = rejections(enrollment_tables)
    assert sorted(e["details"]["sequenceNumber"] for e in audited) == [b["sequenceNumber"] for b in reported]
    assert {(e["step"], e["outcome"]) for e in audited} == {
        ("reject:stream-record", "rejected: MalformedStreamRecord"),
        ("reject:stream-record", "rejected: UnknownContract"),
    }
    unknown_entry = next(e for e in audited if e["details"]["error"] == "UnknownContract")
    assert unknown_entry["details"]["claimed"]["contractId"] == "C-NOBODY"
    # Besides the rejections, only the good record wrote: its start mark and its audit entry.
    after = everything(enrollment_tables)
    assert after["ucp"] == before["ucp"]
    assert after["actions"] == before["actions"]
    assert [o.get("eventualWorkflow") is not None for o in after["offers"]] == [True]
    new_audit = [e for e in after["audit"] if e not in before["audit"] and e["contractId"] != store.REJECTIONS]
    assert [e["step"] for e in new_audit] == ["eventual-workflow"]


# ---------------------------------------------------------------- hook payloads

HOOK = json.loads((EVENTS / "fulfill-action.json").read_text())


def hook(**changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(HOOK)
    for key, value in changes.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


HOOK_CASES: list[tuple[Any, str, set[str]]] = [
    (None, "InvalidHookPayload", {"(payload)"}),
    ("action2", "InvalidHookPayload", {"(payload)"}),
    ([HOOK], "InvalidHookPayload", {"(payload)"}),
    ({}, "InvalidHookPayload", {"contractId", "correlationId", "action"}),
    (hook(contractId=None), "InvalidHookPayload", {"contractId"}),
    (hook(contractId=7), "InvalidHookPayload", {"contractId"}),
    (hook(contractId="C 1001"), "InvalidHookPayload", {"contractId"}),
    (hook(correlationId=["x"]), "InvalidHookPayload", {"correlationId"}),
    (hook(trigger="cron"), "InvalidHookPayload", {"trigger"}),
    (hook(action="action2"), "InvalidHookPayload", {"action"}),
    (hook(action={"offset": 0}), "InvalidHookPayload", {"action.name"}),
    (hook(action={"name": "action2", "offset": "0"}), "InvalidHookPayload", {"action.offset"}),
    (hook(extra={"nested": [1]}), "InvalidHookPayload", {"extra"}),
    (hook(contractId="C-NOBODY"), "ActionNotEnrolled", {"action"}),
    (hook(action={"name": "teleport", "offset": 3}), "ActionNotEnrolled", {"action"}),
]


def test_malformed_hook_payloads_are_named_audited_rejections(
    enrollment_tables: Tables, enrolled: dict[str, Any], lambda_context: Any
) -> None:
    store.environment_tables.cache_clear()
    for event, error, fields in HOOK_CASES:
        before = everything(enrollment_tables)

        answer = eventual_handlers.fulfill_action(copy.deepcopy(event), lambda_context)

        label = json.dumps(event)[:80]
        assert (answer["status"], answer["error"], answer["duplicate"]) == ("rejected", error, False), label
        assert (answer["result"], answer["reason"].startswith(f"{error}: ")) == (None, True), label
        after = everything(enrollment_tables)
        [entry] = [e for e in after["audit"] if e not in before["audit"]]
        assert (entry["contractId"], entry["step"], entry["outcome"]) == (
            store.REJECTIONS,
            "reject:hook",
            f"rejected: {error}",
        ), label
        assert {e["field"] for e in entry["details"]["errors"]} == fields, label
        assert {**after, "audit": before["audit"]} == before, label  # nothing else written
