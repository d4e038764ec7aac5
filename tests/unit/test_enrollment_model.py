from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from commonlib.errors import InvalidInputError
from commonlib.validation import parse
from enrollment import model
from enrollment.action_names import SUPPORTED_ACTIONS
from tests.unit.enrollment_fixtures import seed_offer


def errors_for(body: Any) -> list[str]:
    with pytest.raises(InvalidInputError) as raised:
        parse(model.EnrollmentRequest, body)
    return sorted(error["field"] for error in raised.value.errors)


def test_seed_offer_is_valid() -> None:
    request = parse(model.EnrollmentRequest, seed_offer())
    assert [a.name for a in request.contractDraft.List] == ["rateChange", "action1", "action2", "action100"]
    assert request.contractDraft.List[0].model_extra == {"otherData": {"newRate": 0.0499}}


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        ({"contractId": ""}, ["contractId"]),
        ({"contractId": "has space"}, ["contractId"]),
        ({"contractId": 7}, ["contractId"]),
        ({"accountId": None}, ["accountId"]),
        ({"contractInfo": "x"}, ["contractInfo"]),
        ({"contractInfo": {"product": "settlement"}}, ["contractInfo.monthlyPayment", "contractInfo.termMonths"]),
        ({"contractDraft": {}}, ["contractDraft.List"]),
        ({"contractDraft": {"List": []}}, ["contractDraft.List"]),
        ({"contractDraft": {"List": [{"name": "action1", "offset": -1}]}}, ["contractDraft.List.0.offset"]),
        ({"contractDraft": {"List": [{"name": "action1", "offset": 1.5}]}}, ["contractDraft.List.0.offset"]),
        ({"contractDraft": {"List": [{"name": "action1", "offset": "3"}]}}, ["contractDraft.List.0.offset"]),
        ({"contractDraft": {"List": [{"name": "action1", "offset": True}]}}, ["contractDraft.List.0.offset"]),
        (
            {"contractDraft": {"List": [{"name": "action1", "offset": model.MAX_OFFSET_DAYS + 1}]}},
            ["contractDraft.List.0.offset"],
        ),
        ({"contractDraft": {"List": [{"offset": 1}]}}, ["contractDraft.List.0.name"]),
        (
            {"contractDraft": {"List": [{"name": "action1", "offset": 1}, {"name": "action1", "offset": 2}]}},
            ["contractDraft.List"],
        ),
        (
            {"contractDraft": {"List": [{"name": f"a{i}", "offset": 1} for i in range(model.MAX_ACTIONS + 1)]}},
            ["contractDraft.List"],
        ),
        ({"unexpected": 1}, ["unexpected"]),
    ],
)
def test_each_offending_field_is_named(changes: dict[str, Any], fields: list[str]) -> None:
    assert errors_for(seed_offer(**changes)) == fields


def test_missing_everything_names_every_required_field() -> None:
    assert errors_for({}) == ["accountId", "contractDraft", "contractId", "contractInfo"]


def test_split_by_offset_with_due_dates() -> None:
    request = parse(model.EnrollmentRequest, seed_offer())
    enrolled = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)

    immediate, eventual = model.split_actions(request, enrolled)

    assert [a["name"] for a in immediate] == ["action2"]
    assert [(a["name"], a["dueAt"]) for a in eventual] == [
        ("action100", "2026-02-01T12:00:00.000Z"),
        ("action1", "2026-02-03T12:00:00.000Z"),
        ("rateChange", "2026-02-16T12:00:00.000Z"),
    ]
    assert eventual[-1]["data"] == {"otherData": {"newRate": 0.0499}}


