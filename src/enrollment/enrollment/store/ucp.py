"""The UCP table: one item per account, its contracts in a map keyed by contract id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commonlib.clock import isoformat
from commonlib.errors import ConditionNotMetError, aws_errors_as_domain_errors
from enrollment.store.tables import CANCELLED, ENROLLED, Tables, item_from_condition_failure

UCP_CANCELLED, UCP_ABSENT = "cancelled", "absent"


def cancel_ucp_contract(tables: Tables, account_id: str, contract_id: str) -> str:
    """The contract's entry in the account goes `cancelled`: `UCP_CANCELLED` (also when it already
    was). `UCP_ABSENT` when the account holds no entry for the contract (lost, for example by a re-seed
    of the account): there is nothing to cancel there, and nothing is written. Raises
    `ConditionNotMetError` when the account does not exist, or its entry is neither enrolled nor
    cancelled."""
    try:
        with aws_errors_as_domain_errors():
            tables.ucp.update_item(
                Key={"accountId": account_id},
                UpdateExpression="SET contracts.#contract.#status = :cancelled",
                ConditionExpression="contracts.#contract.#status IN (:enrolled, :cancelled)",
                ExpressionAttributeNames={"#contract": contract_id, "#status": "status"},
                ExpressionAttributeValues={":cancelled": CANCELLED, ":enrolled": ENROLLED},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
    except ConditionNotMetError as refused:
        account = item_from_condition_failure(refused)
        if not account:
            raise ConditionNotMetError(f"the UCP has no account {account_id}", code="NoAccount") from refused
        entry = (account.get("contracts") or {}).get(contract_id)
        if entry is None:
            return UCP_ABSENT
        raise ConditionNotMetError(
            f"the UCP holds contract {contract_id} as {entry.get('status')!r}", code="UnexpectedStatus"
        ) from refused
    return UCP_CANCELLED


def set_contract_rate(tables: Tables, account_id: str, contract_id: str, rate: Any, key: str, at: datetime) -> bool:
    """The rate change's effect on the UCP: the contract's new rate, stamped with the idempotency key
    that set it. True when this call set it; False when the rate was set with this key already (a
    retried performance changes nothing, not even the stamp's time)."""
    try:
        with aws_errors_as_domain_errors():
            tables.ucp.update_item(
                Key={"accountId": account_id},
                UpdateExpression=(
                    "SET contracts.#contract.interestRate = :rate, contracts.#contract.rateChange = :change"
                ),
                ConditionExpression=(
                    "attribute_exists(contracts.#contract) AND (attribute_not_exists(contracts.#contract.rateChange)"
                    " OR contracts.#contract.rateChange.idempotencyKey <> :key)"
                ),
                ExpressionAttributeNames={"#contract": contract_id},
                ExpressionAttributeValues={
                    ":rate": rate,
                    ":change": {"idempotencyKey": key, "at": isoformat(at)},
                    ":key": key,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
    except ConditionNotMetError as refused:
        entry = (item_from_condition_failure(refused).get("contracts") or {}).get(contract_id) or {}
        if (entry.get("rateChange") or {}).get("idempotencyKey") == key:
            return False
        raise
    return True


def contract_rate_key(tables: Tables, account_id: str, contract_id: str) -> str | None:
    """The idempotency key of the rate change last set on the contract in the UCP, if any."""
    account = get_account(tables, account_id) or {}
    entry = (account.get("contracts") or {}).get(contract_id) or {}
    return (entry.get("rateChange") or {}).get("idempotencyKey")


def get_account(tables: Tables, account_id: str) -> dict[str, Any] | None:
    with aws_errors_as_domain_errors():
        return tables.ucp.get_item(Key={"accountId": account_id}, ConsistentRead=True).get("Item")
