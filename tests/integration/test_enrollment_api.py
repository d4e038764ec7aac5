"""The immediate enrollment workflow over real HTTP against the template deployed on the emulator."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import EnrollmentApi, LocalStack
from tests.support.enrollment import audit_trail, post, scan, stream_records
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"
SEED = json.loads((EVENTS / "input.json").read_text())
RACE_TIMEOUT_SECONDS = 120
# The stage throttles locally (samconfig `local`); tests/integration/test_concurrency.py says why.
RACE_CLIENTS = 50
TABLE_OUTPUTS = ("OffersTableName", "UcpTableName", "ActionsTableName", "AuditTableName", "OrdersTableName")


def offer(contract_id: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    body["contractId"] = contract_id
    body.update(changes)
    return body


# Written in the background by earlier tests' eventual work (hooks, the stream consumer, payment
# workflows), never by a request: left out so that "nothing written" compares only what a request writes.
BACKGROUND_AUDIT_STEPS = ("action:", "hook:", "eventual-workflow", "reject:")
# What an earlier test's action, falling due while this one runs, writes on its UCP contract (rateChange).
BACKGROUND_CONTRACT_FIELDS = ("interestRate", "rateChange")


def without_background_effects(ucp_item: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in ucp_item.items() if key not in BACKGROUND_CONTRACT_FIELDS}


def ucp_contract(local_stack: LocalStack, contract_id: str, account_id: str = "A-100") -> dict[str, Any] | None:
    return item(local_stack, "UcpTableName", {"accountId": account_id, "recordId": f"contract#{contract_id}"})


def snapshot(local_stack: LocalStack) -> dict[str, Any]:
    """Everything a request can write: the tables, the stream and the payment executions."""
    dynamodb = local_stack.client("dynamodb")
    tables = {name: scan(dynamodb, local_stack.outputs[name]) for name in TABLE_OUTPUTS}
    state: dict[str, Any] = {
        "offers": {o["OfferId"]: o["status"] for o in tables["OffersTableName"]},
        "ucp": [without_background_effects(ucp_item) for ucp_item in tables["UcpTableName"]],
        "actions": sorted((a["contractId"], a["actionName"]) for a in tables["ActionsTableName"]),
        "audit": sorted(
            e["entryId"] for e in tables["AuditTableName"] if not e["step"].startswith(BACKGROUND_AUDIT_STEPS)
        ),
        "orders": sorted(o["orderId"] for o in tables["OrdersTableName"]),
    }
    state["stream"] = stream_records(local_stack.client("kinesis"), local_stack.outputs["EnrollmentStreamName"])
    executions = local_stack.client("stepfunctions").list_executions(
        stateMachineArn=local_stack.outputs["PaymentStateMachineArn"]
    )["executions"]
    state["payments"] = sorted(e["name"] for e in executions)
    return state


def contract_records(local_stack: LocalStack, contract_id: str) -> list[dict[str, Any]]:
    records = stream_records(local_stack.client("kinesis"), local_stack.outputs["EnrollmentStreamName"])
    return [record for record in records if record["contractId"] == contract_id]


def item(local_stack: LocalStack, table_output: str, key: dict[str, str]) -> dict[str, Any] | None:
    found = [
        i for i in scan(local_stack.client("dynamodb"), local_stack.outputs[table_output]) if key.items() <= i.items()
    ]
    return found[0] if found else None


def test_eligible_offer_is_enrolled_end_to_end(local_stack: LocalStack, enrollment_api: EnrollmentApi) -> None:
    answer = post(enrollment_api.url, offer("IT-ELIGIBLE-1"), enrollment_api.api_key, {"X-Correlation-Id": "corr-it-1"})

    assert answer.status == 201, answer
    body = answer.body
    assert (body["status"], body["contractId"], body["correlationId"]) == ("enrolled", "IT-ELIGIBLE-1", "corr-it-1")
    assert body["sameDayActions"] == [
        {"name": "action2", "status": "fulfilled", "result": {"effect": "mock action2 performed"}, "reason": None}
    ]
    assert [(a["name"], a["offset"]) for a in body["eventualActions"]] == [
        ("action100", 1),
        ("action1", 3),
        ("rateChange", 16),
    ]
    assert all(a["dueAt"] > body["enrollmentDate"] for a in body["eventualActions"])

    assert item(local_stack, "OffersTableName", {"OfferId": "IT-ELIGIBLE-1"})["status"] == "enrolled"
    contract = ucp_contract(local_stack, "IT-ELIGIBLE-1")
    assert contract["status"] == "enrolled"
    assert len(contract["payments"]) == 12
    actions = [
        a
        for a in scan(local_stack.client("dynamodb"), local_stack.outputs["ActionsTableName"])
        if a["contractId"] == "IT-ELIGIBLE-1"
    ]
    states = {a["actionName"]: a["state"] for a in actions}
    assert states.pop("action2") == "fulfilled"
    # The eventual workflow runs in the background: an eventual action has no item until its hook is
    # scheduled, so by now each one is absent, scheduled or fired.
    assert set(states) <= {"action1", "action100", "rateChange"}
    assert set(states.values()) <= {"scheduled", "fulfilled"}, states
    records = contract_records(local_stack, "IT-ELIGIBLE-1")
    assert len(records) == 1
    assert [a["name"] for a in records[0]["eventualActions"]] == ["action100", "action1", "rateChange"]
    assert records[0]["correlationId"] == "corr-it-1"
    # The publication is audited by the eventual run that consumes it, a moment after the answer.
    trail = wait_until(
        lambda: (t := audit_trail(local_stack, "IT-ELIGIBLE-1")) and "publish=published 3 eventual actions" in t and t,
        60,
        "the stream consumer to audit the publication",
    )
    for expected in (
        "receive-offer=received",
        "verify-customer=verified",
        "rules-lab=eligible",
        "enroll=enrolled: UCP updated, payments set",
        "action:action2=fulfilled (same-day)",
    ):
        assert expected in trail
    stepfunctions = local_stack.client("stepfunctions")
    payment_arn = f"{local_stack.outputs['PaymentStateMachineArn'].replace(':stateMachine:', ':execution:')}:IT-ELIGIBLE-1-payment-1"
    payment = wait_until(
        lambda: (e := stepfunctions.describe_execution(executionArn=payment_arn))["status"] != "RUNNING" and e,
        60,
        "the first payment's workflow to finish",
    )
    assert payment["status"] == "SUCCEEDED"
    assert item(local_stack, "OrdersTableName", {"orderId": "IT-ELIGIBLE-1-payment-1"})["status"] == "paid"


def test_ineligible_offer_is_a_normal_answer_with_reasons(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    answer = post(enrollment_api.url, offer("IT-INELIGIBLE-1", accountId="A-200"), enrollment_api.api_key)

    assert answer.status == 200
    assert answer.body["status"] == "ineligible"
    # A sensitive rule answers the neutral reason; the full one is in the audit trail only.
    assert answer.body["reasons"] == [
        {"code": "NotEligibleThroughThisChannel", "message": "not eligible through this channel"}
    ]
    assert answer.body["rulesVersion"] == "2026-11-01.1"
    assert item(local_stack, "OffersTableName", {"OfferId": "IT-INELIGIBLE-1"})["status"] == "ineligible"
    assert "rules-lab=ineligible: the account is flagged for bankruptcy" in audit_trail(local_stack, "IT-INELIGIBLE-1")
    assert contract_records(local_stack, "IT-INELIGIBLE-1") == []
    assert ucp_contract(local_stack, "IT-INELIGIBLE-1", "A-200") is None


@pytest.mark.parametrize(("account_id", "reason"), [("A-999", "AccountNotFound"), ("A-300", "AccountInactive")])
def test_unknown_or_inactive_account_is_rejected_and_audited(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, account_id: str, reason: str
) -> None:
    contract_id = f"IT-{reason}"
    answer = post(enrollment_api.url, offer(contract_id, accountId=account_id), enrollment_api.api_key)

    assert answer.status == 422
    assert (answer.body["status"], answer.body["reason"]) == ("not_verified", reason)
    assert f"verify-customer=rejected: {reason}" in audit_trail(local_stack, contract_id)
    assert contract_records(local_stack, contract_id) == []


def test_missing_or_wrong_api_key_is_rejected_and_writes_nothing(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    before = snapshot(local_stack)
    assert post(enrollment_api.url, offer("IT-NOKEY-1"), None).status == 403
    assert post(enrollment_api.url, offer("IT-NOKEY-2"), "not-the-key").status == 403
    assert snapshot(local_stack) == before


MALFORMED_BODIES: list[tuple[str, Any, set[str]]] = [
    ("not json", b"{not json", {"(body)"}),
    ("empty body", b"", {"(body)"}),
    ("array", [SEED], {"(body)"}),
    ("string", "C-1", {"(body)"}),
    ("null", None, {"(body)"}),
    ("empty object", {}, {"contractId", "accountId", "contractInfo", "contractDraft"}),
    ("contractId empty", offer(""), {"contractId"}),
    ("contractId number", offer(7), {"contractId"}),
    ("contractId with space", offer("C 1"), {"contractId"}),
    ("contractId too long", offer("C" * 41), {"contractId"}),
    ("accountId missing", {k: v for k, v in SEED.items() if k != "accountId"}, {"accountId"}),
    ("contractInfo not object", offer("IT-BAD", contractInfo=[1]), {"contractInfo"}),
    (
        "payment negative",
        offer("IT-BAD", contractInfo={**SEED["contractInfo"], "monthlyPayment": -5}),
        {"contractInfo.monthlyPayment"},
    ),
    (
        "payment string",
        offer("IT-BAD", contractInfo={**SEED["contractInfo"], "monthlyPayment": "125"}),
        {"contractInfo.monthlyPayment"},
    ),
    ("term zero", offer("IT-BAD", contractInfo={**SEED["contractInfo"], "termMonths": 0}), {"contractInfo.termMonths"}),
    (
        "currency lowercase",
        offer("IT-BAD", contractInfo={**SEED["contractInfo"], "currency": "usd"}),
        {"contractInfo.currency"},
    ),
    ("draft without List", offer("IT-BAD", contractDraft={"list": []}), {"contractDraft.List"}),
    ("empty List", offer("IT-BAD", contractDraft={"List": []}), {"contractDraft.List"}),
    (
        "negative offset",
        offer("IT-BAD", contractDraft={"List": [{"name": "action1", "offset": -1}]}),
        {"contractDraft.List.0.offset"},
    ),
    (
        "fractional offset",
        offer("IT-BAD", contractDraft={"List": [{"name": "action1", "offset": 0.5}]}),
        {"contractDraft.List.0.offset"},
    ),
    (
        "string offset",
        offer("IT-BAD", contractDraft={"List": [{"name": "action1", "offset": "1"}]}),
        {"contractDraft.List.0.offset"},
    ),
    (
        "offset too large",
        offer("IT-BAD", contractDraft={"List": [{"name": "action1", "offset": 100000}]}),
        {"contractDraft.List.0.offset"},
    ),
    ("action without name", offer("IT-BAD", contractDraft={"List": [{"offset": 1}]}), {"contractDraft.List.0.name"}),
    (
        "duplicate names",
        offer("IT-BAD", contractDraft={"List": [{"name": "action1", "offset": 0}, {"name": "action1", "offset": 2}]}),
        {"contractDraft.List"},
    ),
    (
        "too many actions",
        offer("IT-BAD", contractDraft={"List": [{"name": f"a{i}", "offset": i} for i in range(21)]}),
        {"contractDraft.List"},
    ),
    ("unknown top-level field", offer("IT-BAD", contracts=[1]), {"contracts"}),
]


def test_malformed_bodies_are_400_naming_each_field_and_write_nothing(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    assert len(MALFORMED_BODIES) >= 20
    before = snapshot(local_stack)
    for label, body, fields in MALFORMED_BODIES:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = post(enrollment_api.url, raw, enrollment_api.api_key)
        assert answer.status == 400, (label, answer)
        assert answer.body["error"] == "InvalidEnrollmentRequest", label
        assert {error["field"] for error in answer.body["errors"]} == fields, (label, answer.body)
        assert "Traceback" not in json.dumps(answer.body)
    assert snapshot(local_stack) == before


@pytest.mark.load
def test_concurrent_requests_for_one_contract_enroll_exactly_once(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    # Eventual actions far in the future: no hook fires while the race runs.
    far_draft = {"List": [{"name": "action2", "offset": 0}, {"name": "action1", "offset": 300}]}
    body = offer("IT-RACE-1", contractDraft=far_draft)
    # All at once: the ones over EnrollmentApi's local concurrency (scripts/stack.py) are answered 429 and
    # sent again (tests/support/enrollment.post), so the guard sees them in overlapping waves.
    with ThreadPoolExecutor(max_workers=RACE_CLIENTS) as pool:
        answers = list(
            pool.map(
                lambda _: post(enrollment_api.url, body, enrollment_api.api_key, timeout=RACE_TIMEOUT_SECONDS),
                range(RACE_CLIENTS),
            )
        )

    print(f"{sum(a.throttled for a in answers)} answers of 429 retried")
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [201] + [409] * (RACE_CLIENTS - 1), statuses
    assert {a.body["error"] for a in answers if a.status == 409} <= {"ContractInProgress", "ContractAlreadyEnrolled"}
    assert len(contract_records(local_stack, "IT-RACE-1")) == 1
    executions = local_stack.client("stepfunctions").list_executions(
        stateMachineArn=local_stack.outputs["PaymentStateMachineArn"]
    )
    assert [e["name"] for e in executions["executions"]].count("IT-RACE-1-payment-1") == 1
    enrollments = [e for e in audit_trail(local_stack, "IT-RACE-1") if e.startswith("enroll=")]
    assert len(enrollments) == 1
    rejections = [e for e in audit_trail(local_stack, "IT-RACE-1") if e.startswith("receive-offer=rejected")]
    assert len(rejections) == RACE_CLIENTS - 1
    # One UCP change and one set of hooks.
    assert ucp_contract(local_stack, "IT-RACE-1")["status"] == "enrolled"
    scheduler = local_stack.client("scheduler")
    group = local_stack.outputs["HookScheduleGroupName"]
    hooks = wait_until(
        lambda: [
            s["Name"]
            for page in scheduler.get_paginator("list_schedules").paginate(GroupName=group)
            for s in page["Schedules"]
            if s["Name"].startswith("IT-RACE-1.")  # hooks.schedule_name
        ],
        60,
        "the hook of IT-RACE-1",
    )
    assert len(hooks) == 1, hooks


def test_same_idempotency_key_gets_the_original_answer(local_stack: LocalStack, enrollment_api: EnrollmentApi) -> None:
    body = offer("IT-IDEMPOTENT-1")
    headers = {"Idempotency-Key": "it-key-1"}

    first = post(enrollment_api.url, body, enrollment_api.api_key, headers)
    retry = post(enrollment_api.url, body, enrollment_api.api_key, headers)
    without_key = post(enrollment_api.url, body, enrollment_api.api_key)

    assert first.status == 201
    assert retry == first
    assert without_key.status == 409
    assert len(contract_records(local_stack, "IT-IDEMPOTENT-1")) == 1


def test_seed_direct_start_execution_enrolls_like_the_api(local_stack: LocalStack) -> None:
    """The seed's step 8: start the EXPRESS state machine directly with events/enrollment/input.json."""
    stepfunctions = local_stack.client("stepfunctions")
    stepfunctions.start_execution(
        stateMachineArn=local_stack.outputs["EnrollmentStateMachineArn"], input=(EVENTS / "input.json").read_text()
    )
    enrolled = wait_until(
        lambda: (o := item(local_stack, "OffersTableName", {"OfferId": "C-1001"})) and o["status"] == "enrolled" and o,
        60,
        "contract C-1001 to be enrolled",
    )
    assert enrolled["status"] == "enrolled"
    assert wait_until(lambda: len(contract_records(local_stack, "C-1001")) == 1, 30, "the stream record of C-1001")

    # The guard holds for direct starts as well: a second start is refused and changes nothing.
    second = stepfunctions.start_sync_execution(
        stateMachineArn=local_stack.outputs["EnrollmentStateMachineArn"], input=(EVENTS / "input.json").read_text()
    )
    assert (second["status"], second["error"]) == ("FAILED", "ContractAlreadyEnrolled")
    invalid = stepfunctions.start_sync_execution(
        stateMachineArn=local_stack.outputs["EnrollmentStateMachineArn"], input=json.dumps({"contractId": ""})
    )
    assert (invalid["status"], invalid["error"]) == ("FAILED", "InvalidEnrollmentRequest")
    assert {e["field"] for e in json.loads(invalid["cause"])} == {
        "contractId",
        "accountId",
        "contractInfo",
        "contractDraft",
    }
    assert len(contract_records(local_stack, "C-1001")) == 1


