"""What crosses the state machines' boundary is typed (`enrollment.steps`) and checked once, at the
handler's edge: the sample events and every step's real results fit their types; a malformed event is
refused by name before anything is read or written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enrollment import steps
from enrollment.eventual import stream
from enrollment.immediate import handlers as immediate_handlers
from enrollment.immediate import offers, publisher, rules
from enrollment.store import Tables
from tests.unit.enrollment_fixtures import EXECUTION, STARTED, FixedClock, seed_offer

EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"
SAMPLE_EVENTS = {
    "accept-offer": steps.AcceptOfferEvent,
    "verify-customer": steps.OfferStepEvent,
    "rules-lab": steps.RulesLabEvent,
    "record-outcome": steps.RecordOutcomeEvent,
    "commit-enrollment": steps.CommitEvent,
    "revert-enrollment": steps.RevertEvent,
    "publish-enrollment": steps.PublishEvent,
}


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.mark.parametrize(("name", "kind"), sorted(SAMPLE_EVENTS.items()))
def test_each_sample_event_fits_its_step_type(name: str, kind: Any) -> None:
    event = sample(name)
    assert steps.validated(kind, event) is event


def test_a_malformed_offer_is_refused_naming_each_field() -> None:
    event = sample("verify-customer")
    event["offer"] = {**event["offer"], "contractId": 7, "payments": [{"sequence": True}]}
    del event["offer"]["accountId"]

    with pytest.raises(steps.InvalidStepEventError) as refused:
        steps.validated(steps.OfferStepEvent, event)

    assert {error["field"]: error["message"] for error in refused.value.errors} == {
        "offer.contractId": "expected str, got int",
        "offer.accountId": "missing",
        "offer.payments[0].sequence": "expected int, got bool",
        "offer.payments[0].amount": "missing",
        "offer.payments[0].currency": "missing",
        "offer.payments[0].dueDate": "missing",
    }


def test_optional_keys_may_be_missing_and_unknown_keys_pass() -> None:
    event = {**sample("record-outcome"), "addedByStepFunctions": 1}
    del event["reason"], event["rulesVersion"]

    assert steps.validated(steps.RecordOutcomeEvent, event) is event
    with pytest.raises(steps.InvalidStepEventError, match="status"):
        steps.validated(steps.RecordOutcomeEvent, {**event, "status": None})


def test_a_handler_refuses_a_malformed_event_before_it_reads_a_table(lambda_context: Any) -> None:
    # No tables exist here: the check comes first, and names what is wrong.
    with pytest.raises(steps.InvalidStepEventError) as refused:
        immediate_handlers.commit_enrollment({"offer": sample("commit-enrollment")["offer"]}, lambda_context)

    assert [error["field"] for error in refused.value.errors] == ["executionId", "eligibility"]


def test_every_immediate_step_returns_its_type(enrollment_tables: Tables) -> None:
    accepted = offers.acquire(enrollment_tables, seed_offer(), EXECUTION, STARTED, clock=FixedClock())
    steps.validated(steps.Acceptance, accepted)
    offer = steps.validated(steps.Offer, accepted["offer"])
    verified = steps.validated(steps.Verification, offers.verify_customer(enrollment_tables, offer, EXECUTION))
    facts = rules.facts(offer["contractInfo"], offer["contractDraft"], verified["account"])
    eligibility = steps.validated(steps.Eligibility, rules.evaluate(facts, rules.load_rules()))
    committed = offers.commit_enrollment(enrollment_tables, offer, EXECUTION, eligibility)
    steps.validated(steps.Commitment, committed)
    steps.validated(steps.Reversal, offers.revert_enrollment(enrollment_tables, offer, EXECUTION, "E: cause"))
    recorded = offers.record_outcome(enrollment_tables, offer, EXECUTION, "failed", "failure", "E: cause")
    steps.validated(steps.OutcomeRecorded, recorded)
    refused = offers.acquire(enrollment_tables, {"contractId": "C-1"}, EXECUTION, STARTED)
    assert steps.validated(steps.Acceptance, refused)["outcome"] == "invalid"


def test_the_async_workflow_input_fits_its_type(enrolled: dict[str, Any]) -> None:
    record = stream.StreamRecord.model_validate(publisher.stream_record(enrolled, "2026-01-31T12:00:01.000Z"))
    workflow_input = json.loads(json.dumps(stream.async_workflow_input(record, STARTED)))

    assert steps.validated(steps.AsyncWorkflowInput, workflow_input)["hooks"]
    for hook in workflow_input["hooks"]:
        steps.validated(steps.ScheduleHookEvent, {"contractId": record.contractId, "hook": hook})
