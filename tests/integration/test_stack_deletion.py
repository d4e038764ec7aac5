"""Deleting the stack does not take the enrollments' records with it: with ContractRecordsDeletionPolicy at its
default (Retain, as on AWS), the offers, the UCP, the actions and the audit trail outlive a deleted stack, each
table protected against a DeleteTable made by hand; a table that holds no record of a contract goes with it.

The stack deployed here holds those tables exactly as template.yaml declares them (its parameters, condition
and resources, taken from the file, with the same transform), and nothing else: nothing else of the stack
plays a part in what its deletion does to them, and the whole stack would cost a deploy of sixteen functions.
It is created beside the session's stack, under another name and a NamePrefix of its own."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sam_template
import stack
from botocore.exceptions import ClientError

from tests.support.stacks import stack_status
from tests.support.template import ROOT
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
PREFIX = "kept-"
STACK_NAME = "records-kept"
RECORD_TABLES = ("OffersTable", "UcpTable", "ActionsTable", "AuditTable")
# A table of the stack that holds no record of a contract (Powertools' idempotency records): it goes with it.
OTHER_TABLE = "IdempotencyTable"
DEADLINE_SECONDS = 60


def record_tables_template() -> dict[str, Any]:
    written = sam_template.load(ROOT / "template.yaml")
    tables = (*RECORD_TABLES, OTHER_TABLE)
    return {
        "AWSTemplateFormatVersion": written["AWSTemplateFormatVersion"],
        # What resolves the DeletionPolicy's reference to the parameter on AWS.
        "Transform": "AWS::LanguageExtensions",
        "Parameters": {name: written["Parameters"][name] for name in ("NamePrefix", "ContractRecordsDeletionPolicy")},
        "Conditions": {"ProtectContractRecords": written["Conditions"]["ProtectContractRecords"]},
        "Resources": {name: written["Resources"][name] for name in tables},
        "Outputs": {name: {"Value": {"Ref": name}} for name in tables},
    }


def status_is(cloudformation: Any, wanted: str | None) -> bool:
    """Whether the stack reached `wanted` (None: it is gone); a failed or rolled-back stack fails the test."""
    status = stack_status(cloudformation, STACK_NAME)
    assert status is None or not status.endswith(("_FAILED", "ROLLBACK_COMPLETE")), status
    return status == wanted


def test_a_deleted_stack_leaves_the_contract_records_in_tables_protected_against_deletion(
    fresh_emulator: int,
) -> None:
    cloudformation = stack.local_client("cloudformation", fresh_emulator)
    dynamodb = stack.local_client("dynamodb", fresh_emulator)
    cloudformation.create_stack(
        StackName=STACK_NAME,
        TemplateBody=json.dumps(record_tables_template()),
        Parameters=[{"ParameterKey": "NamePrefix", "ParameterValue": PREFIX}],
        Capabilities=["CAPABILITY_AUTO_EXPAND"],
    )
    wait_until(lambda: status_is(cloudformation, "CREATE_COMPLETE"), DEADLINE_SECONDS, f"{STACK_NAME} created")
    names = stack.outputs(cloudformation, STACK_NAME)
    entry = {"contractId": {"S": "C-KEPT"}, "entryId": {"S": "0001#enrolled"}, "event": {"S": "enrolled"}}
    dynamodb.put_item(TableName=names["AuditTable"], Item=entry)

    cloudformation.delete_stack(StackName=STACK_NAME)
    wait_until(lambda: status_is(cloudformation, None), DEADLINE_SECONDS, f"{STACK_NAME} deleted")

    tables = set(dynamodb.list_tables()["TableNames"])
    assert {names[table] for table in RECORD_TABLES} <= tables
    assert names[OTHER_TABLE] not in tables
    key = {name: entry[name] for name in ("contractId", "entryId")}
    assert dynamodb.get_item(TableName=names["AuditTable"], Key=key)["Item"] == entry
    for table in RECORD_TABLES:
        assert dynamodb.describe_table(TableName=names[table])["Table"]["DeletionProtectionEnabled"] is True
        with pytest.raises(ClientError, match="protected against deletion"):
            dynamodb.delete_table(TableName=names[table])
    assert {names[table] for table in RECORD_TABLES} <= set(dynamodb.list_tables()["TableNames"])
