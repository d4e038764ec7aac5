"""The contract offer as the public API and the state machine accept it, and what is derived from it.

The draft's action list follows the other team's schema: `{"name": ..., "offset": days, ...other data}`.
Offset 0 actions run the same day; the others are due at enrollment date + offset days.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from commonlib.clock import isoformat
from enrollment.action_names import SUPPORTED_ACTIONS
from enrollment.offsets import SECONDS_PER_DAY, due_at
from enrollment.steps import Payment, PlannedAction

MAX_OFFSET_DAYS = 3650
MAX_ACTIONS = 20
MAX_TERM_MONTHS = 360
DAYS_PER_PAYMENT_PERIOD = 30
# The largest request body the API takes. The offer travels through Step Functions (256 KB per
# state), the offer and action items (400 KB each) and the stream, with its payment schedule.
MAX_REQUEST_BYTES = 32 * 1024
# Free-form data nests inside the offer item, and DynamoDB allows 32 levels in all.
MAX_EXTRA_DEPTH = 8
DYNAMODB_DIGITS = 38
DYNAMODB_EXPONENTS = range(-130, 126)

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
ActionName = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=100)]


def _storable_number(number: int | float) -> None:
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("not a finite number")
    exact = Decimal(repr(number)) if isinstance(number, float) else Decimal(number)
    if exact and (len(exact.as_tuple().digits) > DYNAMODB_DIGITS or exact.adjusted() not in DYNAMODB_EXPONENTS):
        raise ValueError("number outside what DynamoDB stores (38 significant digits, magnitude 1e-130 to 1e125)")


def storable(value: Any) -> Any:
    """Free-form data (fields the model does not name) must survive every hop it makes: JSON through
    Step Functions and the stream, a DynamoDB map in the offer and action items."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_EXTRA_DEPTH:
                raise ValueError(f"nested deeper than {MAX_EXTRA_DEPTH} levels")
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
        elif isinstance(item, int | float) and not isinstance(item, bool):
            _storable_number(item)
    return value


# Checked before JsonValue's own (recursive) validation, so a deep value fails here, at its field.
ExtraData = Annotated[JsonValue, BeforeValidator(storable)]


RATE_CHANGE = "rateChange"


def _is_rate(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1


class Action(BaseModel):
    """One action of the draft: its name is one of the supported actions (what the fulfillment Lambda
    can perform), and `rateChange` carries the new interest rate in `otherData.newRate`, a decimal
    fraction between 0 and 1 (0.0499 is 4.99 %)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, ExtraData] = Field(init=False)
    name: Annotated[
        ActionName,
        Field(
            description=f"One of the supported actions: {', '.join(SUPPORTED_ACTIONS)}.",
            json_schema_extra={"enum": list(SUPPORTED_ACTIONS)},
        ),
    ]
    offset: Annotated[int, Field(ge=0, le=MAX_OFFSET_DAYS)]

    @field_validator("name")
    @classmethod
    def is_supported(cls, name: str) -> str:
        if name not in SUPPORTED_ACTIONS:
            raise ValueError(f"action {name!r} is not supported; supported actions: {', '.join(SUPPORTED_ACTIONS)}")
        return name

    @model_validator(mode="after")
    def rate_change_has_a_new_rate(self) -> Action:
        if self.name == RATE_CHANGE:
            other = (self.model_extra or {}).get("otherData")
            if not (isinstance(other, dict) and _is_rate(other.get("newRate"))):
                raise ValueError(
                    f"action {RATE_CHANGE!r} needs otherData.newRate: the new interest rate, a number between 0 "
                    "and 1 exclusive (a decimal fraction: 0.0499 is 4.99 %)"
                )
        return self


class ContractDraft(BaseModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, ExtraData] = Field(init=False)
    List: Annotated[list[Action], Field(min_length=1, max_length=MAX_ACTIONS)]

    @field_validator("List")
    @classmethod
    def names_are_unique(cls, actions: list[Action]) -> list[Action]:
        counts = Counter(action.name for action in actions)
        duplicates = sorted(name for name, count in counts.items() if count > 1)
        if duplicates:
            raise ValueError(f"action names must be unique per contract; repeated: {', '.join(duplicates)}")
        return actions


class ContractInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, ExtraData] = Field(init=False)
    product: ShortText
    # At least one cent: the schedule rounds amounts to cents (and DynamoDB stores no 1e-200).
    monthlyPayment: Annotated[float, Field(ge=0.01, le=1_000_000)]  # noqa: N815
    termMonths: Annotated[int, Field(ge=1, le=MAX_TERM_MONTHS)]  # noqa: N815
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"


class EnrollmentRequest(BaseModel):
    """One contract offer: exactly one contract per request."""

    model_config = ConfigDict(extra="forbid")
    contractId: Identifier  # noqa: N815
    accountId: Identifier  # noqa: N815
    contractInfo: ContractInfo  # noqa: N815
    contractDraft: ContractDraft  # noqa: N815
    correlationId: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None  # noqa: N815


def drafted_data(entry: dict[str, Any]) -> dict[str, Any]:
    """An action's free-form data: its draft entry (as the offer item stores it) but its name and offset."""
    return {key: value for key, value in entry.items() if key not in ("name", "offset")}


def split_actions(
    request: EnrollmentRequest, enrollment_date: datetime, offset_unit_seconds: int = SECONDS_PER_DAY
) -> tuple[list[PlannedAction], list[PlannedAction]]:
    """(same-day actions, eventual actions); each eventual action carries its due time. Draft order kept
    for same-day actions; eventual actions sorted by due time."""
    immediate, eventual = [], []
    for action in request.contractDraft.List:
        entry = {
            "name": action.name,
            "offset": action.offset,
            "dueAt": isoformat(due_at(enrollment_date, action.offset, offset_unit_seconds)),
            "data": action.model_extra or {},
        }
        (immediate if action.offset == 0 else eventual).append(entry)
    eventual.sort(key=lambda entry: (entry["offset"], entry["name"]))
    return immediate, eventual


def payment_schedule(request: EnrollmentRequest, enrollment_date: datetime) -> list[Payment]:
    amount = Decimal(str(request.contractInfo.monthlyPayment)).quantize(Decimal("0.01"), ROUND_HALF_UP)
    return [
        {
            "sequence": number,
            "amount": str(amount),
            "currency": request.contractInfo.currency,
            "dueDate": (enrollment_date + timedelta(days=DAYS_PER_PAYMENT_PERIOD * (number - 1))).date().isoformat(),
        }
        for number in range(1, request.contractInfo.termMonths + 1)
    ]
