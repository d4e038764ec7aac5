"""Each contract is its client's, idempotency keys are scoped to the client and keep final
answers only, and no answer, INFO log line or trace names an account's flags."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import boto3
import pytest

from enrollment import store
from enrollment.api import clients, enroll_answer, enroll_handler, manage_handler
from enrollment.eventual import manage
from enrollment.immediate import handlers as immediate_handlers
from enrollment.immediate import offers, rules
from enrollment.store import Tables
from tests.support.template import template
from tests.unit.enrollment_fixtures import EXECUTION, OTHER_EXECUTION, STARTED, FixedClock, seed_offer
from tests.unit.test_enrollment_api import FakeStepFunctions, failed, succeeded, use

EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"
KEY_A, KEY_B = "key-of-client-a", "key-of-client-b"
CLIENT_A = "key:" + hashlib.sha256(KEY_A.encode()).hexdigest()[:32]
CLIENT_B = "key:" + hashlib.sha256(KEY_B.encode()).hexdigest()[:32]
USER_ARN = "arn:aws:iam::000000000000:user/client-a"
SENSITIVE_WORDS = ("bankruptcy", "dispute", "flag")


# ---------------------------------------------------------------- the client id


def test_api_key_mode_client_is_a_hash_of_the_verified_key() -> None:
    event = {"headers": {"X-Api-Key": KEY_A}, "requestContext": {"identity": {"sourceIp": "1.2.3.4"}}}
    assert clients.client_id(event) == CLIENT_A
    assert KEY_A not in clients.client_id(event)
    assert clients.client_id({"headers": {"x-api-key": KEY_B}}) == CLIENT_B


def test_iam_mode_client_is_the_principal_and_wins_over_an_unverified_key_header() -> None:
    identity = {"accessKey": "AKIA1", "user": "AIDA1", "userArn": USER_ARN}
    event = {"headers": {"x-api-key": KEY_A}, "requestContext": {"identity": identity}}
    assert clients.client_id(event) == f"iam:{USER_ARN}"


def iam_client(user_arn: str) -> str | None:
    return clients.client_id({"requestContext": {"identity": {"userArn": user_arn}}})


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_an_iam_user_is_its_arn_in_every_partition(partition: str) -> None:
    user = f"arn:{partition}:iam::000000000000:user/team/client-a"
    assert iam_client(user) == f"iam:{user}"
    assert iam_client(f"arn:{partition}:iam::000000000000:user/client-b") != iam_client(user)


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_every_session_of_one_role_is_one_client_and_two_roles_are_two(partition: str) -> None:
    role = f"arn:{partition}:sts::000000000000:assumed-role/enrollment-caller"
    first, second = iam_client(f"{role}/session-1"), iam_client(f"{role}/botocore-session-1767225600")
    assert first == second == f"iam:{role}"
    other_role = iam_client(f"arn:{partition}:sts::000000000000:assumed-role/another-caller/session-1")
    other_account = iam_client(f"arn:{partition}:sts::111111111111:assumed-role/enrollment-caller/session-1")
    assert len({first, other_role, other_account}) == 3


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sts::000000000000:federated-user/client-a",
        "arn:aws:iam::000000000000:role/enrollment-caller",
        "arn:aws:iam::000000000000:root",
    ],
)
def test_other_principals_are_their_arn(arn: str) -> None:
    assert iam_client(arn) == f"iam:{arn}"


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"headers": None, "requestContext": None},
        {"headers": {"x-api-key": ""}, "requestContext": {"identity": {"userArn": None, "sourceIp": "1.2.3.4"}}},
        {"headers": {"Authorization": "AWS4-HMAC-SHA256 ..."}, "requestContext": {"identity": {"userArn": ""}}},
    ],
)
def test_no_identity_is_no_client(event: dict[str, Any]) -> None:
    assert clients.client_id(event) is None


# ---------------------------------------------------------------- POST /enrollments


def post_event(api_key: str | None, idempotency_key: str | None = "k-1", **body_changes: Any) -> dict[str, Any]:
    event = json.loads((EVENTS / "api-post-eligible.json").read_text())
    headers = {k: v for k, v in event["headers"].items() if k.lower() not in ("x-api-key", "idempotency-key")}
    if api_key:
        headers["x-api-key"] = api_key
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    event["headers"] = headers
    event["body"] = json.dumps(json.loads(event["body"]) | body_changes)
    return event


def send(http: Any, event: dict[str, Any], lambda_context: Any) -> tuple[int, dict[str, Any]]:
    response = http.api_handler(event, lambda_context)
    return response["statusCode"], json.loads(response["body"])


def test_post_without_an_identified_client_is_403_and_starts_nothing(
    http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    fake = FakeStepFunctions()
    use(monkeypatch, fake)
    status, body = send(http, post_event(None), lambda_context)
    assert (status, body["error"]) == (403, "Forbidden")
    assert fake.inputs == []


def test_the_execution_input_carries_the_owner(http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    fake = FakeStepFunctions(succeeded({"status": "enrolled"}))
    use(monkeypatch, fake)
    assert send(http, post_event(KEY_A), lambda_context)[0] == 201
    assert fake.inputs[0]["ownerId"] == CLIENT_A


def test_a_body_cannot_name_its_owner(http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    fake = FakeStepFunctions()
    use(monkeypatch, fake)
    status, body = send(http, post_event(KEY_A, ownerId=CLIENT_B), lambda_context)
    assert (status, [e["field"] for e in body["errors"]]) == (400, ["ownerId"])
    assert fake.inputs == []


def test_the_same_idempotency_key_of_two_clients_is_two_requests(
    http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any
) -> None:
    fake = FakeStepFunctions(succeeded({"status": "enrolled", "by": "a"}), succeeded({"status": "enrolled", "by": "b"}))
    use(monkeypatch, fake)

    first = send(http, post_event(KEY_A, "shared"), lambda_context)
    # Another body under the same key: for client B it is its own first request, not a 422 or a replay.
    other = send(http, post_event(KEY_B, "shared", contractId="C-OTHER"), lambda_context)
    replay = send(http, post_event(KEY_A, "shared"), lambda_context)

    assert (first[0], first[1]["by"]) == (201, "a")
    assert (other[0], other[1]["by"]) == (201, "b")
    assert replay == first
    assert [i["ownerId"] for i in fake.inputs] == [CLIENT_A, CLIENT_B]


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (failed("ContractInProgress", "contract C-2001 is being processed"), 409),
        (failed("ContractUnavailable", "this contract id cannot be used"), 409),
    ],
)
def test_a_conflict_that_may_change_is_not_replayed(
    http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any, answer: dict[str, Any], status: int
) -> None:
    fake = FakeStepFunctions(answer, succeeded({"status": "enrolled"}))
    use(monkeypatch, fake)

    first = send(http, post_event(KEY_A), lambda_context)
    second = send(http, post_event(KEY_A), lambda_context)

    assert (first[0], first[1]["error"]) == (status, answer["error"])
    assert second[0] == 201  # the run finished: the same key runs again instead of replaying the 409
    assert len(fake.inputs) == 2


def test_a_final_conflict_is_replayed(http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    fake = FakeStepFunctions(failed("ContractAlreadyEnrolled", "contract C-2001 is already enrolled"))
    use(monkeypatch, fake)
    first = send(http, post_event(KEY_A), lambda_context)
    assert send(http, post_event(KEY_A), lambda_context) == first
    assert len(fake.inputs) == 1


def test_a_5xx_is_not_replayed(http: Any, monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> None:
    fake = FakeStepFunctions(failed("EnrollmentFailed", "boom"), succeeded({"status": "enrolled"}))
    use(monkeypatch, fake)
    assert send(http, post_event(KEY_A), lambda_context)[0] == 500
    assert send(http, post_event(KEY_A), lambda_context)[0] == 201


@pytest.mark.parametrize(
    ("status", "error", "final"),
    [
        (201, None, True),
        (200, None, True),
        (400, "InvalidEnrollmentRequest", True),
        (409, "ContractAlreadyEnrolled", True),
        (409, "ContractCancelled", True),
        (409, "ContractInProgress", False),
        (409, "ContractUnavailable", False),
        (429, "Throttled", False),
        (500, "EnrollmentFailed", False),
        (503, "Unavailable", False),
    ],
)
def test_only_final_answers_are_kept(status: int, error: str | None, final: bool) -> None:
    assert enroll_answer.is_final({"statusCode": status, "body": {"error": error} if error else {}}) is final


def test_a_not_final_answer_is_raised_so_powertools_drops_its_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENROLLMENT_STATE_MACHINE_ARN", "arn")
    monkeypatch.setattr(enroll_handler, "_stepfunctions", lambda: FakeStepFunctions(failed("ContractInProgress", "c")))
    with pytest.raises(enroll_answer.NotFinalAnswer) as raised:
        enroll_handler._start({"offer": {}})
    assert raised.value.answer["statusCode"] == 409


# ---------------------------------------------------------------- no disclosure in the answers


def test_every_rule_has_a_public_code_and_message_and_the_flag_rules_are_sensitive() -> None:
    document = rules.load_rules()
    for rule in document["rules"]:
        assert rule.get("code"), rule["id"]
        assert rule.get("message"), rule["id"]
    flag_rules = {rule["id"] for rule in document["rules"] if rule["field"].startswith("account.")}
    assert flag_rules == {"no-bankruptcy-flag", "no-open-dispute"}
    for rule in document["rules"]:
        assert rule.get("sensitive", False) is (rule["id"] in flag_rules), rule["id"]
        public = rules.public_reason(rule)
        if rule["id"] in flag_rules:
            assert public == rules.NEUTRAL_REASON
        assert not any(word in json.dumps(public).lower() for word in SENSITIVE_WORDS), rule["id"]


def test_public_reasons_collapse_sensitive_and_unknown_rules_into_one_neutral_reason() -> None:
    document = rules.load_rules()
    failed_rules = ["no-bankruptcy-flag", "no-open-dispute", "not-a-rule"]
    assert rules.public_reasons(failed_rules, document) == [rules.NEUTRAL_REASON]
    full = [rule["reason"] for rule in document["rules"] if rule["id"] in failed_rules]
    assert rules.public_reasons_for(full, document) == [rules.NEUTRAL_REASON]


def test_a_public_reason_hides_whether_a_sensitive_rule_failed_too() -> None:
    """Otherwise an offer that fails a public rule (too long a term) would probe any account's flags:
    the same answer whether or not the account is flagged, and nothing enrolled either way."""
    document = rules.load_rules()
    term_too_long = [{"code": "TermTooLong", "message": "term is longer than 60 months"}]
    for failed_rules in (["maximum-term"], ["no-bankruptcy-flag", "maximum-term", "no-open-dispute", "not-a-rule"]):
        assert rules.public_reasons(failed_rules, document) == term_too_long
        full = [rule["reason"] for rule in document["rules"] if rule["id"] in failed_rules]
        assert rules.public_reasons_for(full, document) == term_too_long


def test_the_ineligible_answer_names_public_codes_only() -> None:
    output = {
        "status": "ineligible",
        "eligible": False,
        "reasons": ["the account is flagged for bankruptcy", "the account has an open dispute"],
        "failedRules": ["no-bankruptcy-flag", "no-open-dispute"],
        "rulesVersion": "2026-11-01.1",
    }
    answer = enroll_answer.start_enrollment(FakeStepFunctions(succeeded(output)), "arn", {"contractId": "C"})
    assert answer["statusCode"] == 200
    assert answer["body"]["reasons"] == [
        {"code": "NotEligibleThroughThisChannel", "message": "not eligible through this channel"}
    ]
    assert "failedRules" not in answer["body"]
    assert not any(word in json.dumps(answer).lower() for word in SENSITIVE_WORDS)


def test_the_enrolled_answer_leaves_out_the_actions_free_form_data() -> None:
    output = {
        "status": "enrolled",
        "eventualActions": [{"name": "rateChange", "offset": 16, "dueAt": "x", "data": {"otherData": {"secret": 1}}}],
    }
    answer = enroll_answer.start_enrollment(FakeStepFunctions(succeeded(output)), "arn", {"contractId": "C"})
    assert answer["body"]["eventualActions"] == [{"name": "rateChange", "offset": 16, "dueAt": "x"}]


def test_the_enrolled_answer_leaves_out_the_first_payments_execution_arn() -> None:
    arn = "arn:aws:states:eu-west-1:123456789012:execution:mock-payment-workflow:C-payment-1"
    output = {"status": "enrolled", "firstPayment": {"status": "started", "executionArn": arn}}
    answer = enroll_answer.start_enrollment(FakeStepFunctions(succeeded(output)), "arn", {"contractId": "C"})
    assert answer["body"]["firstPayment"] == {"status": "started"}
    assert "123456789012" not in json.dumps(answer)


# ---------------------------------------------------------------- ownership of the offer


def acquire(tables: Tables, owner: str | None, execution: str = EXECUTION, **changes: Any) -> dict[str, Any]:
    request = seed_offer(**changes) | ({"ownerId": owner} if owner is not None else {})
    return offers.acquire(tables, request, execution, STARTED, clock=FixedClock())


def test_the_offer_belongs_to_the_client_that_sent_it(enrollment_tables: Tables) -> None:
    assert acquire(enrollment_tables, CLIENT_A)["outcome"] == "accepted"
    item = enrollment_tables.offers.get_item(Key={"OfferId": "C-1001"})["Item"]
    assert item["ownerId"] == CLIENT_A
    assert "ownerId" not in item["offer"]


def test_another_client_gets_the_neutral_conflict_and_the_owner_the_specific_one(enrollment_tables: Tables) -> None:
    acquire(enrollment_tables, CLIENT_A)
    other = acquire(enrollment_tables, CLIENT_B, OTHER_EXECUTION)
    own = acquire(enrollment_tables, CLIENT_A, OTHER_EXECUTION)
    unowned = acquire(enrollment_tables, None, OTHER_EXECUTION)

    assert other["rejection"] == {"error": "ContractUnavailable", "cause": "this contract id cannot be used"}
    assert own["rejection"]["error"] == "ContractInProgress"
    assert unowned["rejection"] == other["rejection"]
    # The owner's trail holds its own conflict only; the other clients' attempts are audited apart.
    trail = [entry["outcome"] for entry in store.audit_trail(enrollment_tables, "C-1001")]
    assert trail == ["rejected: ContractInProgress"]
    apart = [e for e in store.audit_trail(enrollment_tables, store.REJECTIONS) if e["step"] == "reject:offer"]
    assert len(apart) == 2


def test_another_client_never_takes_over_a_finished_offer(enrollment_tables: Tables) -> None:
    acquire(enrollment_tables, CLIENT_A)
    offers.record_outcome(
        enrollment_tables, {"contractId": "C-1001", "correlationId": "c"}, EXECUTION, "ineligible", "rules-lab"
    )

    taken = acquire(enrollment_tables, CLIENT_B, OTHER_EXECUTION)
    assert (taken["outcome"], taken["rejection"]["error"]) == ("conflict", "ContractUnavailable")
    assert enrollment_tables.offers.get_item(Key={"OfferId": "C-1001"})["Item"]["ownerId"] == CLIENT_A
    # Its owner may send it again.
    assert acquire(enrollment_tables, CLIENT_A, OTHER_EXECUTION)["outcome"] == "accepted"


def test_an_offer_written_before_owners_is_no_clients(enrollment_tables: Tables) -> None:
    acquire(enrollment_tables, None)  # as a direct start, or an offer written before this change
    assert acquire(enrollment_tables, CLIENT_A, OTHER_EXECUTION)["rejection"]["error"] == "ContractUnavailable"
    assert manage.enrollment_status(enrollment_tables, "C-1001", owner_id=CLIENT_A) is None
    assert manage.enrollment_status(enrollment_tables, "C-1001") is not None  # a system caller sees it


@pytest.mark.parametrize("owner", ["", 7, {"id": "x"}])
def test_a_malformed_owner_is_an_invalid_request(enrollment_tables: Tables, owner: Any) -> None:
    result = acquire(enrollment_tables, owner)
    assert (result["outcome"], json.loads(result["rejection"]["cause"])[0]["field"]) == ("invalid", "ownerId")


def enroll(tables: Tables, owner: str | None) -> dict[str, Any]:
    offer = acquire(tables, owner)["offer"]
    verified = offers.verify_customer(tables, offer, EXECUTION)
    facts = rules.facts(offer["contractInfo"], offer["contractDraft"], verified["account"])
    offers.commit_enrollment(tables, offer, EXECUTION, rules.evaluate(facts, rules.load_rules()))
    return offer


def test_only_the_owner_reads_or_cancels(enrollment_tables: Tables) -> None:
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    scheduler.create_schedule_group(Name="hooks")
    enroll(enrollment_tables, CLIENT_A)

    assert manage.enrollment_status(enrollment_tables, "C-1001", owner_id=CLIENT_B) is None
    assert manage.cancel_enrollment(enrollment_tables, scheduler, "hooks", "C-1001", owner_id=CLIENT_B) == {
        "outcome": "not_found"
    }
    assert enrollment_tables.offers.get_item(Key={"OfferId": "C-1001"})["Item"]["status"] == "enrolled"
    assert manage.enrollment_status(enrollment_tables, "C-1001", owner_id=CLIENT_A)["status"] == "enrolled"
    cancelled = manage.cancel_enrollment(enrollment_tables, scheduler, "hooks", "C-1001", owner_id=CLIENT_A)
    assert cancelled["outcome"] == "cancelled"


def manage_event(method: str, contract_id: str, api_key: str | None) -> dict[str, Any]:
    return {
        "resource": "/enrollments/{contractId}",
        "path": f"/enrollments/{contract_id}",
        "httpMethod": method,
        "headers": {"x-api-key": api_key} if api_key else {},
        "multiValueHeaders": {"x-api-key": [api_key]} if api_key else {},
        "pathParameters": {"contractId": contract_id},
        "queryStringParameters": None,
        "requestContext": {
            "resourcePath": "/enrollments/{contractId}",
            "httpMethod": method,
            "requestId": "req-manage",
            "stage": "v1",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


@pytest.fixture
def manage_http(enrollment_tables: Tables, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SCHEDULE_GROUP_NAME", "hooks")
    store.environment_tables.cache_clear()
    boto3.client("scheduler", region_name="us-east-1").create_schedule_group(Name="hooks")
    from commonlib import aws as aws_clients

    aws_clients.client.cache_clear()
    return manage_handler


def call_manage(module: Any, method: str, contract_id: str, api_key: str | None, context: Any) -> tuple[int, Any]:
    response = module.handler(manage_event(method, contract_id, api_key), context)
    return response["statusCode"], json.loads(response["body"])


def test_another_clients_contract_is_answered_like_an_unknown_one(
    manage_http: Any, enrollment_tables: Tables, lambda_context: Any
) -> None:
    enroll(enrollment_tables, CLIENT_A)
    unknown = call_manage(manage_http, "GET", "C-404", KEY_B, lambda_context)

    for method in ("GET", "DELETE"):
        status, body = call_manage(manage_http, method, "C-1001", KEY_B, lambda_context)
        assert (status, body) == (404, {"error": "EnrollmentNotFound", "message": "no offer for contract C-1001"})
        assert unknown == (404, {"error": "EnrollmentNotFound", "message": "no offer for contract C-404"})
    assert call_manage(manage_http, "GET", "C-1001", None, lambda_context)[0] == 403
    assert call_manage(manage_http, "GET", "C-1001", KEY_A, lambda_context)[1]["status"] == "enrolled"
    assert call_manage(manage_http, "DELETE", "C-1001", KEY_A, lambda_context)[1]["status"] == "cancelled"


# ---------------------------------------------------------------- a flagged account, end to end in the handlers


def test_a_flagged_account_is_never_named_in_the_status_or_an_info_log(
    enrollment_tables: Tables, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    offer = acquire(enrollment_tables, CLIENT_A, accountId="A-200")["offer"]
    verified = offers.verify_customer(enrollment_tables, offer, EXECUTION)
    assert "bankruptcy" in verified["account"]["flags"]  # internal state: the rules lab needs it
    decision = immediate_handlers.rules_lab({"offer": offer, "account": verified["account"]}, lambda_context)
    assert decision["reasons"] == ["the account is flagged for bankruptcy"]  # kept for the audit
    immediate_handlers.record_outcome(
        {
            "offer": offer,
            "executionId": EXECUTION,
            "status": "ineligible",
            "step": "rules-lab",
            "reason": decision["reasons"],
            "rulesVersion": decision["rulesVersion"],
        },
        lambda_context,
    )

    # Each INFO record with every attribute it carries (Powertools puts `extra` on the record).
    info_logs = [str(vars(record)) for record in caplog.records if record.levelno >= logging.INFO]
    assert any("eligibility decided" in line for line in info_logs)
    assert not any("bankruptcy" in line for line in info_logs)
    status = manage.enrollment_status(enrollment_tables, "C-1001", owner_id=CLIENT_A)
    assert status["reason"] == "not eligible through this channel"
    assert not any(word in json.dumps(status).lower() for word in SENSITIVE_WORDS)
    # The audit trail keeps the full reason.
    items = enrollment_tables.audit.scan()["Items"]
    assert any(item["outcome"] == "ineligible: the account is flagged for bankruptcy" for item in items)


def test_a_failure_cause_is_not_shown_in_the_status() -> None:
    entry = {"step": "failure", "outcome": "failed: States.Runtime: the input {'flags': ['bankruptcy']}"}
    assert manage.public_outcome(entry) == "failed: States.Runtime"
    offer = {"status": "failed", "statusReason": "States.Runtime: the input {'flags': ['bankruptcy']}"}
    assert manage.public_reason(offer) == "States.Runtime"
    assert manage.public_outcome({"step": "rules-lab", "outcome": "ineligible: x"}) == "ineligible"


TRACER_CAPTURE = ("POWERTOOLS_TRACER_CAPTURE_RESPONSE", "POWERTOOLS_TRACER_CAPTURE_ERROR")


def capture_overrides(resources: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """Each function that sets a tracer capture variable of its own to anything but "false" (or whose
    variables are an intrinsic function, which could)."""
    found = []
    for name, body in resources.items():
        if body["Type"] not in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            continue
        variables = ((body.get("Properties") or {}).get("Environment") or {}).get("Variables") or {}
        if any(key.startswith("Fn::") or key == "Ref" for key in variables):
            found.append((name, "Variables", variables))
        found += [
            (name, variable, variables[variable])
            for variable in TRACER_CAPTURE
            if variable in variables and str(variables[variable]).lower() != "false"
        ]
    return found


def test_traces_capture_no_answer_and_no_error() -> None:
    variables = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false"
    assert variables["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false"
    # A function's own Environment would override Globals for that function.
    assert capture_overrides(template()["Resources"]) == []


@pytest.mark.parametrize("value", ["true", "True", True, {"Fn::If": ["OnAws", "false", "true"]}])
def test_a_function_that_turns_capture_back_on_is_found(value: Any) -> None:
    resources = copy.deepcopy(template()["Resources"])
    function = next(body for body in resources.values() if body["Type"] == "AWS::Serverless::Function")
    function["Properties"].setdefault("Environment", {}).setdefault("Variables", {})[TRACER_CAPTURE[1]] = value
    assert len(capture_overrides(resources)) == 1
    function["Properties"]["Environment"]["Variables"] = {"Fn::If": ["OnAws", {}, {TRACER_CAPTURE[0]: "true"}]}
    assert len(capture_overrides(resources)) == 1
