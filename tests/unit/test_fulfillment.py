"""Fulfillment claims an action before it acts: one effect per action, on its day, only while enrolled.

Effects are counted in the mock downstream table (ActionEffects): one item per idempotency key, and
`calls` counts every call the downstream received with that key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from commonlib.clock import isoformat, parse_isoformat
from enrollment import store
from enrollment.eventual import fulfillment, manage, stream
from enrollment.immediate import offers
from enrollment.store import Tables
from tests.unit.enrollment_fixtures import (
    EXECUTION,
    LEASE,
    OTHER_EXECUTION,
    STARTED,
    FixedClock,
    schedule_hook,
    seed_offer,
)

CONTRACT = "C-1001"


def effects(tables: Tables) -> list[dict[str, Any]]:
    return tables.effects.scan(ConsistentRead=True)["Items"]


def action_item(tables: Tables, name: str) -> dict[str, Any]:
    return tables.actions.get_item(Key={"contractId": CONTRACT, "actionName": name}, ConsistentRead=True)["Item"]


def due_clock(action: dict[str, Any], seconds_after: float = 1) -> FixedClock:
    return FixedClock(parse_isoformat(action["dueAt"]) + timedelta(seconds=seconds_after))


def deliver(tables: Tables, action: dict[str, Any], clock: FixedClock, owner: str = "t1") -> dict[str, Any]:
    return fulfillment.fulfil(tables, CONTRACT, action, "corr", "hook", owner, clock, lease=LEASE)


@pytest.fixture
def rate_change(enrollment_tables: Tables, enrolled: dict[str, Any]) -> dict[str, Any]:
    """The seed's rateChange (offset 16, otherData.newRate 0.0499), its hook scheduled."""
    action = next(a for a in enrolled["eventualActions"] if a["name"] == "rateChange")
    schedule_hook(enrollment_tables, CONTRACT, action)
    return action


def test_every_supported_action_has_a_handler() -> None:
    from enrollment.action_names import SUPPORTED_ACTIONS

    assert set(fulfillment.REGISTRY) == set(SUPPORTED_ACTIONS)


def test_a_hook_delivered_twice_performs_the_effect_once(enrollment_tables: Tables, rate_change: dict) -> None:
    clock = due_clock(rate_change)
    first = deliver(enrollment_tables, rate_change, clock, "t1")
    second = deliver(enrollment_tables, rate_change, clock, "t2")

    assert (first["status"], first["duplicate"]) == ("fulfilled", False)
    assert (second["status"], second["duplicate"]) == ("fulfilled", True)
    [effect] = effects(enrollment_tables)
    assert effect["calls"] == 1, "the second delivery must not call the downstream system"
    assert effect["idempotencyKey"] == f"{CONTRACT}/rateChange/{rate_change['dueAt']}"
    assert (effect["contractId"], effect["actionName"]) == (CONTRACT, "rateChange")


def test_rate_change_sets_the_seeds_new_rate_on_the_contract_in_the_ucp(
    enrollment_tables: Tables, rate_change: dict
) -> None:
    result = deliver(enrollment_tables, rate_change, due_clock(rate_change))

    assert result["result"] == {"effect": "interest rate changed", "newRate": 0.0499}
    contract = store.get_contract(enrollment_tables, "A-100", CONTRACT)
    assert str(contract["interestRate"]) == "0.0499"
    assert contract["rateChange"]["idempotencyKey"] == f"{CONTRACT}/rateChange/{rate_change['dueAt']}"


def test_an_action_is_not_performed_before_its_day(enrollment_tables: Tables, rate_change: dict) -> None:
    result = deliver(enrollment_tables, rate_change, due_clock(rate_change, seconds_after=-60))

    assert result["status"] == "scheduled"
    assert result["reason"] == f"not due until {rate_change['dueAt']}"
    assert effects(enrollment_tables) == []
    assert action_item(enrollment_tables, "rateChange")["state"] == "scheduled"


