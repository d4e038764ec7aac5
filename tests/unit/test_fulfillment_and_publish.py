from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from enrollment import fulfillment, offers, publisher, rules
from enrollment.store import Tables
from tests.unit.enrollment_fixtures import EXECUTION, STARTED, FixedClock, schedule_hook, seed_offer


@pytest.fixture
def enrolled_offer(enrollment_tables: Tables) -> dict[str, Any]:
    offer = offers.acquire(enrollment_tables, seed_offer(), EXECUTION, STARTED, clock=FixedClock())["offer"]
    account = offers.verify_customer(enrollment_tables, offer, EXECUTION)["account"]
    decision = rules.evaluate(rules.facts(offer["contractInfo"], offer["contractDraft"], account), rules.load_rules())
    offers.commit_enrollment(enrollment_tables, offer, EXECUTION, decision)
    return offer


def action_state(tables: Tables, name: str) -> dict[str, Any]:
    return tables.actions.get_item(Key={"contractId": "C-1001", "actionName": name}, ConsistentRead=True)["Item"]


def test_every_seed_action_has_a_handler() -> None:
    assert {"rateChange", "action1", "action2", "action100"} <= set(fulfillment.REGISTRY)


def test_fulfil_performs_once_and_records_result(enrollment_tables: Tables, enrolled_offer: dict[str, Any]) -> None:
    action = enrolled_offer["eventualActions"][-1]
    schedule_hook(enrollment_tables, "C-1001", action)
    first = fulfillment.fulfil(enrollment_tables, "C-1001", action, "corr", "hook")
    second = fulfillment.fulfil(enrollment_tables, "C-1001", action, "corr", "hook")

    assert first == {
        "name": "rateChange", "status": "fulfilled", "duplicate": False,
        "result": {"effect": "interest rate changed", "newRate": None}, "reason": None,
    }  # fmt: skip
    assert second["duplicate"] is True
    assert second["status"] == "fulfilled"
    item = action_state(enrollment_tables, "rateChange")
    assert (item["state"], item["trigger"]) == ("fulfilled", "hook")
    fulfilled_audits = [a for a in enrollment_tables.audit.scan()["Items"] if a["step"] == "action:rateChange"]
    assert len(fulfilled_audits) == 1


def test_unknown_action_is_recorded_failed_with_reason(enrollment_tables: Tables) -> None:
    offer = offers.acquire(
        enrollment_tables, seed_offer(contractDraft={"List": [{"name": "teleport", "offset": 0}]}), EXECUTION, STARTED
    )["offer"]
    offers.verify_customer(enrollment_tables, offer, EXECUTION)
    offers.commit_enrollment(enrollment_tables, offer, EXECUTION, {"rulesVersion": "v"})

    result = fulfillment.fulfil(enrollment_tables, "C-1001", offer["immediateActions"][0], "corr", "same-day")

    assert result["status"] == "failed"
    assert result["reason"] == "no handler is registered for action 'teleport'"
    assert action_state(enrollment_tables, "teleport")["failureReason"] == result["reason"]


def test_cancelled_action_is_not_performed(enrollment_tables: Tables, enrolled_offer: dict[str, Any]) -> None:
    offers.revert_enrollment(enrollment_tables, enrolled_offer, EXECUTION, "cancel")
    result = fulfillment.fulfil(enrollment_tables, "C-1001", enrolled_offer["immediateActions"][0], "corr", "same-day")
    assert (result["status"], result["duplicate"]) == ("cancelled", True)


def test_hook_for_an_eventual_action_not_scheduled_is_rejected(
    enrollment_tables: Tables, enrolled_offer: dict[str, Any]
) -> None:
    """No hook exists before its action's item is created `scheduled`; a payload claiming one is refused."""
    result = fulfillment.fulfil(enrollment_tables, "C-1001", enrolled_offer["eventualActions"][0], "corr", "hook")
    assert (result["status"], result["error"]) == ("rejected", "ActionNotEnrolled")
    assert [a["actionName"] for a in enrollment_tables.actions.scan()["Items"]] == ["action2"]


def test_hook_for_an_action_never_enrolled_is_a_named_audited_rejection(enrollment_tables: Tables) -> None:
    result = fulfillment.fulfil(enrollment_tables, "C-404", {"name": "action1", "offset": 3}, "corr", "hook")

    assert (result["status"], result["error"], result["name"]) == ("rejected", "ActionNotEnrolled", "action1")
    assert enrollment_tables.actions.scan()["Items"] == []
    [entry] = enrollment_tables.audit.scan()["Items"]
    assert (entry["contractId"], entry["step"], entry["outcome"]) == (
        "_rejected",
        "reject:hook",
        "rejected: ActionNotEnrolled",
    )
    assert entry["details"]["claimed"] == {"contractId": "C-404", "actionName": "action1", "correlationId": "corr"}


def test_publish_puts_one_record_with_eventual_actions(
    enrollment_tables: Tables, enrolled_offer: dict[str, Any]
) -> None:
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    kinesis.create_stream(StreamName="EnrollmentStream", ShardCount=1)

    result = publisher.publish(kinesis, "EnrollmentStream", enrolled_offer, clock=FixedClock())

    shard_iterator = kinesis.get_shard_iterator(
        StreamName="EnrollmentStream", ShardId=result["shardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=shard_iterator)["Records"]
    assert len(records) == 1
    body = json.loads(records[0]["Data"])
    assert body["type"] == "ContractEnrolled"
    assert (body["contractId"], body["accountId"], body["correlationId"]) == ("C-1001", "A-100", "run-1")
    assert [(a["name"], a["offset"]) for a in body["eventualActions"]] == [
        ("action100", 1),
        ("action1", 3),
        ("rateChange", 16),
    ]
    assert records[0]["PartitionKey"] == "C-1001"
