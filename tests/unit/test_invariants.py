"""The invariants the integration tests end with (tests/support/invariants.py) fail when they are broken.

Each test starts from a consistent world (every table, the stream and the schedules as the stack would
leave them), breaks one thing, and expects the invariant that guards it to name the break.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commonlib.clock import isoformat
from tests.support.invariants import CONFIRMATION_SECONDS, World, unconfirmed_diagnosis, violations

NOW = datetime.now(UTC)


def at(seconds: float) -> str:
    """A time `seconds` from now (the invariants that wait for the stack read the wall clock)."""
    return isoformat(NOW + timedelta(seconds=seconds))


ENROLLED_AT = at(-(CONFIRMATION_SECONDS + 400))
# C-2 was enrolled, its publication was lost and it was reverted, then enrolled again.
FIRST_DATE, FIRST_COMMIT, REVERTED = at(-900), at(-899), at(-880)
FIRST_DUE = at(-885)  # its action1, due (and claimed) before the revert
SECOND_DATE, SECOND_COMMIT = at(-860), at(-859)
SECOND_DUE = at(3600)


def key(contract_id: str, action_name: str, due: str) -> str:
    return f"{contract_id}/{action_name}/{due}"


def audit(contract_id: str, step: str, outcome: str, when: str) -> dict[str, Any]:
    return {"contractId": contract_id, "entryId": f"{when}#{step}", "at": when, "step": step, "outcome": outcome}


def offer(contract_id: str, enrollment_date: str, enrolled_at: str) -> dict[str, Any]:
    return {
        "OfferId": contract_id,
        "status": "enrolled",
        "enrolledAt": enrolled_at,
        "offer": {"contractId": contract_id, "accountId": "A-100", "enrollmentDate": enrollment_date},
        "eventualWorkflow": {
            "executionName": f"{contract_id}-run",
            "startedAt": enrolled_at,
            "confirmedAt": enrolled_at,
        },
    }


def publication(contract_id: str, enrollment_date: str, due: str) -> dict[str, Any]:
    return {
        "type": "enrollment",
        "contractId": contract_id,
        "enrollmentDate": enrollment_date,
        "eventualActions": [{"name": "action1", "offset": 1, "dueAt": due}],
        "publishedAt": enrollment_date,
    }


def consistent_world() -> World:
    """C-1: enrolled, its same-day action2 fulfilled (one effect), its action1 scheduled with its hook.
    C-2: a reverted enrollment whose action1 was performed before the revert, then enrolled again: its
    action1 item is the new enrollment's, scheduled with its hook."""
    same_day = ENROLLED_AT
    return World(
        offers={"C-1": offer("C-1", same_day, ENROLLED_AT), "C-2": offer("C-2", SECOND_DATE, SECOND_COMMIT)},
        ucp=[
            {"accountId": "A-100", "recordId": "account", "status": "active"},
            {"accountId": "A-100", "recordId": "contract#C-1", "status": "enrolled"},
            {"accountId": "A-100", "recordId": "contract#C-2", "status": "enrolled"},
        ],
        actions=[
            {
                "contractId": "C-1",
                "actionName": "action2",
                "dueAt": same_day,
                "state": "fulfilled",
                "attempts": 1,
                "claimedAt": ENROLLED_AT,
            },
            {"contractId": "C-1", "actionName": "action1", "dueAt": at(3600), "state": "scheduled"},
            {"contractId": "C-2", "actionName": "action1", "dueAt": SECOND_DUE, "state": "scheduled"},
        ],
        audit=[
            audit("C-1", "enroll", "enrolled: UCP updated, payments set", ENROLLED_AT),
            audit("C-1", "action:action2", "fulfilled (same-day)", ENROLLED_AT),
            audit("C-2", "enroll", "enrolled: UCP updated, payments set", FIRST_COMMIT),
            audit("C-2", "revert", "failed: publish uncertain", REVERTED),
            audit("C-2", "enroll", "enrolled: UCP updated, payments set", SECOND_COMMIT),
        ],
        effects=[
            {
                "idempotencyKey": key("C-1", "action2", same_day),
                "contractId": "C-1",
                "actionName": "action2",
                "claimedAt": ENROLLED_AT,
                "calls": 1,
            },
            {
                "idempotencyKey": key("C-2", "action1", FIRST_DUE),
                "contractId": "C-2",
                "actionName": "action1",
                "claimedAt": at(-884),
                "calls": 1,
            },
        ],
        stream=[
            publication("C-1", same_day, at(3600)),
            publication("C-2", FIRST_DATE, FIRST_DUE),
            publication("C-2", SECOND_DATE, SECOND_DUE),
        ],
        schedules=[
            {"name": "C-1.h1", "contractId": "C-1", "actionName": "action1", "dueAt": at(3600)},
            {"name": "C-2.h1", "contractId": "C-2", "actionName": "action1", "dueAt": SECOND_DUE},
        ],
        payment_executions=["C-1-payment-1", "C-2-payment-1"],
    )


def broken(**changes: Any) -> World:
    return dataclasses.replace(copy.deepcopy(consistent_world()), **changes)


def item(world: World, contract_id: str, action_name: str) -> dict[str, Any]:
    return next(a for a in world.actions if (a["contractId"], a["actionName"]) == (contract_id, action_name))


def effect_of(world: World, contract_id: str) -> dict[str, Any]:
    return next(e for e in world.effects if e["contractId"] == contract_id)


def test_a_consistent_world_violates_nothing() -> None:
    assert violations(consistent_world()) == []


