"""What crosses the state machines' boundary: the events their Lambda tasks receive and the results they
return, as TypedDicts. A handler checks its event once, at its edge (`validated`); the domain then works
on typed values and returns typed results, which the state machines read by name (`Assign`, `Output`).

The check reads the TypedDicts' own annotations (no pydantic: the step functions do not load a model
library at cold start). Keys a TypedDict does not name are let through, since Step Functions may add
some; a missing key or a value of another type is refused by name (`InvalidStepEventError`).

(No `from __future__ import annotations` here: `NotRequired` is read from evaluated annotations.)
"""

import functools
import types
import typing
from typing import Any, Literal, NotRequired, TypedDict

from commonlib.errors import InvalidInputError

# ---------------------------------------------------------------- what the immediate workflow carries


class PlannedAction(TypedDict):
    """One action of the draft with its due time (an offset-0 action is due the day of the enrollment)."""

    name: str
    offset: int
    dueAt: str
    data: dict[str, Any]


class Payment(TypedDict):
    sequence: int
    amount: str
    currency: str
    dueDate: str


class Offer(TypedDict):
    """The validated, normalised offer AcceptOffer returns and every later step receives."""

    contractId: str
    accountId: str
    contractInfo: dict[str, Any]
    contractDraft: dict[str, Any]
    correlationId: str
    enrollmentDate: str
    immediateActions: list[PlannedAction]
    eventualActions: list[PlannedAction]
    payments: list[Payment]


class Rejection(TypedDict):
    error: str
    cause: str


class Acceptance(TypedDict):
    """AcceptOffer's result: `accepted` with the offer, or `invalid` / `conflict` with the rejection."""

    outcome: Literal["accepted", "invalid", "conflict"]
    offer: Offer | None
    rejection: Rejection | None


class Verification(TypedDict):
    verified: bool
    reason: str | None
    account: dict[str, Any]  # the facts the rules lab reads: status and flags


class Eligibility(TypedDict):
    """The rules lab's decision."""

    eligible: bool
    reasons: list[str]
    failedRules: list[str]
    rulesVersion: str


class OutcomeRecorded(TypedDict):
    recorded: bool
    status: str


class Commitment(TypedDict):
    enrolledAt: str
    replayed: bool


class Reversal(TypedDict):
    reverted: bool


class Publication(TypedDict):
    shardId: str
    sequenceNumber: str


# ---------------------------------------------------------------- the immediate workflow's task events


class AcceptOfferEvent(TypedDict):
    input: NotRequired[Any]  # the request as the client sent it (with the API's ownerId): the request model checks it
    executionId: str
    startedAt: str


class OfferStepEvent(TypedDict):
    """VerifyCustomer's and PublishEnrollment's event."""

    offer: Offer
    executionId: str


class RulesLabEvent(TypedDict):
    offer: Offer
    account: NotRequired[dict[str, Any] | None]


class RecordOutcomeEvent(TypedDict):
    offer: Offer
    executionId: str
    status: str
    step: str
    reason: NotRequired[str | list[str] | None]  # the rules lab's reasons, or a failure's `Error: Cause`
    rulesVersion: NotRequired[str | None]


class CommitEvent(TypedDict):
    offer: Offer
    executionId: str
    eligibility: Eligibility


class RevertEvent(TypedDict):
    offer: Offer
    executionId: str
    error: NotRequired[dict[str, Any] | None]  # the caught error: `Error` and `Cause`


class PublishEvent(TypedDict):
    offer: Offer


# ---------------------------------------------------------------- the eventual workflow


class Hook(TypedDict):
    """One hook the async workflow schedules: the schedule that fires an eventual action when due."""

    actionName: str
    offset: int
    dueAt: str
    scheduleName: str
    scheduleExpression: str
    targetInput: str  # the fulfillment event, as JSON


class AsyncWorkflowInput(TypedDict):
    """What DataLambda (or the reconciler's re-drive) starts the async state machine with."""

    contractId: str
    accountId: str
    enrollmentDate: str
    correlationId: str
    hooks: list[Hook]


class ScheduleHookEvent(TypedDict):
    contractId: str
    correlationId: NotRequired[str]
    hook: Hook


class HookScheduled(TypedDict):
    created: bool
    scheduleName: str
    reason: NotRequired[str]  # `already scheduled`, or `withdrawn: the contract is <status>`
    replaced: NotRequired[str]  # the due time of the earlier enrollment's hook it replaced


class FulfillmentAnswer(TypedDict):
    """The fulfillment Lambda's answer: always these keys (the immediate workflow's FulfillAction Output reads
    them); `error` only on a rejection."""

    name: str | None
    status: str | None
    duplicate: bool
    result: Any
    reason: Any
    error: NotRequired[str]


# ---------------------------------------------------------------- the check


class InvalidStepEventError(InvalidInputError):
    """A task's event is not what its state machine sends: a deployment error, never a business answer."""


def validated[T](kind: type[T], event: Any) -> T:
    """`event` as `kind` (a TypedDict), after checking it; raises `InvalidStepEventError` naming each
    offending field."""
    errors: list[dict[str, str]] = []
    _check(event, kind, "(event)", errors)
    if errors:
        raise InvalidStepEventError(errors[:10])
    return typing.cast(T, event)


@functools.cache
def _fields(kind: type) -> tuple[dict[str, Any], frozenset[str]]:
    return typing.get_type_hints(kind), frozenset(kind.__required_keys__)  # type: ignore[attr-defined]


def _check(value: Any, hint: Any, where: str, errors: list[dict[str, str]]) -> None:
    origin = typing.get_origin(hint)
    if hint is Any:
        return
    if origin in (typing.Union, types.UnionType):
        if not any(_fits(value, option, where) for option in typing.get_args(hint)):
            errors.append({"field": where, "message": f"expected {_name(hint)}, got {type(value).__name__}"})
        return
    if typing.is_typeddict(hint):
        if not isinstance(value, dict):
            errors.append({"field": where, "message": f"expected an object, got {type(value).__name__}"})
            return
        hints, required = _fields(hint)
        for key, field_hint in hints.items():
            inner = f"{key}" if where == "(event)" else f"{where}.{key}"
            if key in value:
                _check(value[key], field_hint, inner, errors)
            elif key in required:
                errors.append({"field": inner, "message": "missing"})
        return
    if not _fits_shallow(value, hint, origin):
        errors.append({"field": where, "message": f"expected {_name(hint)}, got {type(value).__name__}"})
    elif origin is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        for index, item in enumerate(value):
            _check(item, item_hint, f"{where}[{index}]", errors)


def _fits(value: Any, hint: Any, where: str) -> bool:
    errors: list[dict[str, str]] = []
    _check(value, hint, where, errors)
    return not errors


def _fits_shallow(value: Any, hint: Any, origin: Any) -> bool:
    if hint is type(None):
        return value is None
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (list, dict):
        return isinstance(value, origin)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _name(hint: Any) -> str:
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_name(option) for option in typing.get_args(hint))
    if typing.is_typeddict(hint):
        return "an object"
    origin = typing.get_origin(hint)
    if origin is Literal:
        return " or ".join(repr(option) for option in typing.get_args(hint))
    return getattr(origin or hint, "__name__", str(hint))
