"""The reconciler: finds what a single fault left behind on the eventual path, and repairs it.

It runs on a schedule (the `Reconcile` function's EventBridge rule) and on demand (invoke the function;
`{"dryRun": true}` only reports). Each repair is idempotent and guarded by the same conditional writes
as the normal path, so running it twice, or beside the normal path, changes nothing more.

A run reads what happened lately, never every contract: the offers marked for it (`store.watched_offers`:
the commit, a cancel, a revert and an unstarted first payment mark the offer) and the open actions due
by the end of its grace (`store.actions_due`). Once a fault has had `grace` to clear by itself, it repairs:

- an enrolled contract whose eventual workflow never confirmed (DataLambda died after its claim, the
  async run failed or timed out): its workflow is re-driven from the offer item, never from the
  execution (AWS does not describe EXPRESS executions);
- a contract left `cancelling` (its cancel was interrupted and not retried): the cancel is finished;
- a waiting action due without a live hook (its hook was lost, or its delivery failed before its claim)
  and a `running` action whose lease lapsed (its delivery crashed, or its performance raised, after the
  claim): a hook is created that fires when due, and the delivery claims (or takes over) the action. A
  hook lost long before its day is found when its action comes within the grace of its due time;
- a contract reverted or cancelled: its waiting actions are cancelled and their hooks deleted, except
  the hook of an action still `running` (its delivery settles the claim: it performs nothing new for
  a contract that left `enrolled`);
- an enrolled contract whose first payment the immediate workflow could not start (it recorded so on
  the offer): the payment is started, under the name that admits one.

An offer found settled (enrolled and confirmed, or with nothing of it left open) is unmarked. A waiting
action whose hook can never be created (its name is another schedule's) is failed with the reason
(`actionsFailed`: the function counts them in the `ActionFailed` metric, which alarms); any other error
creating a hook fails the run (its errors alarm) and leaves the action for the next run. Every repair
is audited on its contract (`reconcile`) and counted in the answer. On demand, `{"sweepHooks": true}`
also lists every schedule of the hooks' group: a hook of a contract not enrolled is deleted, and a
schedule whose name is no hook's is reported (`foreignSchedules`) and left alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from commonlib.clock import Clock, isoformat, parse_isoformat, utc_now
from commonlib.errors import ConditionNotMetError, DomainError, aws_errors_as_domain_errors, map_client_error
from enrollment import store
from enrollment.eventual import hooks, manage, stream
from enrollment.store import Tables


@dataclass(frozen=True)
class Settings:
    grace: timedelta
    offset_unit_seconds: int
    async_state_machine_arn: str
    hook_target: hooks.HookTarget
    dry_run: bool = False
    # On demand only: list every schedule of the hooks' group (its cost grows with the hooks pending).
    sweep_hooks: bool = False
    payment_state_machine_arn: str | None = None  # None: PaymentDestination none, no payment to start


@dataclass
class Report:
    redriven: list[str] = field(default_factory=list)
    cancelsFinished: list[str] = field(default_factory=list)  # noqa: N815
    hooksRecreated: list[str] = field(default_factory=list)  # noqa: N815
    actionsCancelled: list[str] = field(default_factory=list)  # noqa: N815
    actionsFailed: list[str] = field(default_factory=list)  # noqa: N815
    hooksDeleted: list[str] = field(default_factory=list)  # noqa: N815
    paymentsStarted: list[str] = field(default_factory=list)  # noqa: N815
    # Schedules in the hooks' group whose names are no hook's: reported, never deleted (not ours to judge).
    foreignSchedules: list[str] = field(default_factory=list)  # noqa: N815
    # Re-drives whose claim was refused, with why: a start, a confirmation or a cancel came first (the next
    # run reads the offer again), or, when it repeats run after run, a mark that no re-drive may replace.
    redrivesRefused: list[str] = field(default_factory=list)  # noqa: N815

    def repairs(self) -> int:
        return sum(len(found) for name, found in vars(self).items() if name not in NOT_REPAIRS)


NOT_REPAIRS = ("foreignSchedules", "redrivesRefused")


def reconcile(
    tables: Tables, scheduler: Any, stepfunctions: Any, settings: Settings, clock: Clock = utc_now
) -> dict[str, Any]:
    now = clock()
    report = Report()
    failures: list[str] = []

    def attempt(what: str, repair: Any, *args: Any) -> bool:
        """One repair; a failing one is reported and the sweep goes on (the run raises at its end)."""
        try:
            repair(*args)
        except Exception as error:  # re-raised below, after the other repairs
            failures.append(f"{what}: {type(error).__name__}: {error}")
            return False
        return True

    offers: dict[str, dict[str, Any] | None] = {}
    for watched in store.watched_offers(tables, marked_before=now - settings.grace):
        contract_id = watched["OfferId"]
        offers[contract_id] = offer = store.get_offer(tables, contract_id)  # the index lags the table
        if offer is not None and offer.get(store.WATCHED_SINCE):
            check = (tables, scheduler, stepfunctions, settings, offer, report, clock, attempt)
            attempt(contract_id, _check_offer, *check)  # its repairs are attempts of their own
    # The hook of a `running` action settles its claim whatever its contract is now (a delivery that
    # died holding it before a cancel): kept below, where other hooks of a contract not enrolled go.
    settling: set[str] = set()
    for action in _open_actions(tables, now + settings.grace):
        contract_id = action["contractId"]
        if contract_id not in offers:
            offers[contract_id] = store.get_offer(tables, contract_id)
        label = f"{contract_id}/{action['actionName']}"
        if action["state"] == store.ACTION_RUNNING:
            settling.add(hooks.schedule_name(contract_id, action["actionName"]))
        attempt(label, _check_action, tables, scheduler, settings, offers[contract_id], action, report, clock)
    if settings.sweep_hooks:
        _sweep_hooks(tables, scheduler, settings, offers, settling, report, attempt)
    if failures:
        raise ReconcileError(f"{len(failures)} repairs failed: " + "; ".join(failures)[:2000], report=vars(report))
    return {"dryRun": settings.dry_run, "repairs": report.repairs(), **vars(report)}


def _open_actions(tables: Tables, due_before: datetime) -> Any:
    """The actions a run judges: every claimed one (a lapsed lease), and the waiting ones due within the
    grace, or before (overdue). A hook lost long before its day is found when its action comes due, so a
    run's work follows the actions due lately, never every action scheduled."""
    yield from store.actions_due(tables, store.ACTION_RUNNING, due_before)
    for state in store.ACTION_WAITING:
        yield from store.actions_due(tables, state, due_before)