def test_an_effect_performed_twice_under_one_claim_is_a_violation() -> None:
    world = broken()
    effect_of(world, "C-1")["calls"] = 2

    assert violations(world) == [f"effect {key('C-1', 'action2', ENROLLED_AT)}: 2 downstream calls for 1 claims"]


def test_an_action_fulfilled_twice_is_a_violation() -> None:
    world = broken()
    world.audit.append(audit("C-1", "action:action2", "fulfilled (hook)", at(-10)))

    assert "action C-1/action2 fulfilled 2 times" in violations(world)


def test_a_fulfilled_action_without_its_effect_is_a_violation() -> None:
    world = broken(effects=[e for e in consistent_world().effects if e["contractId"] != "C-1"])

    assert violations(world) == ["action C-1/action2 is fulfilled without its effect"]


@pytest.mark.parametrize(("status", "stamp"), [("cancelled", "cancelRequestedAt"), ("failed", "failedAt")])
def test_an_effect_claimed_after_its_contract_left_enrolled_is_a_violation(status: str, stamp: str) -> None:
    world = broken()
    world.offers["C-1"].update(status=status, **{stamp: at(-(CONFIRMATION_SECONDS + 450))})
    world.ucp[1]["status"] = status  # C-1's contract item
    if status == "failed":  # a reverted contract's hook and waiting action are gone
        world.schedules.pop(0)
        item(world, "C-1", "action1")["state"] = "cancelled"

    found = violations(world)

    assert any(v.startswith(f"effect {key('C-1', 'action2', ENROLLED_AT)} claimed at") for v in found), found


def test_an_effect_of_an_earlier_enrollment_claimed_after_its_revert_is_a_violation() -> None:
    """Its action's item now belongs to the later enrollment: the effect is checked against the revert that
    ended its own enrollment, even when it was claimed while a later one stood."""
    world = broken()
    effect_of(world, "C-2")["claimedAt"] = at(-850)  # after the revert, during the second enrollment

    assert violations(world) == [
        f"effect {key('C-2', 'action1', FIRST_DUE)} claimed at {at(-850)}, after its enrollment"
        f" (committed {FIRST_COMMIT}) ended at {REVERTED}"
    ]


def test_an_effect_of_no_enrollment_is_a_violation() -> None:
    world = broken()
    stray = at(-100)
    world.effects.append(
        {"idempotencyKey": key("C-1", "action1", stray), "contractId": "C-1", "actionName": "action1",
         "claimedAt": stray, "calls": 1}
    )  # fmt: skip

    assert violations(world) == [
        f"effect {key('C-1', 'action1', stray)} is of no enrollment: no commit of C-1 from {stray} on"
    ]


def test_a_scheduled_action_without_a_live_hook_is_a_violation() -> None:
    world = broken()
    world.schedules.pop(0)

    assert violations(world) == [f"action C-1/action1 is scheduled (due {at(3600)}) with no hook"]


def test_an_enrolled_contract_whose_eventual_workflow_never_confirmed_is_a_violation() -> None:
    world = broken()
    del world.offers["C-1"]["eventualWorkflow"]["confirmedAt"]
    world.audit.append(audit("C-1", "eventual-workflow", "starting: 2 hooks to schedule", ENROLLED_AT))

    [violation] = violations(world)
    assert violation.startswith(f"offer C-1 enrolled at {ENROLLED_AT} has no confirmed eventual workflow (")
    # what the offer's eventual path left: its mark, and the runs' audit entries, for a rare failure
    assert str(world.offers["C-1"]["eventualWorkflow"]) in violation
    assert f"('{ENROLLED_AT}', 'eventual-workflow', 'starting: 2 hooks to schedule')" in violation


class DiagnosedStack:
    """The emulator's logs and Lambda clients as the diagnosis of an unconfirmed workflow uses them."""

    def __init__(self, log_groups: dict[str, list[str]]) -> None:
        self.log_groups, self.invoked = log_groups, []

    def __call__(self, service: str) -> Any:
        return self

    def filter_log_events(self, logGroupName: str, filterPattern: str) -> dict[str, Any]:  # noqa: N803
        if logGroupName not in self.log_groups:
            raise LookupError(f"no log group {logGroupName}")
        term = filterPattern.strip('"')
        return {"events": [{"message": line} for line in self.log_groups[logGroupName] if term in line]}

    def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803
        import io

        self.invoked.append(FunctionName)
        return {"FunctionError": "Unhandled", "Payload": io.BytesIO(b'{"errorMessage": "1 repairs failed"}')}


def test_an_unconfirmed_workflow_is_diagnosed_with_its_logs_and_one_run_of_the_reconciler() -> None:
    stack = DiagnosedStack({"/aws/lambda/p-DataLambda": ["C-1 claimed", "C-2 claimed", "C-1 start failed"]})

    diagnosis = unconfirmed_diagnosis(stack, {"ReconcileFunctionName": "p-Reconcile"}, ["C-1"])

    assert diagnosis[0] == "DataLambda logged about C-1: ['C-1 claimed', 'C-1 start failed']"
    assert diagnosis[1].startswith("Reconcile logged about C-1: ['(not read: LookupError: ")
    assert diagnosis[2] == 'the reconciler, run once now, answered Unhandled: {"errorMessage": "1 repairs failed"}'
    assert stack.invoked == ["p-Reconcile"]


def test_nothing_is_diagnosed_without_an_unconfirmed_workflow() -> None:
    stack = DiagnosedStack({})

    assert unconfirmed_diagnosis(stack, {"ReconcileFunctionName": "Reconcile"}, []) == []
    assert stack.invoked == []
