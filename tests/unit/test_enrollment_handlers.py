"""Every enrollment step handler, driven by its sample event in events/enrollment/ (moto-backed)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from enrollment import store
from enrollment.eventual import handlers as eventual_handlers
from enrollment.immediate import handlers as immediate_handlers
from enrollment.store import Tables

EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def stream(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ENROLLMENT_STREAM_NAME", "EnrollmentStream")
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    kinesis.create_stream(StreamName="EnrollmentStream", ShardCount=1)
    from commonlib import aws as aws_clients

    aws_clients.client.cache_clear()
    aws_clients.dynamodb_table.cache_clear()
    store.environment_tables.cache_clear()
    return kinesis


def test_sample_events_drive_the_whole_step_chain(enrollment_tables: Tables, stream: Any, lambda_context: Any) -> None:
    accepted = immediate_handlers.accept_offer(event("accept-offer"), lambda_context)
    assert accepted["outcome"] == "accepted"
    assert accepted["offer"] == event("verify-customer")["offer"]

    verified = immediate_handlers.verify_customer(event("verify-customer"), lambda_context)
    assert verified["verified"] is True
    decision = immediate_handlers.rules_lab(event("rules-lab"), lambda_context)
    assert decision["eligible"] is True
    committed = immediate_handlers.commit_enrollment(event("commit-enrollment"), lambda_context)
    assert committed["replayed"] is False
    published = immediate_handlers.publish_enrollment(event("publish-enrollment"), lambda_context)
    assert published["sequenceNumber"]
    fulfilled = eventual_handlers.fulfill_action(event("fulfill-action"), lambda_context)
    assert (fulfilled["name"], fulfilled["status"]) == ("action2", "fulfilled")


def test_fulfill_action_leases_its_claim_for_the_rest_of_its_invocation(
    enrollment_tables: Tables, stream: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The claim's lease comes from the invocation's own remaining time, not from a constant: a delivery
    that dies holding it frees the action as soon as it has certainly ended."""
    from commonlib import faults
    from commonlib.clock import isoformat, utc_now
    from enrollment.eventual import fulfillment

    immediate_handlers.accept_offer(event("accept-offer"), lambda_context)
    immediate_handlers.verify_customer(event("verify-customer"), lambda_context)
    immediate_handlers.commit_enrollment(event("commit-enrollment"), lambda_context)

    def die_after_the_claim(point: str) -> None:
        if point == "after-claim":
            raise RuntimeError("the function died holding its claim")

    monkeypatch.setattr(faults, "checkpoint", die_after_the_claim)
    monkeypatch.setattr(lambda_context, "get_remaining_time_in_millis", lambda: 7_000)
    before = utc_now()
    with pytest.raises(RuntimeError):
        eventual_handlers.fulfill_action(event("fulfill-action"), lambda_context)
    after = utc_now()

    lease = timedelta(seconds=7) + fulfillment.LEASE_MARGIN
    item = enrollment_tables.actions.get_item(Key={"contractId": "C-1001", "actionName": "action2"})["Item"]
    assert item["state"] == "running"
    assert isoformat(before + lease) <= item["leaseUntil"] <= isoformat(after + lease)


def test_a_failed_actions_error_line_names_its_contract(
    enrollment_tables: Tables, stream: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """The ActionFailed alarm names no contract: the operator finds it from this line."""
    from enrollment.eventual import fulfillment

    immediate_handlers.accept_offer(event("accept-offer"), lambda_context)
    immediate_handlers.verify_customer(event("verify-customer"), lambda_context)
    immediate_handlers.commit_enrollment(event("commit-enrollment"), lambda_context)

    def downstream_down(job: fulfillment.Performance) -> dict[str, Any]:
        raise ConnectionError("downstream unavailable")

    monkeypatch.setitem(fulfillment.REGISTRY, "action2", downstream_down)
    monkeypatch.setattr(fulfillment, "MAX_ATTEMPTS", 1)

    answer = eventual_handlers.fulfill_action(event("fulfill-action"), lambda_context)

    assert answer["status"] == "failed"
    [failed] = [record for record in caplog.records if record.getMessage() == "action failed"]
    assert (failed.levelname, failed.contract, failed.action["name"]) == ("ERROR", "C-1001", "action2")


def test_revert_event_undoes_a_committed_enrollment(
    enrollment_tables: Tables, stream: Any, lambda_context: Any
) -> None:
    immediate_handlers.accept_offer(event("accept-offer"), lambda_context)
    immediate_handlers.verify_customer(event("verify-customer"), lambda_context)
    immediate_handlers.commit_enrollment(event("commit-enrollment"), lambda_context)

    assert immediate_handlers.revert_enrollment(event("revert-enrollment"), lambda_context) == {"reverted": True}
    offer = enrollment_tables.offers.get_item(Key={"OfferId": "C-1001"})["Item"]
    assert offer["failureReason"] == "Runtime.HandlerError: PublishEnrollment failed"


def test_record_outcome_event(enrollment_tables: Tables, stream: Any, lambda_context: Any) -> None:
    immediate_handlers.accept_offer(event("accept-offer"), lambda_context)
    immediate_handlers.verify_customer(event("verify-customer"), lambda_context)

    result = immediate_handlers.record_outcome(event("record-outcome"), lambda_context)

    assert result == {"recorded": True, "status": "ineligible"}
    offer = enrollment_tables.offers.get_item(Key={"OfferId": "C-1001"})["Item"]
    assert offer["statusReason"] == "the account is flagged for bankruptcy"