def _check_offer(
    tables: Tables,
    scheduler: Any,
    stepfunctions: Any,
    settings: Settings,
    offer: dict[str, Any],
    report: Report,
    clock: Clock,
    attempt: Any,
) -> None:
    """One offer marked for the reconciler: repaired as it needs, and unmarked once nothing is left to do."""
    now, contract_id, status = clock(), offer["OfferId"], offer["status"]
    settled = True
    if status == store.ENROLLED:
        workflow = offer.get("eventualWorkflow") or {}
        # A first payment not started is the reconciler's to start, unless payments are only recorded.
        payment_left = "firstPaymentNotStarted" in offer and settings.payment_state_machine_arn is not None
        settled = bool(workflow.get("confirmedAt")) and not payment_left
        if _unconfirmed(offer, now, settings.grace):
            attempt(contract_id, _redrive, tables, stepfunctions, settings, offer, report, clock)
        if _older(offer.get("firstPaymentNotStarted"), now, settings.grace):
            payment = (tables, stepfunctions, settings, offer, report, clock)
            attempt(f"{contract_id} payment", _start_first_payment, *payment)
    elif status == store.CANCELLING:
        settled = False
        if _older(offer.get("cancelRequestedAt"), now, settings.grace):
            attempt(contract_id, _finish_cancel, tables, scheduler, settings, offer, report, clock)
    elif status in (store.FAILED, store.CANCELLED):
        undone = attempt(contract_id, _undo_leftovers, tables, scheduler, settings, offer, report, clock)
        # Settled once no action of it is open: a claimed one's delivery settles it first.
        settled = undone and all(
            item["state"] in store.ACTION_DONE for item in store.contract_actions(tables, contract_id).values()
        )
    # Any other status: a later offer of the contract took it over (its commit marks it anew).
    if settled and not settings.dry_run:
        attempt(contract_id, store.unwatch, tables, contract_id, status, offer[store.WATCHED_SINCE])


