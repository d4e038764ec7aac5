"""The UCP table: one item per account, its contracts in a map keyed by contract id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commonlib.clock import isoformat
from commonlib.errors import aws_errors_as_domain_errors
from enrollment.store.tables import CANCELLED, Tables


def cancel_ucp_contract(tables: Tables, account_id: str, contract_id: str) -> None:
    with aws_errors_as_domain_errors():
        tables.ucp.update_item(
            Key={"accountId": account_id},
            UpdateExpression="SET contracts.#contract.#status = :cancelled",
            ConditionExpression="attribute_exists(contracts.#contract)",
            ExpressionAttributeNames={"#contract": contract_id, "#status": "status"},
            ExpressionAttributeValues={":cancelled": CANCELLED},
        )


def set_contract_rate(tables: Tables, account_id: str, contract_id: str, rate: Any, key: str, at: datetime) -> None:
    """The rate change's effect on the UCP: the contract's new rate, stamped with the idempotency key
    that set it (setting it again with the same key changes nothing)."""
    with aws_errors_as_domain_errors():
        tables.ucp.update_item(
            Key={"accountId": account_id},
            UpdateExpression="SET contracts.#contract.interestRate = :rate, contracts.#contract.rateChange = :change",
            ConditionExpression="attribute_exists(contracts.#contract)",
            ExpressionAttributeNames={"#contract": contract_id},
            ExpressionAttributeValues={":rate": rate, ":change": {"idempotencyKey": key, "at": isoformat(at)}},
        )


def get_account(tables: Tables, account_id: str) -> dict[str, Any] | None:
    with aws_errors_as_domain_errors():
        return tables.ucp.get_item(Key={"accountId": account_id}, ConsistentRead=True).get("Item")