def test_publish_failure_reverts_to_a_consistent_audited_state_and_a_retry_succeeds(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    lambda_client = local_stack.client("lambda")
    function_name = "PublishEnrollment"
    variables = lambda_client.get_function_configuration(FunctionName=function_name)["Environment"]["Variables"]
    # A real dependency failure: the publisher is pointed at a stream that does not exist, which its
    # role does not cover either, so (as on AWS) the call is refused before the stream is looked up.
    lambda_client.update_function_configuration(
        FunctionName=function_name, Environment={"Variables": {**variables, "ENROLLMENT_STREAM_NAME": "NoSuchStream"}}
    )
    try:
        failed = post(
            enrollment_api.url, offer("IT-FAULT-1"), enrollment_api.api_key, {"X-Correlation-Id": "corr-fault"}
        )
    finally:
        lambda_client.update_function_configuration(FunctionName=function_name, Environment={"Variables": variables})

    assert failed.status == 500
    assert failed.body == {
        "error": "EnrollmentFailed",
        "message": "the enrollment could not be completed; it is safe to retry",
        "correlationId": "corr-fault",
    }
    stored = item(local_stack, "OffersTableName", {"OfferId": "IT-FAULT-1"})
    assert stored["status"] == "failed"
    assert "AccessDenied" in stored["failureReason"]
    assert ucp_contract(local_stack, "IT-FAULT-1") is None
    actions = [
        a
        for a in scan(local_stack.client("dynamodb"), local_stack.outputs["ActionsTableName"])
        if a["contractId"] == "IT-FAULT-1"
    ]
    assert {a["state"] for a in actions} == {"cancelled"}
    assert contract_records(local_stack, "IT-FAULT-1") == []
    assert "IT-FAULT-1-payment-1" not in snapshot(local_stack)["payments"]
    assert any(entry.startswith("revert=failed: ") for entry in audit_trail(local_stack, "IT-FAULT-1"))

    retried = post(enrollment_api.url, offer("IT-FAULT-1"), enrollment_api.api_key)

    assert retried.status == 201, retried
    assert len(contract_records(local_stack, "IT-FAULT-1")) == 1
    assert ucp_contract(local_stack, "IT-FAULT-1")["status"] == "enrolled"