def _undo_leftovers(
    tables: Tables, scheduler: Any, settings: Settings, offer: dict[str, Any], report: Report, clock: Clock
) -> None:
    """A contract reverted or cancelled: its waiting actions are cancelled and their hooks deleted (a late
    stream record of a reverted enrollment may have scheduled them). A claimed action keeps its hook: its
    delivery settles the claim without performing anything."""
    contract_id, status, now = offer["OfferId"], offer["status"], clock()
    items = store.contract_actions(tables, contract_id)
    for name, item in sorted(items.items()):
        if item["state"] in store.ACTION_WAITING:
            _cancel_waiting(tables, settings, contract_id, offer, name, report, now)
    if settings.dry_run:
        return
    # Read again just before deleting: a hook of a later enrollment of the contract is not a leftover. (A
    # delete cannot be conditional; one that still meets such a hook only delays its action, which the
    # next run re-creates once due.)
    current = store.get_offer(tables, contract_id) or {}
    if (current.get("status"), current.get("executionId")) != (status, offer.get("executionId")):
        return
    names = set(items) | {action["name"] for action in stream.draft_actions(offer, settings.offset_unit_seconds)}
    for name in sorted(names):
        if (items.get(name) or {}).get("state") == store.ACTION_RUNNING:
            continue
        hook = hooks.schedule_name(contract_id, name)
        if manage.delete_schedule(scheduler, settings.hook_target.schedule_group, hook):
            report.hooksDeleted.append(f"{hook} (contract {status})")


def _cancel_waiting(
    tables: Tables,
    settings: Settings,
    contract_id: str,
    offer: dict[str, Any] | None,
    name: str,
    report: Report,
    now: datetime,
) -> None:
    """A waiting action of a contract not enrolled (as `offer`, None: no offer, was read): cancelled."""
    status = (offer or {}).get("status")
    label = f"{contract_id}/{name} (contract {status or 'unknown'})"
    if label in report.actionsCancelled:
        return  # its contract's check (a watched offer) cancelled it already
    if not settings.dry_run:
        entry = store.audit_entry(contract_id, f"action:{name}", f"cancelled: contract {status}", "reconcile", now)
        reason = f"not performed: the contract is {status}"
        try:
            store.cancel_waiting_action(tables, contract_id, name, status, reason, entry, now)
        except ConditionNotMetError:
            return  # claimed, cancelled, or its contract taken by a later offer, meanwhile
    report.actionsCancelled.append(label)


def _sweep_hooks(
    tables: Tables,
    scheduler: Any,
    settings: Settings,
    offers: dict[str, dict[str, Any] | None],
    settling: set[str],
    report: Report,
    attempt: Any,
) -> None:
    """On demand only (`sweepHooks`): every schedule of the hooks' group, listed. A hook of a contract not
    enrolled is deleted, unless it settles a claim; a schedule that is no hook is reported."""
    for name in _hook_names(scheduler, settings.hook_target.schedule_group):
        try:
            contract_id = hooks.contract_id_of(name)
        except ValueError:
            report.foreignSchedules.append(name)
            continue
        if contract_id not in offers:
            offers[contract_id] = store.get_offer(tables, contract_id)
        status = (offers[contract_id] or {}).get("status")
        if status not in (store.ENROLLED, store.CANCELLING) and name not in settling:
            report.hooksDeleted.append(f"{name} (contract {status or 'unknown'})")
            if not settings.dry_run:
                attempt(name, manage.delete_schedule, scheduler, settings.hook_target.schedule_group, name)


class ReconcileError(DomainError):
    """Some repairs failed (the others were made): the function fails, so its errors alarm fires, and
    the next run tries them again."""


def _unconfirmed(offer: dict[str, Any], now: datetime, grace: timedelta) -> bool:
    mark = offer.get("eventualWorkflow") or {}
    if mark.get("confirmedAt"):
        return False
    return _older(mark.get("startedAt") or offer.get("enrolledAt"), now, grace)


