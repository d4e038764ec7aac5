"""The mock downstream system the actions call (`ActionEffects`): only the fulfillment function has it."""

from __future__ import annotations

from datetime import datetime

from commonlib.clock import isoformat
from commonlib.errors import ConditionNotMetError, aws_errors_as_domain_errors
from enrollment.store.tables import Tables


def record_effect(tables: Tables, key: str, contract_id: str, action_name: str, claimed_at: str, at: datetime) -> bool:
    """What the downstream system does with one call: performs the effect once per idempotency key
    (one item), and counts every call it received with that key (`calls`), so a second performance is
    visible even though the key kept it harmless. True when this call performed the effect."""
    try:
        with aws_errors_as_domain_errors():
            tables.effects.put_item(
                Item={
                    "idempotencyKey": key,
                    "contractId": contract_id,
                    "actionName": action_name,
                    "claimedAt": claimed_at,
                    "performedAt": isoformat(at),
                    "calls": 1,
                },
                ConditionExpression="attribute_not_exists(idempotencyKey)",
            )
    except ConditionNotMetError:
        with aws_errors_as_domain_errors():
            tables.effects.update_item(
                Key={"idempotencyKey": key},
                UpdateExpression="ADD calls :one SET lastCallAt = :now",
                ExpressionAttributeValues={":one": 1, ":now": isoformat(at)},
            )
        return False
    return True


def effect_recorded(tables: Tables, key: str) -> bool:
    """Whether the downstream system performed the effect of this idempotency key (the lookup a
    downstream API offers by key): what settles a delivery that died holding its claim."""
    with aws_errors_as_domain_errors():
        return "Item" in tables.effects.get_item(Key={"idempotencyKey": key}, ConsistentRead=True)
