"""Cancel finishes whatever interrupts it; the reconciler repairs what a single fault leaves behind."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from commonlib.clock import isoformat, parse_isoformat
from commonlib.errors import ConditionNotMetError
from enrollment import store
from enrollment.eventual import fulfillment, hooks, manage, reconcile, stream
from enrollment.immediate import offers, publisher
from enrollment.store import Tables
from enrollment.store.ucp import contract_key
from tests.support.invariants import ucp_contracts
from tests.unit.enrollment_fixtures import (
    EVENTS,
    EXECUTION,
    LEASE,
    STARTED,
    FixedClock,
    OneRunPerName,
    RecordingStepFunctions,
    schedule_hook,
)

CONTRACT = "C-1001"
GROUP = "enrollment-hooks"
GRACE = timedelta(seconds=30)
TARGET = hooks.HookTarget(
    GROUP,
    "arn:aws:lambda:us-east-1:123456789012:function:F",
    "arn:aws:iam::123456789012:role/r",
    "arn:aws:sqs:us-east-1:123456789012:dlq",
)
SETTINGS = reconcile.Settings(
    grace=GRACE, offset_unit_seconds=86400, async_state_machine_arn="arn:sm", hook_target=TARGET
)
LATER = STARTED + timedelta(minutes=5)
# action1 (3 days) due within the grace, action100 (1 day) and the same-day action2 overdue; rateChange (16
# days) not yet due: a run then looks at every action but rateChange.
DUE = STARTED + timedelta(days=3) - GRACE / 2


def hook_names(scheduler: Any) -> list[str]:
    return sorted(s["Name"] for s in scheduler.list_schedules(GroupName=GROUP)["Schedules"])


def hook_input(scheduler: Any, contract_id: str, action_name: str) -> dict[str, Any]:
    schedule = scheduler.get_schedule(GroupName=GROUP, Name=hooks.schedule_name(contract_id, action_name))
    return json.loads(schedule["Target"]["Input"])


def offer_item(tables: Tables) -> dict[str, Any]:
    return tables.offers.get_item(Key={"OfferId": CONTRACT}, ConsistentRead=True)["Item"]


def action_state(tables: Tables, name: str) -> str:
    return tables.actions.get_item(Key={"contractId": CONTRACT, "actionName": name}, ConsistentRead=True)["Item"][
        "state"
    ]


def run(tables: Tables, scheduler: Any, stepfunctions: Any = None, at: datetime = LATER, **changes: Any) -> dict:
    settings = reconcile.Settings(**{**vars(SETTINGS), **changes})
    return reconcile.reconcile(tables, scheduler, stepfunctions or RecordingStepFunctions(), settings, FixedClock(at))


def start_workflow(tables: Tables, enrolled: dict[str, Any], stepfunctions: Any) -> None:
    """What DataLambda does: claim the start, start the async run (which schedules nothing here)."""
    record = stream.StreamRecord.model_validate(publisher.stream_record(enrolled, isoformat(STARTED)))
    stream.start_eventual_workflow(tables, stepfunctions, "arn:sm", record, FixedClock(STARTED))


def confirm(tables: Tables) -> None:
    tables.offers.update_item(
        Key={"OfferId": CONTRACT},
        UpdateExpression="SET eventualWorkflow.confirmedAt = :now",
        ExpressionAttributeValues={":now": isoformat(STARTED)},
    )


# ---------------------------------------------------------------- cancel


class FlakyScheduler:
    """The moto scheduler, whose `fail_at`-th delete fails once (after the earlier ones happened)."""

    def __init__(self, scheduler: Any, fail_at: int) -> None:
        self.scheduler, self.fail_at, self.deletes = scheduler, fail_at, 0

    def delete_schedule(self, **kwargs: Any) -> Any:
        self.deletes += 1
        if self.deletes == self.fail_at:
            raise ConnectionError("scheduler unreachable")
        return self.scheduler.delete_schedule(**kwargs)


def revert_offer(tables: Tables) -> None:
    """The offer as a revert's transaction leaves it (`failed`, marked for the reconciler), its actions and
    hooks untouched."""
    tables.offers.update_item(
        Key={"OfferId": CONTRACT},
        UpdateExpression="SET #status = :failed, watch = :watching, watchedSince = :at",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":failed": "failed", ":watching": "reconcile", ":at": isoformat(STARTED)},
    )


def schedule_all(tables: Tables, scheduler: Any, enrolled: dict[str, Any]) -> None:
    for action in enrolled["eventualActions"]:
        schedule_hook(tables, CONTRACT, action)
        hooks.create_hook(scheduler, TARGET, stream.hook(CONTRACT, "corr", action, STARTED))


@pytest.mark.parametrize("interrupted_at", ["second hook", "ucp", "final transaction"])
def test_an_interrupted_cancel_is_finished_by_its_retry_with_the_same_answer(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any, monkeypatch: pytest.MonkeyPatch,
    interrupted_at: str,
) -> None:  # fmt: skip
    schedule_all(enrollment_tables, scheduler, enrolled)
    flaky = FlakyScheduler(scheduler, fail_at=2 if interrupted_at == "second hook" else 0)
    broken = {"ucp": "cancel_ucp_contract", "final transaction": "finish_cancel"}.get(interrupted_at)
    if broken:
        monkeypatch.setattr(store, broken, lambda *a, **k: (_ for _ in ()).throw(ConnectionError("DynamoDB down")))

    with pytest.raises(ConnectionError):
        manage.cancel_enrollment(enrollment_tables, flaky, GROUP, CONTRACT)
    assert offer_item(enrollment_tables)["status"] == "cancelling"
    monkeypatch.undo()

    answer = manage.cancel_enrollment(enrollment_tables, scheduler, GROUP, CONTRACT)

    assert answer == {
        "outcome": "cancelled",
        "cancelledActions": ["action2", "action100", "action1", "rateChange"],
        "completedActions": [],
    }
    assert manage.cancel_enrollment(enrollment_tables, scheduler, GROUP, CONTRACT) == answer
    assert hook_names(scheduler) == []
    item = offer_item(enrollment_tables)
    assert item["status"] == "cancelled"
    assert store.get_contract(enrollment_tables, "A-100", CONTRACT)["status"] == "cancelled"
    cancels = [e for e in store.audit_trail(enrollment_tables, CONTRACT) if e["step"] == "cancel"]
    assert len(cancels) == 1


def set_ucp_contracts(tables: Tables, contracts: dict[str, Any]) -> None:
    """Account A-100 holds exactly `contracts` (contract id: its item's attributes) in the UCP."""
    for contract_id in ucp_contracts(tables.ucp.scan()["Items"], "A-100"):
        tables.ucp.delete_item(Key=contract_key("A-100", contract_id))
    for contract_id, attributes in contracts.items():
        tables.ucp.put_item(Item=contract_key("A-100", contract_id) | attributes)


def test_a_contract_the_ucp_lost_is_cancelled_and_its_audit_entry_says_the_ucp_had_no_entry(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """The UCP lost the contract's item (deleted, or a restore from before it): the cancel completes
    instead of failing forever."""
    schedule_all(enrollment_tables, scheduler, enrolled)
    set_ucp_contracts(enrollment_tables, {})

    answer = manage.cancel_enrollment(enrollment_tables, scheduler, GROUP, CONTRACT)

    assert answer["outcome"] == "cancelled"
    assert offer_item(enrollment_tables)["status"] == "cancelled"
    assert hook_names(scheduler) == []
    [cancel] = [e for e in store.audit_trail(enrollment_tables, CONTRACT) if e["step"] == "cancel"]
    assert cancel["outcome"].endswith("; the UCP had no entry for the contract")
    assert cancel["details"]["ucpEntry"] == "absent"
    assert store.get_contract(enrollment_tables, "A-100", CONTRACT) is None, "nothing made up"
    assert manage.cancel_enrollment(enrollment_tables, scheduler, GROUP, CONTRACT) == answer


def test_a_cancel_the_reconciler_finishes_completes_when_the_ucp_lost_the_contract(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    confirm_start(enrollment_tables)
    store.start_cancel(enrollment_tables, CONTRACT, STARTED)
    set_ucp_contracts(enrollment_tables, {})

    assert run(enrollment_tables, scheduler)["cancelsFinished"] == [CONTRACT]
    assert offer_item(enrollment_tables)["status"] == "cancelled"


@pytest.mark.parametrize(
    ("contracts", "refusal"),
    [({CONTRACT: {"status": "suspended"}}, "holds contract C-1001 as 'suspended'"), (None, "has no account A-100")],
)
def test_a_cancel_fails_when_the_ucp_holds_the_contract_in_another_state_or_lost_the_account(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any, contracts: Any, refusal: str
) -> None:
    from commonlib.errors import ConditionNotMetError

    if contracts is None:  # the account and every item it held
        set_ucp_contracts(enrollment_tables, {})
        enrollment_tables.ucp.delete_item(Key={"accountId": "A-100", "recordId": "account"})
    else:
        set_ucp_contracts(enrollment_tables, contracts)

    with pytest.raises(ConditionNotMetError, match=refusal):
        manage.cancel_enrollment(enrollment_tables, scheduler, GROUP, CONTRACT)

    assert offer_item(enrollment_tables)["status"] == "cancelling", "its retry finds it to finish"
    assert not [e for e in store.audit_trail(enrollment_tables, CONTRACT) if e["step"] == "cancel"]


def test_a_cancel_nobody_retries_is_finished_by_the_reconciler(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    confirm_start(enrollment_tables)
    store.start_cancel(enrollment_tables, CONTRACT, STARTED)

    report = run(enrollment_tables, scheduler)

    assert report["cancelsFinished"] == [CONTRACT]
    assert offer_item(enrollment_tables)["status"] == "cancelled"


def confirm_start(tables: Tables) -> None:
    store.mark_eventual_workflow(tables, CONTRACT, isoformat(STARTED), "run", STARTED)
    confirm(tables)


# ---------------------------------------------------------------- the eventual workflow's start


def enrolled_unmarked(tables: Tables) -> None:
    """The offer as the commit leaves it (enrolled at STARTED), with no start marked on it since."""
    tables.offers.update_item(
        Key={"OfferId": CONTRACT},
        UpdateExpression="SET enrolledAt = :at",
        ExpressionAttributeValues={":at": isoformat(STARTED)},
    )


def test_an_enrollment_whose_eventual_workflow_never_started_is_redriven_from_the_offer(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """DataLambda died (or the stream lost the record) before any start: nothing marks the offer."""
    stepfunctions = RecordingStepFunctions()
    enrolled_unmarked(enrollment_tables)

    report = run(enrollment_tables, scheduler, stepfunctions)

    assert report["redriven"] == [f"{CONTRACT} (after no start)"]
    [start] = stepfunctions.starts
    hooks_planned = json.loads(start["input"])["hooks"]
    assert [(h["actionName"], h["dueAt"]) for h in hooks_planned] == [
        (a["name"], a["dueAt"]) for a in enrolled["eventualActions"]
    ]
    last = enrolled["eventualActions"][-1]
    assert json.loads(hooks_planned[-1]["targetInput"])["action"] == {k: last[k] for k in ("name", "offset", "dueAt")}
    assert offer_item(enrollment_tables)["eventualWorkflow"]["executionName"] == start["name"]


def test_a_re_drive_never_takes_the_first_start_s_name(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """The offer has no mark, but the first start's name is taken: that run started after all, its answer
    lost and its claim given back, so it could not confirm. Where a name admits one run (the local
    emulator), a re-drive under that name would be refused on every run of the reconciler."""
    stepfunctions = OneRunPerName()
    record = stream.StreamRecord.model_validate(publisher.stream_record(enrolled, isoformat(STARTED)))
    stepfunctions.start_execution(stateMachineArn="arn:sm", name=stream.execution_name(record), input="{}")
    enrolled_unmarked(enrollment_tables)

    report = run(enrollment_tables, scheduler, stepfunctions)

    assert report["redriven"] == [f"{CONTRACT} (after no start)"]
    [_, redrive] = stepfunctions.starts
    assert redrive["name"].startswith(f"{CONTRACT}-redrive-")
    assert offer_item(enrollment_tables)["eventualWorkflow"]["executionName"] == redrive["name"]


def test_a_claimed_start_that_never_confirmed_is_redriven_once(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """DataLambda claimed the start and died before StartExecution (or the run failed or timed out)."""
    store.mark_eventual_workflow(enrollment_tables, CONTRACT, isoformat(STARTED), "died", STARTED)
    stepfunctions = RecordingStepFunctions()

    first = run(enrollment_tables, scheduler, stepfunctions)
    second = run(enrollment_tables, scheduler, stepfunctions, at=LATER + timedelta(seconds=1))

    assert first["redriven"] == [f"{CONTRACT} (after died)"]
    assert second["redriven"] == [], "the re-driven run has its grace to confirm"
    assert len(stepfunctions.starts) == 1
    assert offer_item(enrollment_tables)["eventualWorkflow"]["executionName"].startswith(f"{CONTRACT}-redrive-")


def test_a_run_that_confirms_while_the_reconciler_re_drives_it_is_not_undone(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run the reconciler read as unconfirmed confirms before the re-drive replaces its mark, and
    another run of the reconciler (one by hand beside the scheduled one) finds the offer settled and
    unmarks it. The re-drive is refused: replacing the confirmed mark would leave an unconfirmed offer
    that no run looks at any more."""
    store.mark_eventual_workflow(enrollment_tables, CONTRACT, isoformat(STARTED), "slow", STARTED)
    real_mark = store.mark_eventual_workflow

    def confirmed_and_swept_meanwhile(*args: Any, **kwargs: Any) -> None:
        monkeypatch.setattr(store, "mark_eventual_workflow", real_mark)
        confirm(enrollment_tables)
        run(enrollment_tables, scheduler)  # the other run: settled, unmarked
        real_mark(*args, **kwargs)

    monkeypatch.setattr(store, "mark_eventual_workflow", confirmed_and_swept_meanwhile)
    stepfunctions = RecordingStepFunctions()

    report = run(enrollment_tables, scheduler, stepfunctions)

    assert (report["redriven"], stepfunctions.starts) == ([], [])
    assert (report["redrivesRefused"], report["repairs"]) == ([f"{CONTRACT} (AlreadyStarted)"], 0)
    assert offer_item(enrollment_tables)["eventualWorkflow"]["confirmedAt"] == isoformat(STARTED)
    assert watched(enrollment_tables) == []


def test_a_confirmed_workflow_and_its_live_hooks_are_left_alone(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    confirm_start(enrollment_tables)
    schedule_all(enrollment_tables, scheduler, enrolled)
    enrollment_tables.actions.update_item(
        Key={"contractId": CONTRACT, "actionName": "action2"},
        UpdateExpression="SET #state = :fulfilled",
        ExpressionAttributeNames={"#state": "state"},
        ExpressionAttributeValues={":fulfilled": "fulfilled"},
    )

    report = run(enrollment_tables, scheduler)

    assert report["repairs"] == 0, report


# ---------------------------------------------------------------- hooks and claims


def test_a_scheduled_action_whose_hook_was_lost_gets_it_back(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    confirm_start(enrollment_tables)
    schedule_all(enrollment_tables, scheduler, enrolled)
    scheduler.delete_schedule(GroupName=GROUP, Name=hooks.schedule_name(CONTRACT, "action1"))
    # The same-day action's delivery failed too: it is still pending past its day.

    report = run(enrollment_tables, scheduler, at=DUE)

    assert sorted(report["hooksRecreated"]) == [f"{CONTRACT}/action1 (scheduled)", f"{CONTRACT}/action2 (pending)"]
    action1 = next(a for a in enrolled["eventualActions"] if a["name"] == "action1")
    assert hook_input(scheduler, CONTRACT, "action1")["action"]["dueAt"] == action1["dueAt"]
    assert hook_input(scheduler, CONTRACT, "action2")["action"]["name"] == "action2"
    assert run(enrollment_tables, scheduler, at=DUE)["hooksRecreated"] == [], "repairs once"


class CountingScheduler:
    """The moto scheduler, counting the schedules read."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler, self.reads = scheduler, 0

    def get_schedule(self, **kwargs: Any) -> Any:
        self.reads += 1
        return self.scheduler.get_schedule(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scheduler, name)


def test_a_run_asks_the_scheduler_only_about_actions_due_within_its_grace(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """A run's work follows the actions due lately, never every action scheduled: a hook lost long before
    its day is looked for (and re-created) when its action comes within the grace of its due time."""
    confirm_start(enrollment_tables)
    schedule_all(enrollment_tables, scheduler, enrolled)
    scheduler.delete_schedule(GroupName=GROUP, Name=hooks.schedule_name(CONTRACT, "rateChange"))
    counting = CountingScheduler(scheduler)

    before = run(enrollment_tables, counting, at=DUE)
    reads_before = counting.reads
    rate_change_due = parse_isoformat(
        next(a for a in enrolled["eventualActions"] if a["name"] == "rateChange")["dueAt"]
    )
    when_due = run(enrollment_tables, counting, at=rate_change_due - GRACE / 2)

    # action2 (none), action1 and action100 (live) were looked for; rateChange, 13 days from due, was not.
    assert (before["hooksRecreated"], reads_before) == ([f"{CONTRACT}/action2 (pending)"], 3)
    assert when_due["hooksRecreated"] == [f"{CONTRACT}/rateChange (scheduled)"]
    assert hook_input(scheduler, CONTRACT, "rateChange")["action"]["dueAt"] == isoformat(rate_change_due)


def test_a_claim_whose_delivery_crashed_gets_a_hook_once_its_lease_lapsed(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    confirm_start(enrollment_tables)
    same_day = enrolled["immediateActions"][0]
    store.claim_action(
        enrollment_tables, CONTRACT, "action2", {"state": "pending", **same_day}, "crashed", STARTED, GRACE, LATER
    )

    during = run(enrollment_tables, scheduler, at=STARTED + GRACE - timedelta(seconds=1))
    after = run(enrollment_tables, scheduler, at=STARTED + GRACE + timedelta(seconds=1))

    assert during["hooksRecreated"] == []
    assert after["hooksRecreated"] == [f"{CONTRACT}/action2 (running)"]
    assert action_state(enrollment_tables, "action2") == "running", "the hook's delivery takes the claim over"


def test_a_lapsed_claim_of_a_cancelled_contract_keeps_the_hook_that_settles_it_without_performing(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """A delivery died holding its claim, then the contract was cancelled: the re-created hook is kept
    (not deleted as a cancelled contract's), and its delivery settles the claim: nothing performed."""
    confirm_start(enrollment_tables)
    same_day = enrolled["immediateActions"][0]
    store.claim_action(
        enrollment_tables, CONTRACT, "action2", {"state": "pending", **same_day}, "crashed", STARTED, GRACE, LATER
    )
    manage.cancel_enrollment(enrollment_tables, scheduler, GROUP, CONTRACT, FixedClock(STARTED))
    assert offer_item(enrollment_tables)["status"] == "cancelled"

    report = run(enrollment_tables, scheduler)

    assert report["hooksRecreated"] == [f"{CONTRACT}/action2 (running)"]
    assert report["hooksDeleted"] == []
    assert hook_names(scheduler) == [hooks.schedule_name(CONTRACT, "action2")]
    delivery = hook_input(scheduler, CONTRACT, "action2")
    settled = fulfillment.fulfil(
        enrollment_tables, CONTRACT, delivery["action"], "corr", "hook", "t2", FixedClock(LATER), lease=LEASE
    )
    assert settled["status"] == "cancelled"
    assert enrollment_tables.effects.scan()["Items"] == []


def test_a_reverted_contracts_waiting_actions_are_cancelled_and_its_hooks_deleted(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """The publication reached the stream although its answer was lost: the eventual workflow scheduled the
    hooks, then the immediate workflow reverted the enrollment (and crashed before cancelling them)."""
    schedule_all(enrollment_tables, scheduler, enrolled)
    revert_offer(enrollment_tables)

    report = run(enrollment_tables, scheduler)

    assert len(report["actionsCancelled"]) == 4
    assert len(report["hooksDeleted"]) == 3
    assert hook_names(scheduler) == []
    assert {a["state"] for a in enrollment_tables.actions.scan()["Items"]} == {"cancelled"}


def test_a_reverted_contract_is_unmarked_once_nothing_of_it_is_left_and_is_read_no_more(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    schedule_all(enrollment_tables, scheduler, enrolled)
    revert_offer(enrollment_tables)

    run(enrollment_tables, scheduler)

    assert watched(enrollment_tables) == []
    assert run(enrollment_tables, scheduler, at=LATER + GRACE)["repairs"] == 0


def test_no_hook_is_deleted_once_a_later_offer_has_taken_the_reverted_contract(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run read the offer `failed`; before it deletes the hooks, the client's retry took the contract
    and enrolled it anew (its hooks have the same names). The run reads the offer again and keeps them."""
    schedule_all(enrollment_tables, scheduler, enrolled)
    revert_offer(enrollment_tables)
    real_contract_actions = store.contract_actions

    def then_a_later_offer_enrolls(tables: Tables, contract_id: str) -> dict[str, Any]:
        items = real_contract_actions(tables, contract_id)
        tables.offers.update_item(
            Key={"OfferId": CONTRACT},
            UpdateExpression="SET #status = :enrolled, executionId = :later",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":enrolled": "enrolled", ":later": "arn:later-run"},
        )
        return items

    monkeypatch.setattr(store, "contract_actions", then_a_later_offer_enrolls)

    report = run(enrollment_tables, scheduler)

    assert report["hooksDeleted"] == []
    assert len(hook_names(scheduler)) == 3
    assert report["actionsCancelled"] == [], "each cancel was refused: the offer is no longer as read"


def test_a_dry_run_reports_and_changes_nothing(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    stepfunctions = RecordingStepFunctions()
    store.start_cancel(enrollment_tables, CONTRACT, STARTED)

    report = run(enrollment_tables, scheduler, stepfunctions, dry_run=True)

    assert report["cancelsFinished"] == [CONTRACT]
    assert offer_item(enrollment_tables)["status"] == "cancelling"
    assert stepfunctions.starts == []


def test_the_revert_cancels_every_action_so_a_late_eventual_workflow_schedules_none(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    offers.revert_enrollment(enrollment_tables, enrolled, EXECUTION, "publish uncertain")

    states = {a["actionName"]: a["state"] for a in enrollment_tables.actions.scan()["Items"]}
    assert states == dict.fromkeys(["action2", "action100", "action1", "rateChange"], "cancelled")


def test_the_reconciler_never_runs_an_item_of_an_earlier_enrollment(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    confirm_start(enrollment_tables)
    schedule_hook(enrollment_tables, CONTRACT, enrolled["eventualActions"][0])
    enrollment_tables.offers.update_item(
        Key={"OfferId": CONTRACT},
        UpdateExpression="SET #offer.enrollmentDate = :later",
        ExpressionAttributeNames={"#offer": "offer"},
        ExpressionAttributeValues={":later": isoformat(datetime(2026, 3, 1, tzinfo=UTC))},
    )
    enrollment_tables.actions.delete_item(Key={"contractId": CONTRACT, "actionName": "action2"})

    report = run(enrollment_tables, scheduler, at=DUE)

    assert report["hooksRecreated"] == []
    # Waiting, due and without a hook, it can never be claimed: it is cancelled, never left waiting.
    assert report["actionsCancelled"] == [f"{CONTRACT}/action100 (an earlier enrollment)"]
    item = enrollment_tables.actions.get_item(Key={"contractId": CONTRACT, "actionName": "action100"})["Item"]
    assert (item["state"], item["failureReason"]) == (
        "cancelled",
        "not performed: an earlier enrollment of the contract",
    )
    assert run(enrollment_tables, scheduler, at=DUE)["repairs"] == 0


def test_a_repair_that_fails_does_not_stop_the_others_and_fails_the_run(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    confirm_start(enrollment_tables)
    schedule_all(enrollment_tables, scheduler, enrolled)
    for name in ("action1", "action100"):
        scheduler.delete_schedule(GroupName=GROUP, Name=hooks.schedule_name(CONTRACT, name))
    real_create = hooks.create_hook

    def scheduler_throttles_action1(client: Any, target: Any, hook: dict[str, Any]) -> dict[str, Any]:
        if hook["actionName"] == "action1":
            from commonlib.errors import TransientDependencyError

            raise TransientDependencyError("CreateSchedule failed: ThrottlingException")
        return real_create(client, target, hook)

    monkeypatch.setattr(hooks, "create_hook", scheduler_throttles_action1)

    with pytest.raises(reconcile.ReconcileError, match="action1") as failed:
        run(enrollment_tables, scheduler, at=DUE)

    assert hook_names(scheduler) == sorted(
        hooks.schedule_name(CONTRACT, name) for name in ("action100", "action2", "rateChange")
    ), "the other repairs were made"
    assert action_state(enrollment_tables, "action1") == "scheduled", "a transient failure fails no action"
    assert f"{CONTRACT}/action100 (scheduled)" in failed.value.details["report"]["hooksRecreated"]


def test_a_schedule_in_the_hooks_group_that_is_no_hook_is_reported_left_alone_and_the_sweep_goes_on(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    schedule_all(enrollment_tables, scheduler, enrolled)
    foreign = ["daily-report", "daily.report"]
    for name in foreign:
        scheduler.create_schedule(
            GroupName=GROUP,
            Name=name,
            ScheduleExpression="rate(1 day)",
            FlexibleTimeWindow={"Mode": "OFF"},
            Target={"Arn": TARGET.function_arn, "RoleArn": TARGET.role_arn, "Input": "{}"},
        )
    revert_offer(enrollment_tables)

    report = run(enrollment_tables, scheduler, sweep_hooks=True)

    assert sorted(report["foreignSchedules"]) == foreign
    assert len(report["hooksDeleted"]) == 3, "the hooks after the foreign schedules are repaired too"
    assert hook_names(scheduler) == foreign, "never deleted"
    assert report["repairs"] == len(report["hooksDeleted"]) + len(report["actionsCancelled"])


# ---------------------------------------------------------------- what a run reads


def watched(tables: Tables) -> list[str]:
    """The offers marked for the reconciler, whenever marked."""
    return [item["OfferId"] for item in store.watched_offers(tables, marked_before=datetime(2100, 1, 1, tzinfo=UTC))]


def test_the_commit_a_cancel_and_a_revert_mark_the_offer_for_the_reconciler(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    assert offer_item(enrollment_tables)["watchedSince"] == isoformat(STARTED), "the commit"
    store.unwatch(enrollment_tables, CONTRACT, "enrolled", isoformat(STARTED))
    assert watched(enrollment_tables) == []

    store.start_cancel(enrollment_tables, CONTRACT, LATER)
    assert (watched(enrollment_tables), offer_item(enrollment_tables)["watchedSince"]) == ([CONTRACT], isoformat(LATER))

    # The revert's mark (the same transaction that fails the offer), on a fresh enrollment.
    store.unwatch(enrollment_tables, CONTRACT, "cancelling", isoformat(LATER))
    enrollment_tables.offers.update_item(
        Key={"OfferId": CONTRACT},
        UpdateExpression="SET #status = :enrolled",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":enrolled": "enrolled"},
    )
    offers.revert_enrollment(enrollment_tables, enrolled, EXECUTION, "publish uncertain", clock=FixedClock(DUE))
    assert (watched(enrollment_tables), offer_item(enrollment_tables)["watchedSince"]) == ([CONTRACT], isoformat(DUE))


def test_a_settled_offer_is_unmarked_and_read_by_no_later_run(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    confirm_start(enrollment_tables)
    during_grace = run(enrollment_tables, scheduler, at=STARTED + GRACE / 2)
    assert watched(enrollment_tables) == [CONTRACT], "within its grace, not looked at"

    run(enrollment_tables, scheduler)

    assert during_grace["repairs"] == 0
    assert watched(enrollment_tables) == []
    assert "watch" not in offer_item(enrollment_tables)


def test_an_offer_stays_marked_while_its_eventual_workflow_is_unconfirmed(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    stepfunctions = RecordingStepFunctions()
    run(enrollment_tables, scheduler, stepfunctions)  # re-driven: the run has not confirmed yet
    run(enrollment_tables, scheduler, stepfunctions, at=LATER + timedelta(seconds=1))

    assert len(stepfunctions.starts) == 1
    assert watched(enrollment_tables) == [CONTRACT]

    confirm(enrollment_tables)
    run(enrollment_tables, scheduler, stepfunctions, at=LATER + 2 * GRACE)
    assert (watched(enrollment_tables), len(stepfunctions.starts)) == ([], 1)


def test_a_mark_set_after_the_run_read_the_offer_is_kept(enrollment_tables: Tables, enrolled: dict[str, Any]) -> None:
    """A cancel (or a first payment not started) marks the offer while a run judges it settled: the run's
    unmark is refused, and the next run looks at the offer again."""
    read_by_the_run = offer_item(enrollment_tables)
    store.start_cancel(enrollment_tables, CONTRACT, LATER)

    assert not store.unwatch(enrollment_tables, CONTRACT, "enrolled", read_by_the_run["watchedSince"])
    assert watched(enrollment_tables) == [CONTRACT]


def test_a_waiting_action_is_cancelled_only_while_its_offer_is_as_the_reconciler_read_it(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    """A reverted contract's later offer took it and enrolled meanwhile: the action is the new
    enrollment's, not a leftover to cancel."""
    entry = store.audit_entry(CONTRACT, "action:action2", "cancelled: contract failed", "reconcile", LATER)

    with pytest.raises(ConditionNotMetError):
        store.cancel_waiting_action(enrollment_tables, CONTRACT, "action2", "failed", "not performed", entry, LATER)

    assert action_state(enrollment_tables, "action2") == "pending"


# ---------------------------------------------------------------- a crash after any of its writes


class Crash(BaseException):
    """The function dies right after a write (a timeout, out of memory): no code of it runs on."""


def crash_after_first_call(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> None:
    real = getattr(owner, name)

    def write_then_die(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(owner, name, real)
        real(*args, **kwargs)
        raise Crash(f"died after {name}")

    monkeypatch.setattr(owner, name, write_then_die)


def failed_contract(tables: Tables, scheduler: Any, enrolled: dict[str, Any]) -> None:
    schedule_all(tables, scheduler, enrolled)
    revert_offer(tables)


def lost_hooks(tables: Tables, scheduler: Any, enrolled: dict[str, Any]) -> None:
    confirm_start(tables)
    schedule_all(tables, scheduler, enrolled)
    scheduler.delete_schedule(GroupName=GROUP, Name=hooks.schedule_name(CONTRACT, "action1"))


def unschedulable(tables: Tables, scheduler: Any, enrolled: dict[str, Any]) -> None:
    confirm_start(tables)
    schedule_hook(tables, CONTRACT, enrolled["eventualActions"][0])


def interrupted_cancel(tables: Tables, scheduler: Any, enrolled: dict[str, Any]) -> None:
    confirm_start(tables)
    schedule_all(tables, scheduler, enrolled)
    store.start_cancel(tables, CONTRACT, STARTED)


def unconfirmed_start(tables: Tables, scheduler: Any, enrolled: dict[str, Any]) -> None:
    store.mark_eventual_workflow(tables, CONTRACT, isoformat(STARTED), "died", STARTED)


ALL_FOUR = ["action2", "action100", "action1", "rateChange"]
# (what the first run finds, the write it dies right after, what holds once the next run has repaired it)
CRASHES = {
    "action cancelled": (failed_contract, (store, "cancel_waiting_action"), {"states": "cancelled", "hooks": 0}),
    "hook deleted": (failed_contract, (manage, "delete_schedule"), {"states": "cancelled", "hooks": 0}),
    "hook re-created": (lost_hooks, (hooks, "create_hook"), {"hooks": 4}),
    "action failed": (unschedulable, (store, "fail_unscheduled_action"), {"states": "failed", "hooks": 0}),
    "cancel step": (interrupted_cancel, (manage, "delete_schedule"), {"states": "cancelled", "hooks": 0}),
    "re-drive claimed": (unconfirmed_start, (store, "mark_eventual_workflow"), {"starts": 1}),
}


@pytest.mark.parametrize("write", list(CRASHES))
def test_a_reconciler_that_dies_after_any_write_is_finished_by_its_next_run(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any, monkeypatch: pytest.MonkeyPatch,
    write: str,
) -> None:  # fmt: skip
    setup, (owner, name), expected = CRASHES[write]
    setup(enrollment_tables, scheduler, enrolled)
    if write == "action failed":
        scheduler_refuses_every_hook(monkeypatch)
    stepfunctions = RecordingStepFunctions()
    crash_after_first_call(monkeypatch, owner, name)
    with pytest.raises(Crash):
        run(enrollment_tables, scheduler, stepfunctions, at=DUE)

    # Past the grace of what the dead run left (a re-drive it claimed but never started), and of action1's
    # due time (a hook that fired moments ago is not looked for).
    later = DUE + 2 * GRACE + timedelta(seconds=1)
    run(enrollment_tables, scheduler, stepfunctions, at=later)

    states = {a["actionName"]: a["state"] for a in enrollment_tables.actions.scan()["Items"]}
    if "states" in expected:
        assert states == dict.fromkeys([a for a in ALL_FOUR if a in states], expected["states"]), states
        assert "action2" in states
    if "hooks" in expected:
        assert len(hook_names(scheduler)) == expected["hooks"]
    if "starts" in expected:
        [start] = stepfunctions.starts
        assert offer_item(enrollment_tables)["eventualWorkflow"]["executionName"] == start["name"]
    if write == "cancel step":
        assert offer_item(enrollment_tables)["status"] == "cancelled"
    assert run(enrollment_tables, scheduler, stepfunctions, at=later + timedelta(seconds=1))["repairs"] == 0


# ---------------------------------------------------------------- the function


@pytest.fixture
def reconcile_function(
    enrollment_tables: Tables, scheduler: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Any:
    """The Reconcile function's handler over the moto tables and scheduler; its earlier output dropped."""
    from commonlib import aws as aws_clients

    monkeypatch.setenv("RECONCILE_GRACE_SECONDS", str(int(GRACE.total_seconds())))
    monkeypatch.setenv("ENROLLMENT_ASYNC_STATE_MACHINE_ARN", "arn:sm")
    monkeypatch.setenv("SCHEDULE_GROUP_NAME", GROUP)
    monkeypatch.setenv("FULFILL_ACTION_FUNCTION_ARN", TARGET.function_arn)
    monkeypatch.setenv("SCHEDULER_ROLE_ARN", TARGET.role_arn)
    monkeypatch.setenv("HOOK_DEAD_LETTER_QUEUE_ARN", TARGET.dead_letter_queue_arn)
    aws_clients.client.cache_clear()
    store.environment_tables.cache_clear()
    from enrollment.eventual import handlers

    capsys.readouterr()
    return handlers.reconcile


def emitted_metrics(capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    """The metrics the function printed (its EMF documents), summed by name."""
    metrics: dict[str, float] = {}
    for line in capsys.readouterr().out.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        for definition in document.get("_aws", {}).get("CloudWatchMetrics", [{}])[0].get("Metrics", []):
            value = document[definition["Name"]]
            metrics[definition["Name"]] = metrics.get(definition["Name"], 0) + sum(
                value if isinstance(value, list) else [value]
            )
    return metrics


def scheduler_refuses_every_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hook's name is held by another schedule: no run can ever create one."""

    def refused(*_: Any, **__: Any) -> Any:
        raise hooks.ScheduleNameConflictError("schedule C-1001.x in group enrollment-hooks is another hook's")

    monkeypatch.setattr(hooks, "create_hook", refused)


def test_actions_the_reconciler_fails_are_counted_in_the_action_failed_metric(
    enrollment_tables: Tables, enrolled: dict[str, Any], reconcile_function: Any, lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    confirm_start(enrollment_tables)
    schedule_hook(enrollment_tables, CONTRACT, enrolled["eventualActions"][0])  # no hook: it was lost
    scheduler_refuses_every_hook(monkeypatch)

    report = reconcile_function({"source": "aws.events"}, lambda_context)

    # The same-day action2 (pending past its day) and the lost hook's action: neither gets a hook back.
    assert len(report["actionsFailed"]) == 2
    assert {action_state(enrollment_tables, a) for a in ("action2", enrolled["eventualActions"][0]["name"])} == {
        "failed"
    }
    assert emitted_metrics(capsys)["ActionFailed"] == 2
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == ["actions failed"]
    # A client reading the action sees the error's name; the audit trail has its text, and no entry
    # claims a hook was re-created.
    item = enrollment_tables.actions.get_item(Key={"contractId": CONTRACT, "actionName": "action2"})["Item"]
    assert item["failureReason"] == "the hook could not be re-created: ScheduleNameConflictError"
    outcomes = [e["outcome"] for e in store.audit_trail(enrollment_tables, CONTRACT) if e["step"] == "reconcile"]
    assert (
        "hook for action2 not re-created, action failed: ScheduleNameConflictError: schedule C-1001.x in "
        "group enrollment-hooks is another hook's" in outcomes
    )
    assert not any(outcome.startswith("hook re-created") for outcome in outcomes)


@pytest.mark.parametrize("state", ["pending", "running"])
def test_a_hook_the_scheduler_refuses_for_a_configuration_fault_fails_the_run_not_the_action(
    enrollment_tables: Tables, enrolled: dict[str, Any], reconcile_function: Any, lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], state: str,
) -> None:  # fmt: skip
    """A denied call or a missing schedule group says nothing about the action: failing it could not be
    undone once the fault is fixed. The run fails (its errors alarm), and the action waits for the next
    run as it was; a `running` one, whose claim a takeover must settle, likewise."""
    from commonlib.errors import DependencyError

    confirm_start(enrollment_tables)
    if state == "running":
        same_day = enrolled["immediateActions"][0]
        store.claim_action(
            enrollment_tables, CONTRACT, "action2", {"state": "pending", **same_day}, "died", STARTED, GRACE, LATER
        )

    def denied(*_: Any, **__: Any) -> Any:
        raise DependencyError("CreateSchedule failed: AccessDeniedException: not authorized to perform iam:PassRole")

    monkeypatch.setattr(hooks, "create_hook", denied)

    with pytest.raises(reconcile.ReconcileError, match="AccessDeniedException") as failed:
        reconcile_function({"source": "aws.events"}, lambda_context)

    assert action_state(enrollment_tables, "action2") == state
    assert failed.value.details["report"]["hooksRecreated"] == []
    assert failed.value.details["report"]["actionsFailed"] == []
    assert "ActionFailed" not in emitted_metrics(capsys)


def test_a_running_action_whose_hook_name_is_taken_fails_the_run(
    enrollment_tables: Tables, enrolled: dict[str, Any], reconcile_function: Any, lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Only its claim's owner or a takeover ends a running action: the reconciler cannot fail it, so it
    must not pass over it in silence either."""
    confirm_start(enrollment_tables)
    same_day = enrolled["immediateActions"][0]
    store.claim_action(
        enrollment_tables, CONTRACT, "action2", {"state": "pending", **same_day}, "died", STARTED, GRACE, LATER
    )
    scheduler_refuses_every_hook(monkeypatch)

    with pytest.raises(reconcile.ReconcileError, match="ScheduleNameConflictError"):
        reconcile_function({"source": "aws.events"}, lambda_context)

    assert action_state(enrollment_tables, "action2") == "running"


def test_a_run_that_fails_still_counts_the_actions_it_failed(
    enrollment_tables: Tables, enrolled: dict[str, Any], reconcile_function: Any, lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    confirm_start(enrollment_tables)
    scheduler_refuses_every_hook(monkeypatch)  # action2 (pending past its day) is failed
    monkeypatch.setattr(manage, "delete_schedule", lambda *_: (_ for _ in ()).throw(ConnectionError("down")))
    hooks_of_a_reverted_contract = "C-2002.aaaaaaaaaaaaaaaaaaaaaaa"
    boto3.client("scheduler", region_name="us-east-1").create_schedule(
        GroupName=GROUP,
        Name=hooks_of_a_reverted_contract,
        ScheduleExpression="rate(1 day)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET.function_arn, "RoleArn": TARGET.role_arn, "Input": "{}"},
    )

    with pytest.raises(reconcile.ReconcileError):
        reconcile_function({"sweepHooks": True}, lambda_context)

    assert emitted_metrics(capsys)["ActionFailed"] == 1


def test_a_dry_run_counts_no_failed_action(
    enrollment_tables: Tables, enrolled: dict[str, Any], reconcile_function: Any, lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    confirm_start(enrollment_tables)
    scheduler_refuses_every_hook(monkeypatch)

    report = reconcile_function({"dryRun": True}, lambda_context)

    assert report["hooksRecreated"] == [f"{CONTRACT}/action2 (pending)"]
    assert action_state(enrollment_tables, "action2") == "pending"
    assert "ActionFailed" not in emitted_metrics(capsys)


def test_the_function_logs_a_warning_naming_each_foreign_schedule(
    enrollment_tables: Tables, reconcile_function: Any, scheduler: Any, lambda_context: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    scheduler.create_schedule(
        GroupName=GROUP,
        Name="daily-report",
        ScheduleExpression="rate(1 day)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"Arn": TARGET.function_arn, "RoleArn": TARGET.role_arn, "Input": "{}"},
    )

    sweep_hooks = json.loads((EVENTS / "reconcile-sweep-hooks.json").read_text())  # the sample event

    report = reconcile_function(sweep_hooks, lambda_context)

    assert (report["foreignSchedules"], report["repairs"]) == (["daily-report"], 0)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [getattr(r, "schedule", None) for r in warnings] == ["daily-report"]
