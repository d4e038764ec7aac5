from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from enrollment.immediate import offers, publisher, rules
from enrollment.store import Tables
from tests.unit.enrollment_fixtures import EXECUTION, STARTED, FixedClock, seed_offer


@pytest.fixture
def enrolled_offer(enrollment_tables: Tables) -> dict[str, Any]:
    offer = offers.acquire(enrollment_tables, seed_offer(), EXECUTION, STARTED, clock=FixedClock())["offer"]
    account = offers.verify_customer(enrollment_tables, offer, EXECUTION)["account"]
    decision = rules.evaluate(rules.facts(offer["contractInfo"], offer["contractDraft"], account), rules.load_rules())
    offers.commit_enrollment(enrollment_tables, offer, EXECUTION, decision)
    return offer


def action_state(tables: Tables, name: str) -> dict[str, Any]:
    return tables.actions.get_item(Key={"contractId": "C-1001", "actionName": name}, ConsistentRead=True)["Item"]


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
