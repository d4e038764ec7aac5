"""Deleting the stack does not take the enrollments' records with it: with ContractRecordsDeletionPolicy at its
default (Retain, as on AWS), the offers, the UCP, the actions and the audit trail outlive a deleted stack, each
table protected against a DeleteTable made by hand; what holds no record of a contract goes with the stack.

Deployed beside the session's stack, under another stack name and a NamePrefix of its own, so that nothing of
the session's stack is touched."""

from __future__ import annotations

import pytest
import stack
from botocore.exceptions import ClientError

from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
PREFIX = "kept-"
STACK_NAME = "records-kept"
RECORD_TABLES = ("OffersTableName", "UcpTableName", "ActionsTableName", "AuditTableName")
# Tables of the stack that hold no record of a contract: they go with it.
OTHER_TABLES = ("IdempotencyTableName", "ActionEffectsTableName", "OrdersTableName")
DELETE_DEADLINE_SECONDS = 60


def test_a_deleted_stack_leaves_the_contract_records_in_tables_protected_against_deletion(
    built: None, fresh_emulator: int
) -> None:
    cloudformation = stack.local_client("cloudformation", fresh_emulator)
    dynamodb = stack.local_client("dynamodb", fresh_emulator)
    stack.deploy(
        stack.local_environment(fresh_emulator),
        STACK_NAME,
        [f"NamePrefix={PREFIX}", "ContractRecordsDeletionPolicy=Retain", f"OrdersTableName={PREFIX}MockOrders"],
    )
    outputs = stack.outputs(cloudformation, STACK_NAME)
    entry = {"contractId": {"S": "C-KEPT"}, "entryId": {"S": "0001#enrolled"}, "event": {"S": "enrolled"}}
    dynamodb.put_item(TableName=outputs["AuditTableName"], Item=entry)

    cloudformation.delete_stack(StackName=STACK_NAME)
    wait_until(lambda: stack_deleted(cloudformation), DELETE_DEADLINE_SECONDS, f"stack {STACK_NAME} to be deleted")

    tables = set(dynamodb.list_tables()["TableNames"])
    assert {outputs[key] for key in RECORD_TABLES} <= tables
    assert {outputs[key] for key in OTHER_TABLES} & tables == set()
    kept = dynamodb.get_item(
        TableName=outputs["AuditTableName"], Key={key: entry[key] for key in ("contractId", "entryId")}
    )
    assert kept["Item"] == entry
    for key in RECORD_TABLES:
        assert dynamodb.describe_table(TableName=outputs[key])["Table"]["DeletionProtectionEnabled"] is True
        with pytest.raises(ClientError, match="protected against deletion"):
            dynamodb.delete_table(TableName=outputs[key])
    assert {outputs[key] for key in RECORD_TABLES} <= set(dynamodb.list_tables()["TableNames"])


def stack_deleted(cloudformation: object) -> bool:
    try:
        status = cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"][0]["StackStatus"]
    except ClientError as error:
        if "does not exist" not in error.response["Error"]["Message"]:
            raise
        return True
    assert status in ("DELETE_IN_PROGRESS", "DELETE_COMPLETE"), status
    return status == "DELETE_COMPLETE"