def _older(timestamp: str | None, now: datetime, grace: timedelta) -> bool:
    return timestamp is not None and parse_isoformat(timestamp) < now - grace


def _redrive(
    tables: Tables, stepfunctions: Any, settings: Settings, offer: dict[str, Any], report: Report, clock: Clock
) -> None:
    contract_id = offer["OfferId"]
    previous = (offer.get("eventualWorkflow") or {}).get("executionName")
    redriven = f"{contract_id} (after {previous or 'no start'})"
    if settings.dry_run:
        report.redriven.append(redriven)
        return
    record = stream.record_from_offer(offer, settings.offset_unit_seconds, clock())
    # Under a name of its own even when no run was marked: the first start's name may be taken by a run
    # that started after all (its answer lost) and can no longer confirm.
    started = stream.start_eventual_workflow(
        tables, stepfunctions, settings.async_state_machine_arn, record, clock, replacing=previous, redrive=True
    )
    if not started["started"]:
        report.redrivesRefused.append(f"{contract_id} ({started['reason']})")
        return
    report.redriven.append(redriven)
    _audit(tables, offer, f"eventual workflow re-driven: {started}", clock)


# The name the immediate workflow's StartFirstPayment gives the first payment (execution and order): one
# name, so the payment can never run twice, whoever starts it.
FIRST_PAYMENT_NAME = "{contract_id}-payment-1"


def _start_first_payment(
    tables: Tables, stepfunctions: Any, settings: Settings, offer: dict[str, Any], report: Report, clock: Clock
) -> None:
    """Claim, then act: the offer's record that the payment was not started is taken (only while the
    contract is enrolled), then the payment is started; a start that fails gives the record back."""
    contract_id = offer["OfferId"]
    if settings.payment_state_machine_arn is None:
        return
    if settings.dry_run:
        report.paymentsStarted.append(contract_id)
        return
    try:
        store.take_unstarted_first_payment(tables, contract_id, clock())
    except ConditionNotMetError:
        return  # started, or the contract left `enrolled`, meanwhile
    name = FIRST_PAYMENT_NAME.format(contract_id=contract_id)
    try:
        with aws_errors_as_domain_errors():
            stepfunctions.start_execution(
                stateMachineArn=settings.payment_state_machine_arn, name=name, input=json.dumps({"orderId": name})
            )
    except DomainError as error:
        if error.details.get("code") != "ExecutionAlreadyExists":  # else: it was started after all
            store.give_back_unstarted_first_payment(tables, contract_id, offer["firstPaymentNotStarted"], clock())
            raise
    report.paymentsStarted.append(contract_id)
    _audit(tables, offer, f"first payment {name} started (the enrollment's run could not start it)", clock)


def _finish_cancel(
    tables: Tables, scheduler: Any, settings: Settings, offer: dict[str, Any], report: Report, clock: Clock
) -> None:
    report.cancelsFinished.append(offer["OfferId"])
    if not settings.dry_run:
        manage.cancel_enrollment(
            tables,
            scheduler,
            settings.hook_target.schedule_group,
            offer["OfferId"],
            clock,
            settings.offset_unit_seconds,
        )


