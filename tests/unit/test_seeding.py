"""Seeding the sample UCP accounts (scripts/stack.py): a redeploy adds what is missing and keeps what is there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import stack
from botocore.exceptions import ClientError

from tests.unit.conftest import create_table

SAMPLE = json.loads((Path(__file__).resolve().parents[2] / "events/enrollment/sample-accounts.json").read_text())
TABLE = "Ucp"


@pytest.fixture
def ucp(aws: None) -> Any:
    return create_table("UcpTable", TABLE)


def test_seeding_adds_every_sample_account_to_an_empty_table(ucp: Any) -> None:
    added, kept = stack.seed_accounts(boto3.client("dynamodb", region_name="us-east-1"), TABLE)

    assert (added, kept) == (len(SAMPLE), 0)
    assert sorted(item["accountId"] for item in ucp.scan(ConsistentRead=True)["Items"]) == sorted(
        account["accountId"] for account in SAMPLE
    )


def test_seeding_again_keeps_an_existing_accounts_contracts(ucp: Any) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    stack.seed_accounts(dynamodb, TABLE)
    contract = {"accountId": "A-100", "recordId": "contract#C-1001", "status": "enrolled"}
    ucp.put_item(Item=contract)
    ucp.update_item(  # an account changed since it was seeded keeps the change
        Key={"accountId": "A-100", "recordId": "account"},
        UpdateExpression="SET #status = :closed",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":closed": "inactive"},
    )
    ucp.delete_item(Key={"accountId": "A-400", "recordId": "account"})  # missing: the second seeding adds it back

    added, kept = stack.seed_accounts(dynamodb, TABLE)

    assert (added, kept) == (1, len(SAMPLE) - 1)

    def held(account_id: str, record_id: str) -> dict[str, Any] | None:
        key = {"accountId": account_id, "recordId": record_id}
        return ucp.get_item(Key=key, ConsistentRead=True).get("Item")

    assert held("A-100", "contract#C-1001") == contract
    assert held("A-100", "account")["status"] == "inactive"
    assert held("A-400", "account")["status"] == "active"


def test_seeding_raises_any_other_error(aws: None) -> None:
    with pytest.raises(ClientError) as raised:
        stack.seed_accounts(boto3.client("dynamodb", region_name="us-east-1"), "NoSuchTable")
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"
