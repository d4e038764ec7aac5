"""The UCP table: an account's items share its `accountId`. The account itself (status, flags) is the
item `recordId = "account"`; each contract enrolled on it is an item of its own, `recordId =
"contract#<contractId>"` (status, payments, the rate an action set). An enrollment writes only its
contract's item, so what it costs does not grow with the contracts the account already holds, and no
account reaches DynamoDB's item size limit however many contracts it has."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from commonlib.clock import isoformat
from commonlib.errors import ConditionNotMetError, aws_errors_as_domain_errors
from enrollment.store.tables import CANCELLED, ENROLLED, Tables, item_from_condition_failure

UCP_CANCELLED, UCP_ABSENT = "cancelled", "absent"
ACCOUNT_RECORD = "account"
CONTRACT_RECORD_PREFIX = "contract#"


def account_key(account_id: str) -> dict[str, str]:
    return {"accountId": account_id, "recordId": ACCOUNT_RECORD}


def contract_key(account_id: str, contract_id: str) -> dict[str, str]:
    return {"accountId": account_id, "recordId": CONTRACT_RECORD_PREFIX + contract_id}


def cancel_ucp_contract(tables: Tables, account_id: str, contract_id: str) -> str:
    """The contract's item in the account goes `cancelled`: `UCP_CANCELLED` (also when it already
    was). `UCP_ABSENT` when the account holds no item for the contract (deleted by hand, or lost to a
    restore of the table from before the enrollment): there is nothing to cancel there, and nothing is
    written. Raises `ConditionNotMetError` when the account does not exist, or the contract is neither
    enrolled nor cancelled."""
    try:
        with aws_errors_as_domain_errors():
            tables.ucp.update_item(
                Key=contract_key(account_id, contract_id),
                UpdateExpression="SET #status = :cancelled",
                ConditionExpression="#status IN (:enrolled, :cancelled)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":cancelled": CANCELLED, ":enrolled": ENROLLED},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
    except ConditionNotMetError as refused:
        entry = item_from_condition_failure(refused)
        if entry:
            raise ConditionNotMetError(
                f"the UCP holds contract {contract_id} as {entry.get('status')!r}", code="UnexpectedStatus"
            ) from refused
        if get_account(tables, account_id) is None:
            raise ConditionNotMetError(f"the UCP has no account {account_id}", code="NoAccount") from refused
        return UCP_ABSENT
    return UCP_CANCELLED


def set_contract_rate(tables: Tables, account_id: str, contract_id: str, rate: Any, key: str, at: datetime) -> bool:
    """The rate change's effect on the UCP: the contract's new rate, stamped with the idempotency key
    that set it. True when this call set it; False when the rate was set with this key already (a
    retried performance changes nothing, not even the stamp's time)."""
    try:
        with aws_errors_as_domain_errors():
            tables.ucp.update_item(
                Key=contract_key(account_id, contract_id),
                UpdateExpression="SET interestRate = :rate, rateChange = :change",
                ConditionExpression=(
                    "attribute_exists(recordId) AND (attribute_not_exists(rateChange)"
                    " OR rateChange.idempotencyKey <> :key)"
                ),
                ExpressionAttributeValues={
                    ":rate": rate,
                    ":change": {"idempotencyKey": key, "at": isoformat(at)},
                    ":key": key,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
    except ConditionNotMetError as refused:
        entry = item_from_condition_failure(refused)
        if (entry.get("rateChange") or {}).get("idempotencyKey") == key:
            return False
        raise
    return True


def contract_rate_key(tables: Tables, account_id: str, contract_id: str) -> str | None:
    """The idempotency key of the rate change last set on the contract in the UCP, if any."""
    entry = get_contract(tables, account_id, contract_id) or {}
    return (entry.get("rateChange") or {}).get("idempotencyKey")


def get_account(tables: Tables, account_id: str) -> dict[str, Any] | None:
    with aws_errors_as_domain_errors():
        return tables.ucp.get_item(Key=account_key(account_id), ConsistentRead=True).get("Item")


def get_contract(tables: Tables, account_id: str, contract_id: str) -> dict[str, Any] | None:
    with aws_errors_as_domain_errors():
        return tables.ucp.get_item(Key=contract_key(account_id, contract_id), ConsistentRead=True).get("Item")
