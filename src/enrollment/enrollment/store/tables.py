"""The tables of the enrollment, the states their items go through, and what every access shares: paging,
the old item a refused write returns, values DynamoDB can store."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from commonlib import aws
from commonlib.errors import aws_errors_as_domain_errors

RECEIVED, VERIFIED, REJECTED, INELIGIBLE, ENROLLED, FAILED, CANCELLING, CANCELLED = (
    "received",
    "verified",
    "rejected",
    "ineligible",
    "enrolled",
    "failed",
    "cancelling",
    "cancelled",
)

ACTION_PENDING, ACTION_SCHEDULED, ACTION_RUNNING, ACTION_FULFILLED, ACTION_FAILED, ACTION_CANCELLED = (
    "pending",
    "scheduled",
    "running",
    "fulfilled",
    "failed",
    "cancelled",
)

# An action waiting for its day: the same-day ones from the commit (pending), the eventual ones once
# their hook exists (scheduled).
ACTION_WAITING = (ACTION_PENDING, ACTION_SCHEDULED)

ACTION_DONE = (ACTION_FULFILLED, ACTION_FAILED, ACTION_CANCELLED)

# The reconciler's watch: a sparse index of the Offers table (`WATCHED_INDEX`, only offers carrying the mark).
# Every write after which a failed next step leaves the contract for the reconciler marks its offer (the
# commit, a cancel, a revert, a first payment not started); the reconciler reads the offers marked before its
# grace and removes the mark once it finds the offer settled. So a run reads what happened lately, not every
# contract ever enrolled.
WATCHED_INDEX = "Watched"
WATCH, WATCHING = "watch", "reconcile"  # the index's partition key and its one value: the mark itself
WATCHED_SINCE = "watchedSince"  # its sort key: when the last mark was set

# The actions by state and due time (an index of the Actions table): the reconciler asks for the open
# actions due by a time, never for every action of every contract.
ACTIONS_DUE_INDEX = "ByStateAndDue"

# The audit partition of rejected input. Never a contract id: those start with a letter or digit.
REJECTIONS = "_rejected"

MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class Tables:
    offers: Any
    ucp: Any
    actions: Any
    audit: Any
    # The mock downstream system the actions call (ActionEffects): only the fulfillment function has it.
    effects: Any = None

    @property
    def client(self) -> Any:
        # The resource's client serialises plain Python values, also inside transactions.
        return self.offers.meta.client

    @classmethod
    def from_environment(cls) -> Tables:
        return cls(
            offers=aws.dynamodb_table(os.environ["OFFERS_TABLE_NAME"]),
            ucp=aws.dynamodb_table(os.environ["UCP_TABLE_NAME"]),
            actions=aws.dynamodb_table(os.environ["ACTIONS_TABLE_NAME"]),
            audit=aws.dynamodb_table(os.environ["AUDIT_TABLE_NAME"]),
            effects=(
                aws.dynamodb_table(os.environ["ACTION_EFFECTS_TABLE_NAME"])
                if os.environ.get("ACTION_EFFECTS_TABLE_NAME")
                else None
            ),
        )


@functools.cache
def environment_tables() -> Tables:
    """The tables the function's environment names, built once per execution environment."""
    return Tables.from_environment()


def item_from_condition_failure(error: BaseException) -> dict[str, Any]:
    """The old item a failed condition returned (`ReturnValuesOnConditionCheckFailure=ALL_OLD`)."""
    cause = error.__cause__ if error.__cause__ is not None else error
    response = getattr(cause, "response", {}) or {}
    raw = response.get("Item") or {}
    from boto3.dynamodb.types import TypeDeserializer  # boto3 is loaded: a call just failed

    deserializer = TypeDeserializer()
    return {key: deserializer.deserialize(value) if _is_low_level(value) else value for key, value in raw.items()}


def _is_low_level(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in {
        "S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"
    }  # fmt: skip


def storable(value: Any) -> Any:
    """DynamoDB takes Decimal, not float."""
    return json.loads(json.dumps(value), parse_float=Decimal)


def query_all(table: Any, **query: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = table.query(**query)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def query_pages(table: Any, **query: Any) -> Iterator[dict[str, Any]]:
    """Every item a query matches, page by page (an index's pages are read as the caller goes)."""
    yield from _pages(table.query, query)


def scan_pages(table: Any, **scan: Any) -> Iterator[dict[str, Any]]:
    """Every item of a table, page by page: for one-off maintenance only, never a function's path."""
    yield from _pages(table.scan, scan)


def _pages(read: Any, request: dict[str, Any]) -> Iterator[dict[str, Any]]:
    while True:
        with aws_errors_as_domain_errors():
            page = read(**request)
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
