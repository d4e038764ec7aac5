"""scripts/migrate_ucp.py: a UCP of one item per account (its contracts in a map) becomes one of an item per
contract that the enrollment code reads, and running it again changes nothing."""

from __future__ import annotations

from typing import Any

import boto3
import migrate_ucp
import pytest

from enrollment import store
from enrollment.store import Tables
from tests.unit.conftest import create_table

OLD_TABLE = "UcpAccounts"
CONTRACT = {"status": "enrolled", "enrolledAt": "2026-11-01T10:00:00Z", "payments": [{"sequence": 1}]}


@pytest.fixture
def old_ucp(aws: None) -> Any:
    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    table = dynamodb.create_table(
        TableName=OLD_TABLE,
        AttributeDefinitions=[{"AttributeName": "accountId", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "accountId", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table.put_item(
        Item={
            "accountId": "A-900",
            "status": "active",
            "flags": ["dispute"],
            "lastEnrollmentAt": "2026-11-02T10:00:00Z",
            "contracts": {"C-1": CONTRACT, "C-2": {**CONTRACT, "status": "cancelled"}},
        }
    )
    table.put_item(Item={"accountId": "A-901", "status": "inactive", "flags": [], "contracts": {}})
    return table


def test_each_account_and_each_of_its_contracts_become_items_the_enrollment_reads(
    old_ucp: Any, enrollment_tables: Tables
) -> None:
    counts = migrate_ucp.migrate(boto3.client("dynamodb", region_name="us-east-1"), OLD_TABLE, "Ucp")

    assert counts == {"written": 4, "kept": 0}
    assert store.get_account(enrollment_tables, "A-900") == {
        "accountId": "A-900",
        "recordId": "account",
        "status": "active",
        "flags": ["dispute"],
    }
    assert store.get_account(enrollment_tables, "A-901")["status"] == "inactive"
    assert store.get_contract(enrollment_tables, "A-900", "C-1") == {
        "accountId": "A-900",
        "recordId": "contract#C-1",
        **CONTRACT,
    }
    assert store.cancel_ucp_contract(enrollment_tables, "A-900", "C-1") == store.UCP_CANCELLED
    assert store.get_contract(enrollment_tables, "A-900", "C-2")["status"] == "cancelled"


def test_running_it_again_keeps_what_the_target_holds(old_ucp: Any, enrollment_tables: Tables) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    migrate_ucp.migrate(dynamodb, OLD_TABLE, "Ucp")
    store.cancel_ucp_contract(enrollment_tables, "A-900", "C-1")  # written by the new stack meanwhile

    assert migrate_ucp.migrate(dynamodb, OLD_TABLE, "Ucp") == {"written": 0, "kept": 4}
    assert store.get_contract(enrollment_tables, "A-900", "C-1")["status"] == "cancelled"


def test_the_target_is_the_templates_table(aws: None) -> None:
    """The layout the script writes is the one the template declares for the UCP."""
    table = create_table("UcpTable", "Ucp")
    assert {key["AttributeName"]: key["KeyType"] for key in table.key_schema} == {
        "accountId": "HASH",
        "recordId": "RANGE",
    }