def test_a_hook_fired_in_its_due_minute_before_the_due_second_performs_the_action(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    """EventBridge Scheduler fires `at(12:00:18)` anywhere in 12:00:00-12:00:59 (60 second precision),
    and deletes the schedule: a hook fired at 12:00:05 must perform the action, not answer it not due."""
    action1 = next(a for a in enrolled["eventualActions"] if a["name"] == "action1")
    due = parse_isoformat(action1["dueAt"]).replace(second=17, microsecond=482000)
    action1 = {**action1, "dueAt": isoformat(due)}
    schedule_hook(enrollment_tables, CONTRACT, action1)

    before_its_minute = deliver(
        enrollment_tables, action1, FixedClock(due.replace(second=0, microsecond=0) - timedelta(milliseconds=1))
    )
    in_its_minute = deliver(enrollment_tables, action1, FixedClock(due.replace(second=5, microsecond=0)), "t2")

    assert (before_its_minute["status"], before_its_minute["reason"]) == (
        "scheduled",
        f"not due until {action1['dueAt']}",
    )
    assert in_its_minute["status"] == "fulfilled"
    [effect] = effects(enrollment_tables)
    assert effect["idempotencyKey"] == f"{CONTRACT}/action1/{action1['dueAt']}"


def test_an_action_of_a_cancelled_contract_is_cancelled_not_performed(
    enrollment_tables: Tables, rate_change: dict
) -> None:
    store.start_cancel(enrollment_tables, CONTRACT, STARTED)

    result = deliver(enrollment_tables, rate_change, due_clock(rate_change))

    assert result["status"] == "cancelled"
    assert effects(enrollment_tables) == []
    item = action_item(enrollment_tables, "rateChange")
    assert (item["state"], item["failureReason"]) == ("cancelled", "not performed: the contract is cancelling")


def test_a_hook_of_an_earlier_enrollment_performs_nothing(enrollment_tables: Tables, rate_change: dict) -> None:
    stale = {**rate_change, "dueAt": "2025-01-01T00:00:00.000Z"}

    result = deliver(enrollment_tables, stale, due_clock(rate_change))

    assert (result["status"], result["duplicate"]) == ("stale", True)
    assert effects(enrollment_tables) == []
    assert action_item(enrollment_tables, "rateChange")["state"] == "scheduled"


def test_a_crash_after_the_effect_is_finished_with_the_same_key_once_the_lease_lapses(
    enrollment_tables: Tables, rate_change: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = due_clock(rate_change)
    real_complete = store.complete_action

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the function died after its effect")

    monkeypatch.setattr(store, "complete_action", crash)
    with pytest.raises(RuntimeError):
        deliver(enrollment_tables, rate_change, clock, "t1")
    monkeypatch.setattr(store, "complete_action", real_complete)
    assert action_item(enrollment_tables, "rateChange")["state"] == "running"

    during_lease = deliver(enrollment_tables, rate_change, clock, "t2")
    assert (during_lease["status"], during_lease["duplicate"]) == ("running", True)
    assert effects(enrollment_tables)[0]["calls"] == 1, "a live claim is never performed by another delivery"

    clock.advance(LEASE.total_seconds() + 1)
    after_lease = deliver(enrollment_tables, rate_change, clock, "t3")

    assert (after_lease["status"], after_lease["duplicate"]) == ("fulfilled", False)
    [effect] = effects(enrollment_tables)
    assert effect["calls"] == 2, "retried with the same idempotency key: the downstream performed it once"
    item = action_item(enrollment_tables, "rateChange")
    assert (item["state"], item["attempts"], item["claimToken"]) == ("fulfilled", 2, "t3")


class Crash(BaseException):
    """The function dies mid-performance (a timeout, out of memory): no handler of the code runs."""


def test_a_claim_is_held_for_the_rest_of_its_invocation_and_the_margin_then_taken_over(
    enrollment_tables: Tables, rate_change: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda stops an invocation at its timeout, so a claim taken with 12 s of it left is never taken
    over before 12 s plus `LEASE_MARGIN`, and is right after."""

    def die_after_the_claim(point: str) -> None:
        if point == "after-claim":
            raise Crash("the function died holding its claim")

    clock = due_clock(rate_change)
    claimed_at = clock()
    lease = fulfillment.lease_for(12_000)
    with monkeypatch.context() as patched:
        patched.setattr(fulfillment.faults, "checkpoint", die_after_the_claim)
        with pytest.raises(Crash):
            fulfillment.fulfil(enrollment_tables, CONTRACT, rate_change, "corr", "hook", "t1", clock, lease=lease)
    held_until = claimed_at + timedelta(seconds=12) + fulfillment.LEASE_MARGIN
    assert action_item(enrollment_tables, "rateChange")["leaseUntil"] == isoformat(held_until)

    clock.advance((held_until - claimed_at).total_seconds() - 1)
    assert deliver(enrollment_tables, rate_change, clock, "t2")["status"] == "running", "still the first one's"
    clock.advance(2)
    taken_over = deliver(enrollment_tables, rate_change, clock, "t3")
    assert (taken_over["status"], taken_over["duplicate"]) == ("fulfilled", False)
    assert action_item(enrollment_tables, "rateChange")["claimToken"] == "t3"


def test_a_delivery_that_crashes_after_its_claim_every_time_ends_failed_after_three_attempts(
    enrollment_tables: Tables, rate_change: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    performed: list[str] = []

    def effect_then_crash(job: fulfillment.Performance) -> dict[str, Any]:
        performed.append(job.idempotency_key)
        job.record_effect()
        raise Crash("the function timed out")

    monkeypatch.setitem(fulfillment.REGISTRY, "rateChange", effect_then_crash)
    clock = due_clock(rate_change)
    for attempt in (1, 2, 3):
        with pytest.raises(Crash):
            deliver(enrollment_tables, rate_change, clock, f"t{attempt}")
        assert action_item(enrollment_tables, "rateChange")["state"] == "running"
        clock.advance(LEASE.total_seconds() + 1)

    fourth = deliver(enrollment_tables, rate_change, clock, "t4")

    assert (fourth["status"], fourth["duplicate"]) == ("failed", False)
    assert fourth["reason"] == (
        "not performed again: 3 attempts claimed it, none completed (the last crashed after its claim)"
    )
    assert len(performed) == 3, "the handler is not run again"
    [effect] = effects(enrollment_tables)
    assert effect["calls"] == 3, "the downstream is not called again"
    item = action_item(enrollment_tables, "rateChange")
    assert (item["state"], item["failureReason"], item["claimToken"]) == ("failed", fourth["reason"], "t4")
    audit = [e for e in enrollment_tables.audit.scan()["Items"] if e["step"] == "action:rateChange"]
    assert [e["outcome"] for e in audit] == ["failed (hook)"]
    assert (deliver(enrollment_tables, rate_change, clock, "t5")["status"]) == "failed", "and it stays failed"


def test_a_rate_change_that_crashes_between_the_ucp_and_its_effect_sets_the_rate_once(
    enrollment_tables: Tables, rate_change: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die_after_the_rate(point: str) -> None:
        if point == "after-rate":
            raise Crash("the function died after setting the rate")

    real_checkpoint = fulfillment.faults.checkpoint
    monkeypatch.setattr(fulfillment.faults, "checkpoint", die_after_the_rate)
    clock = due_clock(rate_change)
    first_attempt = isoformat(clock())
    with pytest.raises(Crash):
        deliver(enrollment_tables, rate_change, clock, "t1")
    monkeypatch.setattr(fulfillment.faults, "checkpoint", real_checkpoint)
    assert effects(enrollment_tables) == []

    clock.advance(LEASE.total_seconds() + 1)
    retried = deliver(enrollment_tables, rate_change, clock, "t2")

    assert (retried["status"], retried["duplicate"]) == ("fulfilled", False)
    key = f"{CONTRACT}/rateChange/{rate_change['dueAt']}"
    contract = store.get_contract(enrollment_tables, "A-100", CONTRACT)
    assert (str(contract["interestRate"]), contract["rateChange"]) == (
        "0.0499",
        {"idempotencyKey": key, "at": first_attempt},
    ), "the retry with the same key does not set the rate again"
    [effect] = effects(enrollment_tables)
    assert (effect["idempotencyKey"], effect["calls"]) == (key, 1)


def test_setting_a_rate_with_another_key_replaces_it_and_the_same_key_changes_nothing(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    from decimal import Decimal

    first = parse_isoformat(enrolled["enrollmentDate"])
    later = first + timedelta(days=1)
    assert store.set_contract_rate(enrollment_tables, "A-100", CONTRACT, Decimal("0.04"), "k1", first) is True
    assert store.set_contract_rate(enrollment_tables, "A-100", CONTRACT, Decimal("0.05"), "k1", later) is False
    contract = store.get_contract(enrollment_tables, "A-100", CONTRACT)
    assert (contract["interestRate"], contract["rateChange"]["at"]) == (Decimal("0.04"), isoformat(first))
    assert store.set_contract_rate(enrollment_tables, "A-100", CONTRACT, Decimal("0.05"), "k2", later) is True
    contract = store.get_contract(enrollment_tables, "A-100", CONTRACT)
    assert (contract["interestRate"], contract["rateChange"]["idempotencyKey"]) == (Decimal("0.05"), "k2")


def test_a_malformed_new_rate_is_reported_by_its_type_never_its_value(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    """X-Ray records a raised exception's message on the trace: it must not carry the offer's data. (The
    intake refuses such a draft; one stored by hand stands for it here.)"""
    action = next(a for a in enrolled["eventualActions"] if a["name"] == "rateChange")
    schedule_hook(enrollment_tables, CONTRACT, action)
    draft = offer_draft(enrollment_tables)
    next(a for a in draft if a["name"] == "rateChange")["otherData"] = {"newRate": "IBAN DE02 1203 0000 0000 2020 51"}
    set_offer_draft(enrollment_tables, draft)

    with pytest.raises(ValueError, match=r"got str$") as raised:
        deliver(enrollment_tables, action, due_clock(action))
    assert "IBAN" not in str(raised.value)
    assert "IBAN" not in action_item(enrollment_tables, "rateChange")["lastError"]


def offer_draft(tables: Tables) -> list[dict[str, Any]]:
    return tables.offers.get_item(Key={"OfferId": CONTRACT})["Item"]["offer"]["contractDraft"]["List"]


def set_offer_draft(tables: Tables, draft: list[dict[str, Any]]) -> None:
    tables.offers.update_item(
        Key={"OfferId": CONTRACT},
        UpdateExpression="SET #offer.contractDraft.#list = :draft",
        ExpressionAttributeNames={"#offer": "offer", "#list": "List"},
        ExpressionAttributeValues={":draft": draft},
    )


def test_a_hook_carries_no_data_and_the_performance_reads_the_offers_draft(
    enrollment_tables: Tables, rate_change: dict
) -> None:
    """Hooks wait in their schedules, then in the dead-letter queue: they carry which action, not its
    data. A payload's `data` (from a hook scheduled before) is ignored: the offer decides."""
    hook_input = json.loads(stream.hook(CONTRACT, "corr", rate_change, STARTED)["targetInput"])
    assert hook_input["action"] == {k: rate_change[k] for k in ("name", "offset", "dueAt")}
    forged = {**rate_change, "data": {"otherData": {"newRate": 0.99}}}

    result = deliver(enrollment_tables, forged, due_clock(rate_change))

    assert result["result"] == {"effect": "interest rate changed", "newRate": 0.0499}
    assert str(store.get_contract(enrollment_tables, "A-100", CONTRACT)["interestRate"]) == "0.0499"


def failed_deliveries(
    tables: Tables, action: dict[str, Any], clock: FixedClock, error: type[Exception]
) -> list[dict[str, Any]]:
    """Two deliveries, a minute apart, whose performance raises `error`: the action's item after each."""
    items = []
    for attempt in (1, 2):
        with pytest.raises(error):
            deliver(tables, action, clock, f"t{attempt}")
        items.append(action_item(tables, action["name"]))
        clock.advance(60)  # the retried delivery
    return items


def test_a_failing_performance_lapses_its_claim_then_fails_on_the_third_attempt(
    enrollment_tables: Tables, rate_change: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def downstream_down(job: fulfillment.Performance) -> dict[str, Any]:
        raise ConnectionError("downstream unavailable at 10.0.0.7")

    monkeypatch.setitem(fulfillment.REGISTRY, "rateChange", downstream_down)
    clock = due_clock(rate_change)
    first_at = clock()
    items = failed_deliveries(enrollment_tables, rate_change, clock, ConnectionError)

    for attempt, item in enumerate(items, start=1):
        failed_at = first_at + timedelta(seconds=60 * (attempt - 1))
        assert (item["state"], item["leaseUntil"], item["attempts"]) == ("running", isoformat(failed_at), attempt)
        assert item["lastError"] == "ConnectionError: downstream unavailable at 10.0.0.7"

    third = deliver(enrollment_tables, rate_change, clock, "t3")

    # A client is shown the error's name; its text, which may name anything, is in the audit trail only.
    assert (third["status"], third["reason"]) == ("failed", "attempt 3: ConnectionError")
    assert action_item(enrollment_tables, "rateChange")["failureReason"] == third["reason"]
    audit = [e for e in enrollment_tables.audit.scan()["Items"] if e["step"] == "action:rateChange"]
    assert [e["outcome"] for e in audit] == ["failed (hook)"]
    assert audit[0]["details"]["error"] == "ConnectionError: downstream unavailable at 10.0.0.7"


def test_a_performance_that_raises_after_its_effect_is_reported_in_flight_by_a_cancel_then_fulfilled(
    enrollment_tables: Tables, rate_change: dict, monkeypatch: pytest.MonkeyPatch, scheduler: Any
) -> None:
    """The rate is set, then the performance raises (its answer lost): a cancel must not record as never
    performed an action that was, and the retried delivery finishes it with the same key."""

    def fail_after_the_rate(point: str) -> None:
        if point == "after-rate":
            raise TimeoutError("the downstream's answer was lost")

    clock = due_clock(rate_change)
    with monkeypatch.context() as patched:
        patched.setattr(fulfillment.faults, "checkpoint", fail_after_the_rate)
        with pytest.raises(TimeoutError):
            deliver(enrollment_tables, rate_change, clock, "t1")

    cancel = manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", CONTRACT, clock)
    clock.advance(60)
    retried = deliver(enrollment_tables, rate_change, clock, "t2")

    assert cancel["outcome"] == "cancelled"
    assert "rateChange" not in cancel["cancelledActions"]
    assert {"name": "rateChange", "state": "running"} in cancel["completedActions"]
    assert retried["status"] == "fulfilled"
    contract = store.get_contract(enrollment_tables, "A-100", CONTRACT)
    assert contract["rateChange"]["idempotencyKey"] == f"{CONTRACT}/rateChange/{rate_change['dueAt']}"
    [effect] = effects(enrollment_tables)
    assert effect["calls"] == 1


def test_a_third_attempt_that_raises_after_its_effect_ends_fulfilled_not_failed(
    enrollment_tables: Tables, enrolled: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    action1 = next(a for a in enrolled["eventualActions"] if a["name"] == "action1")
    schedule_hook(enrollment_tables, CONTRACT, action1)

    def performs_then_raises(job: fulfillment.Performance) -> dict[str, Any]:
        job.record_effect()
        raise TimeoutError("the downstream's answer was lost")

    monkeypatch.setitem(fulfillment.REGISTRY, "action1", performs_then_raises)
    clock = due_clock(action1)
    failed_deliveries(enrollment_tables, action1, clock, TimeoutError)

    third = deliver(enrollment_tables, action1, clock, "t3")

    assert (third["status"], third["result"]) == ("fulfilled", fulfillment.PERFORMED_BEFORE_FAILURE)
    [effect] = effects(enrollment_tables)
    assert effect["idempotencyKey"] == f"{CONTRACT}/action1/{action1['dueAt']}"


def test_an_unregistered_action_ends_failed_with_its_reason(
    enrollment_tables: Tables, enrolled: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The intake refuses such an action; one enrolled before its handler was removed stands for it here.
    monkeypatch.delitem(fulfillment.REGISTRY, "action2")
    same_day = enrolled["immediateActions"][0]

    result = fulfillment.fulfil(
        enrollment_tables, CONTRACT, same_day, "corr", "same-day", "t1", due_clock(same_day), lease=LEASE
    )

    assert (result["status"], result["reason"]) == ("failed", "no handler is registered for action 'action2'")
    assert effects(enrollment_tables) == []


def test_a_same_day_action_is_performed_by_the_immediate_workflow(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    same_day = enrolled["immediateActions"][0]

    result = fulfillment.fulfil(
        enrollment_tables, CONTRACT, same_day, "corr", "same-day", "t1", due_clock(same_day), lease=LEASE
    )

    assert (result["status"], result["result"]) == ("fulfilled", {"effect": "mock action2 performed"})
    assert [e["actionName"] for e in effects(enrollment_tables)] == ["action2"]
    assert action_item(enrollment_tables, "action2")["trigger"] == "same-day"


def test_an_item_of_a_reverted_enrollment_never_runs_for_the_next_one(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    """A revert that crashed before cancelling the eventual items leaves one scheduled; the contract is then
    enrolled again by another execution: the old item's hook must not perform anything."""
    action1 = next(a for a in enrolled["eventualActions"] if a["name"] == "action1")
    schedule_hook(enrollment_tables, CONTRACT, action1)
    enrollment_tables.offers.update_item(
        Key={"OfferId": CONTRACT},
        UpdateExpression="SET #offer.enrollmentDate = :later, executionId = :other",
        ExpressionAttributeNames={"#offer": "offer"},
        ExpressionAttributeValues={":later": isoformat(STARTED + timedelta(hours=1)), ":other": OTHER_EXECUTION},
    )

    result = deliver(enrollment_tables, action1, due_clock(action1))

    assert result["status"] != "fulfilled"
    assert effects(enrollment_tables) == []


def test_a_hook_for_an_action_never_enrolled_is_a_named_audited_rejection(enrollment_tables: Tables) -> None:
    result = fulfillment.fulfil(
        enrollment_tables, "C-404", {"name": "action1", "offset": 3}, "corr", "hook", "t1", lease=LEASE
    )

    assert (result["status"], result["error"], result["name"]) == ("rejected", "ActionNotEnrolled", "action1")
    assert enrollment_tables.actions.scan()["Items"] == []
    [entry] = enrollment_tables.audit.scan()["Items"]
    assert (entry["contractId"], entry["step"], entry["outcome"]) == (
        "_rejected",
        "reject:hook",
        "rejected: ActionNotEnrolled",
    )
    assert entry["details"]["claimed"] == {"contractId": "C-404", "actionName": "action1", "correlationId": "corr"}


def test_cancel_racing_a_claimed_action_reports_it_in_flight_never_both(
    enrollment_tables: Tables, rate_change: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delivery claims, then the cancel runs while the effect is in flight: the cancel reports the
    action among the completed ones and cancels the rest; the delivery completes it."""
    clock = due_clock(rate_change)
    scheduler = NoHooks()
    reports: list[dict[str, Any]] = []

    def cancel_during_effect(job: fulfillment.Performance) -> dict[str, Any]:
        reports.append(manage.cancel_enrollment(enrollment_tables, scheduler, "hooks", CONTRACT, clock))
        return fulfillment.change_rate(job)

    monkeypatch.setitem(fulfillment.REGISTRY, "rateChange", cancel_during_effect)
    result = deliver(enrollment_tables, rate_change, clock)

    [report] = reports
    assert {"name": "rateChange", "state": "running"} in report["completedActions"]
    assert "rateChange" not in report["cancelledActions"]
    assert result["status"] == "fulfilled"
    assert len(effects(enrollment_tables)) == 1
    assert action_item(enrollment_tables, "rateChange")["state"] == "fulfilled"


def _die_holding_the_claim(
    tables: Tables,
    action: dict[str, Any],
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
    patch: Callable[[pytest.MonkeyPatch], None],
) -> None:
    """The first delivery claims the action and dies where `patch` makes it die."""
    with monkeypatch.context() as patched:
        patch(patched)
        with pytest.raises(Crash):
            deliver(tables, action, clock, "t1")


def _cancel_while_a_dead_delivery_holds_the_claim(tables: Tables, clock: FixedClock) -> dict[str, Any]:
    report = manage.cancel_enrollment(tables, NoHooks(), "hooks", CONTRACT, clock)
    assert {"name": "rateChange", "state": "running"} in report["completedActions"], "reported in flight"
    clock.advance(LEASE.total_seconds() + 1)
    return report


def test_a_claim_whose_delivery_died_before_its_effect_is_cancelled_not_performed_after_a_cancel(
    enrollment_tables: Tables, rate_change: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die_before_the_effect(job: fulfillment.Performance) -> dict[str, Any]:
        raise Crash("the function timed out before calling the downstream")

    clock = due_clock(rate_change)
    _die_holding_the_claim(
        enrollment_tables, rate_change, clock, monkeypatch,
        lambda patched: patched.setitem(fulfillment.REGISTRY, "rateChange", die_before_the_effect),
    )  # fmt: skip
    _cancel_while_a_dead_delivery_holds_the_claim(enrollment_tables, clock)

    after_the_cancel = deliver(enrollment_tables, rate_change, clock, "t2")

    assert (after_the_cancel["status"], after_the_cancel["duplicate"]) == ("cancelled", False)
    assert after_the_cancel["reason"].startswith("not performed: the contract is cancelled")
    assert effects(enrollment_tables) == [], "nothing is performed after the cancel"
    contract = store.get_contract(enrollment_tables, "A-100", CONTRACT)
    assert "rateChange" not in contract, "the rate is not changed"
    assert action_item(enrollment_tables, "rateChange")["state"] == "cancelled"
    audit = [e for e in enrollment_tables.audit.scan()["Items"] if e["step"] == "action:rateChange"]
    assert [e["outcome"] for e in audit] == ["cancelled (hook)"]


def test_a_claim_whose_delivery_died_after_its_effect_is_fulfilled_with_the_same_key_after_a_cancel(
    enrollment_tables: Tables, rate_change: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate was set in the UCP before the delivery died: the downstream's lookup by key finds it, and
    the performance is finished (its effect recorded once), never performed anew."""

    def die_after_the_rate(point: str) -> None:
        if point == "after-rate":
            raise Crash("the function died after setting the rate")

    clock = due_clock(rate_change)
    _die_holding_the_claim(
        enrollment_tables, rate_change, clock, monkeypatch,
        lambda patched: patched.setattr(fulfillment.faults, "checkpoint", die_after_the_rate),
    )  # fmt: skip
    set_at = store.get_contract(enrollment_tables, "A-100", CONTRACT)["rateChange"]
    _cancel_while_a_dead_delivery_holds_the_claim(enrollment_tables, clock)

    after_the_cancel = deliver(enrollment_tables, rate_change, clock, "t2")

    assert (after_the_cancel["status"], after_the_cancel["duplicate"]) == ("fulfilled", False)
    contract = store.get_contract(enrollment_tables, "A-100", CONTRACT)
    assert contract["rateChange"] == set_at, "the rate was set once, before the cancel"
    [effect] = effects(enrollment_tables)
    assert (effect["idempotencyKey"], effect["calls"]) == (set_at["idempotencyKey"], 1)
    assert action_item(enrollment_tables, "rateChange")["state"] == "fulfilled"


class NoHooks:
    """A scheduler with no schedule: every delete answers ResourceNotFoundException."""

    def delete_schedule(self, **_: Any) -> None:
        from botocore.exceptions import ClientError

        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "none"}}, "DeleteSchedule")


def test_accept_and_commit_write_same_day_items_with_their_enrollment(enrollment_tables: Tables) -> None:
    offer = offers.acquire(enrollment_tables, seed_offer(), EXECUTION, STARTED, clock=FixedClock())["offer"]
    offers.verify_customer(enrollment_tables, offer, EXECUTION)
    offers.commit_enrollment(enrollment_tables, offer, EXECUTION, {"rulesVersion": "v"})

    assert action_item(enrollment_tables, "action2")["enrollmentDate"] == offer["enrollmentDate"]
