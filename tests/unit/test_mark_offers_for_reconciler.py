"""scripts/mark_offers_for_reconciler.py: on a stack deployed before the marks, the offers that still need the
reconciler are marked (and then repaired by it), the settled ones are not, and running it again marks nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import mark_offers_for_reconciler as script

from enrollment import store
from enrollment.eventual import hooks, reconcile
from enrollment.store import Tables
from tests.unit.enrollment_fixtures import STARTED, FixedClock, RecordingStepFunctions

CONFIRMED = {"executionName": "run", "startedAt": "2026-01-31T12:00:00.000Z", "confirmedAt": "2026-01-31T12:00:01.000Z"}


def put_offer(tables: Tables, contract_id: str, status: str, **attributes: Any) -> None:
    tables.offers.put_item(Item={"OfferId": contract_id, "status": status, **attributes})


def put_action(tables: Tables, contract_id: str, state: str) -> None:
    tables.actions.put_item(
        Item={"contractId": contract_id, "actionName": "action1", "state": state, "dueAt": "2026-02-03T12:00:00.000Z"}
    )


def unmarked(tables: Tables, contract_id: str) -> None:
    """As a stack deployed before the marks left it."""
    tables.offers.update_item(Key={"OfferId": contract_id}, UpdateExpression="REMOVE watch, watchedSince")


def test_only_the_offers_that_still_need_the_reconciler_are_marked_once(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    unmarked(enrollment_tables, "C-1001")  # enrolled, its eventual workflow never confirmed
    put_offer(enrollment_tables, "C-CONFIRMED", "enrolled", eventualWorkflow=CONFIRMED)
    put_offer(enrollment_tables, "C-FLAGGED", "enrolled", eventualWorkflow=CONFIRMED, firstPaymentNotStarted="t")
    put_offer(enrollment_tables, "C-CANCELLING", "cancelling")
    put_offer(enrollment_tables, "C-REVERTED-OPEN", "failed")
    put_action(enrollment_tables, "C-REVERTED-OPEN", "scheduled")
    put_offer(enrollment_tables, "C-REVERTED-DONE", "failed")
    put_action(enrollment_tables, "C-REVERTED-DONE", "cancelled")
    put_offer(enrollment_tables, "C-INELIGIBLE", "ineligible")

    first = script.mark(enrollment_tables, STARTED)
    again = script.mark(enrollment_tables, STARTED + timedelta(minutes=1))

    assert sorted(first["marked"]) == ["C-1001", "C-CANCELLING", "C-FLAGGED", "C-REVERTED-OPEN"]
    assert (again["marked"], sorted(again["alreadyMarked"])) == ([], sorted(first["marked"]))
    assert store.get_offer(enrollment_tables, "C-1001")["watchedSince"] == "2026-01-31T12:00:00.000Z"
    assert "watch" not in store.get_offer(enrollment_tables, "C-CONFIRMED")


def test_a_dry_run_marks_nothing(enrollment_tables: Tables, enrolled: dict[str, Any]) -> None:
    unmarked(enrollment_tables, "C-1001")

    assert script.mark(enrollment_tables, STARTED, dry_run=True)["marked"] == ["C-1001"]
    assert "watch" not in store.get_offer(enrollment_tables, "C-1001")


def test_the_reconciler_repairs_an_offer_once_it_is_marked(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    unmarked(enrollment_tables, "C-1001")
    settings = reconcile.Settings(
        grace=timedelta(seconds=30),
        offset_unit_seconds=86400,
        async_state_machine_arn="arn:sm",
        hook_target=hooks.HookTarget("enrollment-hooks", "arn:f", "arn:r", "arn:q"),
    )
    later = FixedClock(STARTED + timedelta(minutes=5))
    stepfunctions = RecordingStepFunctions()

    unseen = reconcile.reconcile(enrollment_tables, scheduler, stepfunctions, settings, later)
    script.mark(enrollment_tables, STARTED)
    seen = reconcile.reconcile(enrollment_tables, scheduler, stepfunctions, settings, later)

    assert (unseen["redriven"], seen["redriven"]) == ([], ["C-1001 (after no start)"])