def _check_action(
    tables: Tables,
    scheduler: Any,
    settings: Settings,
    offer: dict[str, Any] | None,
    action: dict[str, Any],
    report: Report,
    clock: Clock,
) -> None:
    now, name, contract_id = clock(), action["actionName"], action["contractId"]
    label = f"{contract_id}/{name}"
    status = (offer or {}).get("status")
    if status == store.CANCELLING:
        return  # its cancel handles it (finished above once it is older than the grace)
    enrollment = (offer or {}).get("offer", {}).get("enrollmentDate")
    if action.get("enrollmentDate") and action["enrollmentDate"] != enrollment:
        # An item of an earlier enrollment: no claim can run it (`store.claim_action`). A waiting one is
        # cancelled (a later offer took the contract before the revert's leftovers were undone); a
        # running one's delivery settles it.
        if action["state"] in store.ACTION_WAITING and not settings.dry_run:
            reason = "not performed: an earlier enrollment of the contract"
            entry = store.audit_entry(contract_id, f"action:{name}", f"cancelled: {reason}", "reconcile", now)
            try:
                store.cancel_earlier_enrollments_action(
                    tables, contract_id, name, action["enrollmentDate"], reason, entry, now
                )
            except ConditionNotMetError:
                return
            report.actionsCancelled.append(f"{label} (an earlier enrollment)")
        return
    if action["state"] in store.ACTION_WAITING and status != store.ENROLLED:
        _cancel_waiting(tables, settings, contract_id, offer, name, report, now)
        return
    if not _needs_hook(scheduler, settings, action, now):
        return
    if settings.dry_run:
        report.hooksRecreated.append(f"{label} ({action['state']})")
        return
    by_name = {entry["name"]: entry for entry in stream.draft_actions(offer, settings.offset_unit_seconds)}
    planned = by_name.get(name, {"name": name, "offset": int(action.get("offset", 0)), "data": {}})
    hook = stream.hook(
        contract_id,
        action.get("correlationId") or offer["offer"]["correlationId"],
        {**planned, "dueAt": action["dueAt"]},
        now,
    )
    try:
        hooks.create_hook(scheduler, settings.hook_target, hook)
    except hooks.ScheduleNameConflictError as error:
        # Another schedule holds this action's hook name: no run can ever create it, so a waiting action
        # is failed (its alarm). A running one is not ours to end: the run fails instead, below.
        if action["state"] == store.ACTION_RUNNING:
            raise
        # The client sees the error's name (GET's failureReason); its text, which may name AWS resources,
        # goes to the audit trail.
        reason = f"the hook could not be re-created: {error.name}"
        try:
            store.fail_unscheduled_action(tables, contract_id, name, reason, now)
        except ConditionNotMetError:
            return  # claimed or ended meanwhile: not failed here
        report.actionsFailed.append(label)
        _audit(tables, offer, f"hook for {name} not re-created, action failed: {error.name}: {error.message}", clock)
        return
    # Any other error (throttling, a denied call, a missing schedule group) propagates: the run fails (its
    # alarm) after its other repairs and the next run tries again, the action as it was. It says nothing
    # about the action, and failing healthy actions for a configuration fault could not be undone.
    report.hooksRecreated.append(f"{label} ({action['state']})")
    _audit(tables, offer, f"hook re-created for {name} ({action['state']})", clock)


def _needs_hook(scheduler: Any, settings: Settings, action: dict[str, Any], now: datetime) -> bool:
    """A lapsed claim always does; a waiting action does when it has no live hook and none of the normal
    path's own delays (scheduling, firing, Lambda's retries) can explain it any more."""
    if action["state"] == store.ACTION_RUNNING:
        return action.get("leaseUntil", "") < isoformat(now)
    since = action.get("scheduledAt") or action.get("dueAt")
    if not _older(since, now, settings.grace):
        return False
    due = parse_isoformat(action["dueAt"])
    if due > now - settings.grace and due <= now:
        return False  # it fired moments ago: its delivery is under way
    return not _live_hook(scheduler, settings.hook_target.schedule_group, action)


def _live_hook(scheduler: Any, group: str, action: dict[str, Any]) -> bool:
    from botocore.exceptions import ClientError  # loaded by the scheduler client already

    try:
        schedule = scheduler.get_schedule(
            GroupName=group, Name=hooks.schedule_name(action["contractId"], action["actionName"])
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return False
        raise map_client_error(error) from error
    target = json.loads(schedule["Target"]["Input"])
    return target.get("action", {}).get("dueAt") == action["dueAt"]


def _hook_names(scheduler: Any, group: str) -> list[str]:
    names = []
    for page in scheduler.get_paginator("list_schedules").paginate(GroupName=group):
        names += [summary["Name"] for summary in page["Schedules"]]
    return names


def _audit(tables: Tables, offer: dict[str, Any] | None, outcome: str, clock: Clock) -> None:
    if offer is None:
        return
    correlation_id = offer.get("offer", {}).get("correlationId", "reconcile")
    store.append_audit(tables, store.audit_entry(offer["OfferId"], "reconcile", outcome[:500], correlation_id, clock()))