@pytest.mark.parametrize(
    ("enrolled", "offset", "due"),
    [
        (datetime(2028, 2, 28, 23, 30, tzinfo=UTC), 1, datetime(2028, 2, 29, 23, 30, tzinfo=UTC)),  # leap day
        (datetime(2027, 2, 28, 23, 30, tzinfo=UTC), 1, datetime(2027, 3, 1, 23, 30, tzinfo=UTC)),
        (datetime(2026, 12, 31, 0, 0, tzinfo=UTC), 1, datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        (datetime(2026, 1, 31, 8, 0, tzinfo=UTC), 30, datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),  # month ends
    ],
)
def test_due_dates_are_whole_utc_days(enrolled: datetime, offset: int, due: datetime) -> None:
    assert model.due_at(enrolled, offset) == due


def test_time_compression_shortens_a_day() -> None:
    enrolled = datetime(2026, 1, 1, tzinfo=UTC)
    assert model.due_at(enrolled, 16, offset_unit_seconds=3) == datetime(2026, 1, 1, 0, 0, 48, tzinfo=UTC)


def test_payment_schedule_rounds_and_spaces_payments() -> None:
    request = parse(
        model.EnrollmentRequest,
        seed_offer(contractInfo={"product": "settlement", "monthlyPayment": 10.005, "termMonths": 3}),
    )
    schedule = model.payment_schedule(request, datetime(2026, 1, 31, tzinfo=UTC))
    assert schedule == [
        {"sequence": 1, "amount": "10.01", "currency": "USD", "dueDate": "2026-01-31"},
        {"sequence": 2, "amount": "10.01", "currency": "USD", "dueDate": "2026-03-02"},
        {"sequence": 3, "amount": "10.01", "currency": "USD", "dueDate": "2026-04-01"},
    ]


# ---------------------------------------------------------------- only actions that can be performed


def messages_for(body: Any) -> dict[str, str]:
    with pytest.raises(InvalidInputError) as raised:
        parse(model.EnrollmentRequest, body)
    return {error["field"]: error["message"] for error in raised.value.errors}


def test_the_seed_input_is_accepted_with_the_supported_actions() -> None:
    request = parse(model.EnrollmentRequest, seed_offer())
    assert {a.name for a in request.contractDraft.List} == set(SUPPORTED_ACTIONS)
    assert SUPPORTED_ACTIONS == ("rateChange", "action1", "action2", "action100")


@pytest.mark.parametrize("name", ["teleport", "foo", "RateChange", "action3", "action1.", "action10"])
def test_an_action_without_a_handler_is_refused_by_name(name: str) -> None:
    offer = seed_offer()
    offer["contractDraft"]["List"][1]["name"] = name

    assert messages_for(offer) == {
        "contractDraft.List.1.name": (
            f"Value error, action '{name}' is not supported; supported actions: rateChange, action1, action2, action100"
        )
    }


def test_every_unsupported_action_is_named() -> None:
    offer = seed_offer(contractDraft={"List": [{"name": "teleport", "offset": 1}, {"name": "fly", "offset": 2}]})
    messages = messages_for(offer)
    assert sorted(messages) == ["contractDraft.List.0.name", "contractDraft.List.1.name"]
    assert "'teleport'" in messages["contractDraft.List.0.name"]
    assert "'fly'" in messages["contractDraft.List.1.name"]


@pytest.mark.parametrize(
    "rate_change",
    [
        {"name": "rateChange", "offset": 16},
        {"name": "rateChange", "offset": 16, "otherData": None},
        {"name": "rateChange", "offset": 16, "otherData": {}},
        {"name": "rateChange", "offset": 16, "otherData": {"newRate": "0.0499"}},
        {"name": "rateChange", "offset": 16, "otherData": {"newRate": None}},
        {"name": "rateChange", "offset": 16, "otherData": {"newRate": True}},
        {"name": "rateChange", "offset": 16, "otherData": {"newRate": 0}},
        {"name": "rateChange", "offset": 16, "otherData": {"newRate": 1}},
        {"name": "rateChange", "offset": 16, "otherData": {"newRate": 4.99}},  # a percentage, not a fraction
        {"name": "rateChange", "offset": 16, "otherData": {"newRate": -0.01}},
        {"name": "rateChange", "offset": 16, "newRate": 0.0499},  # not under otherData
    ],
)
def test_rate_change_without_a_new_rate_is_refused(rate_change: dict[str, Any]) -> None:
    offer = seed_offer()
    offer["contractDraft"]["List"][0] = rate_change

    messages = messages_for(offer)

    assert list(messages) == ["contractDraft.List.0"]
    assert "'rateChange' needs otherData.newRate" in messages["contractDraft.List.0"]


@pytest.mark.parametrize("rate", [0.0499, 0.5, 0.999, 1e-9])
def test_rate_change_with_a_new_rate_is_accepted(rate: float) -> None:
    offer = seed_offer()
    offer["contractDraft"]["List"][0] = {"name": "rateChange", "offset": 16, "otherData": {"newRate": rate}}
    request = parse(model.EnrollmentRequest, offer)
    assert request.contractDraft.List[0].model_extra == {"otherData": {"newRate": rate}}


def test_the_request_schema_lists_the_supported_actions() -> None:
    name = model.Action.model_json_schema()["properties"]["name"]
    assert name["enum"] == list(SUPPORTED_ACTIONS)
    assert all(action in name["description"] for action in SUPPORTED_ACTIONS)
    assert "otherData.newRate" in model.Action.model_json_schema()["description"]
