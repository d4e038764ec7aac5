"""Copy a UCP table of one item per account (its contracts in a map `contracts`, the layout of the table
`<NamePrefix>UcpAccounts`) into the UCP table of one item per contract (`<NamePrefix>Ucp`): each account
becomes its item `recordId = "account"` and each of its contracts an item `recordId = "contract#<id>"`.

    python scripts/migrate_ucp.py --source UcpAccounts --target Ucp [--endpoint-url URL]

Deploying the current template over a stack that has the old table creates the new one and keeps the
old one (its UpdateReplacePolicy is Retain); run this before the stack takes traffic again. It writes an
item only where the target has none (a conditional put), so running it again changes nothing, and an
item the new stack wrote meanwhile is kept.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src/layers/common"), str(ROOT / "src/enrollment")]

from enrollment.store.ucp import account_key, contract_key  # noqa: E402

# Written on the account item by the old layout's commit; the contract items carry their own times.
DROPPED_ACCOUNT_FIELDS = ("contracts", "lastEnrollmentAt")


def split(old_item: dict[str, Any]) -> list[dict[str, Any]]:
    """An old account item (DynamoDB JSON) as the new layout's items: the account, then each contract."""
    account_id = old_item["accountId"]["S"]
    account = {key: value for key, value in old_item.items() if key not in DROPPED_ACCOUNT_FIELDS}
    items = [account | as_dynamodb_json(account_key(account_id))]
    for contract_id, entry in old_item.get("contracts", {}).get("M", {}).items():
        items.append(as_dynamodb_json(contract_key(account_id, contract_id)) | entry["M"])
    return items


def as_dynamodb_json(key: dict[str, str]) -> dict[str, dict[str, str]]:
    return {name: {"S": value} for name, value in key.items()}


def old_items(dynamodb: Any, table: str) -> Iterator[dict[str, Any]]:
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page["Items"]


def migrate(dynamodb: Any, source: str, target: str) -> dict[str, int]:
    """Copies every account and contract of `source` into `target`: counts written and kept."""
    counts = {"written": 0, "kept": 0}
    for old_item in old_items(dynamodb, source):
        for item in split(old_item):
            try:
                dynamodb.put_item(TableName=target, Item=item, ConditionExpression="attribute_not_exists(recordId)")
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                counts["kept"] += 1
            else:
                counts["written"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="the table of one item per account (e.g. UcpAccounts)")
    parser.add_argument("--target", required=True, help="the table of one item per contract (e.g. Ucp)")
    parser.add_argument("--endpoint-url", help="the local emulator, e.g. http://localhost:4566")
    args = parser.parse_args()
    dynamodb = boto3.client("dynamodb", endpoint_url=args.endpoint_url)
    counts = migrate(dynamodb, args.source, args.target)
    print(f"{args.source} -> {args.target}: {counts['written']} items written, {counts['kept']} already there")


if __name__ == "__main__":
    main()
