"""A hook's schedule name identifies its (contract, action) pair, and a name conflict is answered
"already scheduled" only when the schedule found is that same hook."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from commonlib.errors import ConditionNotMetError, TransientDependencyError
from enrollment import model
from enrollment.eventual import hooks

# The real grammars: model.Identifier (contract ids) and model.ActionName.
contract_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,39}\Z")
action_names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.-]{0,63}\Z")
pairs = st.tuples(contract_ids, action_names)
SCHEDULER_NAME = re.compile(r"^[0-9a-zA-Z_.-]+$")


def test_the_grammars_are_the_models() -> None:
    identifier, action_name = (
        model.EnrollmentRequest.model_json_schema()["properties"]["contractId"],
        model.Action.model_json_schema()["properties"]["name"],
    )
    assert (identifier["pattern"], identifier["maxLength"]) == (r"^[A-Za-z0-9][A-Za-z0-9_-]*$", 40)
    assert (action_name["pattern"], action_name["maxLength"]) == (r"^[A-Za-z][A-Za-z0-9_.-]*$", 64)


@settings(max_examples=500, deadline=None)
@given(pairs, pairs)
def test_different_pairs_never_share_a_name(first: tuple[str, str], second: tuple[str, str]) -> None:
    for contract_id, action_name in (first, second):
        name = hooks.schedule_name(contract_id, action_name)
        assert len(name) <= hooks.SCHEDULE_NAME_MAX == 64
        assert SCHEDULER_NAME.fullmatch(name), name
        assert hooks.contract_id_of(name) == contract_id
        assert name == hooks.schedule_name(contract_id, action_name)  # derived: the same every time
    assert (hooks.schedule_name(*first) == hooks.schedule_name(*second)) == (first == second)


@st.composite
def shifted_pairs(draw: st.DrawFn) -> tuple[tuple[str, str], tuple[str, str]]:
    """Two different pairs whose old names (`{contract}-{action}`) were the same: the second moves the
    boundary between contract and action across a '-'."""
    contract_id = draw(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,18}\Z"))
    head = draw(st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,19}\Z"))
    tail = draw(st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.-]{0,20}\Z"))
    return (contract_id, f"{head}-{tail}"), (f"{contract_id}-{head}", tail)


@settings(max_examples=300, deadline=None)
@given(shifted_pairs())
def test_pairs_that_collided_before_do_not_now(shifted: tuple[tuple[str, str], tuple[str, str]]) -> None:
    first, second = shifted
    assert f"{first[0]}-{first[1]}" == f"{second[0]}-{second[1]}"  # the old scheme's name
    assert hooks.schedule_name(*first) != hooks.schedule_name(*second)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("C-1", "a-b"), ("C-1-a", "b")),
        (("C-1001", "action-1"), ("C-1001-action", "1")),
        (("A", "b-c-d"), ("A-b-c", "d")),
    ],
)
def test_the_pairs_that_collided_before(first: tuple[str, str], second: tuple[str, str]) -> None:
    assert f"{first[0]}-{first[1]}" == f"{second[0]}-{second[1]}"
    names = hooks.schedule_name(*first), hooks.schedule_name(*second)
    assert names[0] != names[1]
    assert [hooks.contract_id_of(name) for name in names] == [first[0], second[0]]


def test_longest_contract_id_and_action_name_fit() -> None:
    name = hooks.schedule_name("C" * 40, "a" * 64)
    assert len(name) == 64
    assert name != hooks.schedule_name("C" * 40, "a" * 63 + "b")
    assert hooks.DIGEST_CHARS * 5 >= 100  # base32: 5 bits a character


@pytest.mark.parametrize("contract_id", ["", "C.1", "-C", "C" * 41])
def test_only_contract_ids_get_names(contract_id: str) -> None:
    with pytest.raises(ValueError, match="not a contract id"):
        hooks.schedule_name(contract_id, "action1")


@pytest.mark.parametrize("name", ["C-1-action1", ".abc", "C", "daily.report", "C-1." + "A" * hooks.DIGEST_CHARS])
def test_contract_id_of_refuses_other_names(name: str) -> None:
    with pytest.raises(ValueError, match="not a hook's schedule name"):
        hooks.contract_id_of(name)


# ---------------------------------------------------------------- create_hook on a name conflict

TARGET = hooks.HookTarget("enrollment-hooks", "arn:function", "arn:role", "arn:dlq")


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (fake)"}}, operation)


def target_input(contract_id: str, action_name: str, due_at: str = "2030-01-01T00:00:00.000Z") -> str:
    action = {"name": action_name, "dueAt": due_at}
    event = {"contractId": contract_id, "correlationId": "c", "trigger": "hook", "action": action}
    return json.dumps(event, separators=(",", ":"))


def hook_for(contract_id: str, action_name: str) -> dict[str, Any]:
    return {
        "scheduleName": hooks.schedule_name(contract_id, action_name),
        "scheduleExpression": "at(2030-01-01T00:00:00)",
        "targetInput": target_input(contract_id, action_name),
    }


class FakeScheduler:
    """Schedules by name; `conflicts` creates answer ConflictException first (whatever is stored), and
    `vanish` get_schedules answer ResourceNotFoundException first (the schedule fired meanwhile)."""

    def __init__(self, existing: dict[str, str] | None = None, conflicts: int = 0, vanish: int = 0) -> None:
        self.schedules = dict(existing or {})  # name -> Target.Input
        self.conflicts, self.vanish = conflicts, vanish
        self.creates: list[str] = []
        self.reads: list[str] = []

    def create_schedule(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["GroupName"] == TARGET.schedule_group
        self.creates.append(kwargs["Name"])
        if self.conflicts or kwargs["Name"] in self.schedules:
            self.conflicts = max(self.conflicts - 1, 0)
            raise client_error("ConflictException", "CreateSchedule")
        self.schedules[kwargs["Name"]] = kwargs["Target"]["Input"]
        return {"ScheduleArn": f"arn:schedule/{kwargs['Name']}"}

    def get_schedule(self, *, GroupName: str, Name: str) -> dict[str, Any]:  # noqa: N803 - the SDK's names
        assert GroupName == TARGET.schedule_group
        self.reads.append(Name)
        if self.vanish or Name not in self.schedules:
            self.vanish = max(self.vanish - 1, 0)
            raise client_error("ResourceNotFoundException", "GetSchedule")
        return {"Name": Name, "GroupName": GroupName, "Target": {"Arn": "arn:function", "Input": self.schedules[Name]}}

    def delete_schedule(self, *, GroupName: str, Name: str) -> None:  # noqa: N803 - the SDK's names
        assert GroupName == TARGET.schedule_group
        self.schedules.pop(Name)


def test_conflict_with_the_same_contract_and_action_is_already_scheduled() -> None:
    hook = hook_for("C-1", "action1")
    scheduler = FakeScheduler({hook["scheduleName"]: target_input("C-1", "action1")})

    assert hooks.create_hook(scheduler, TARGET, hook) == {
        "created": False,
        "scheduleName": hook["scheduleName"],
        "reason": "already scheduled",
    }
    assert scheduler.reads == [hook["scheduleName"]]


@pytest.mark.parametrize(
    "found",
    [
        target_input("C-1", "action2"),  # another action of the contract
        target_input("C-2", "action1"),  # the same action of another contract
        "not json",  # not a hook's input at all
    ],
)
def test_conflict_with_another_hook_raises_naming_the_schedule(found: str) -> None:
    hook = hook_for("C-1", "action1")
    scheduler = FakeScheduler({hook["scheduleName"]: found})

    with pytest.raises(hooks.ScheduleNameConflictError, match=re.escape(hook["scheduleName"])) as raised:
        hooks.create_hook(scheduler, TARGET, hook)

    assert isinstance(raised.value, ConditionNotMetError)
    assert raised.value.details["scheduleName"] == hook["scheduleName"]
    assert scheduler.schedules == {hook["scheduleName"]: found}  # left as it was


def test_the_same_actions_hook_of_an_earlier_enrollment_is_replaced() -> None:
    """A reverted enrollment's hook (its action item since replaced, so its delivery would be refused as
    stale) must not stand in for this enrollment's: answering "already scheduled" would lose the action."""
    hook = hook_for("C-1", "action1")
    earlier = target_input("C-1", "action1", due_at="2029-06-01T00:00:00.000Z")
    scheduler = FakeScheduler({hook["scheduleName"]: earlier})

    answer = hooks.create_hook(scheduler, TARGET, hook)

    assert answer == {"created": True, "scheduleName": hook["scheduleName"], "replaced": "2029-06-01T00:00:00.000Z"}
    assert scheduler.schedules == {hook["scheduleName"]: hook["targetInput"]}


def test_conflict_with_a_schedule_gone_meanwhile_is_created_again_once() -> None:
    hook = hook_for("C-1", "action1")
    scheduler = FakeScheduler(conflicts=1)  # it fired and deleted itself between create and read

    assert hooks.create_hook(scheduler, TARGET, hook) == {"created": True, "scheduleName": hook["scheduleName"]}
    assert scheduler.creates == [hook["scheduleName"]] * 2
    assert scheduler.schedules == {hook["scheduleName"]: hook["targetInput"]}


def test_a_second_conflict_is_checked_like_the_first() -> None:
    hook = hook_for("C-1", "action1")
    scheduler = FakeScheduler({hook["scheduleName"]: hook["targetInput"]}, vanish=1)

    assert hooks.create_hook(scheduler, TARGET, hook)["reason"] == "already scheduled"
    assert len(scheduler.creates) == 2


def test_a_conflict_that_keeps_vanishing_is_retried_by_the_caller_not_here() -> None:
    hook = hook_for("C-1", "action1")
    scheduler = FakeScheduler(conflicts=5)

    with pytest.raises(TransientDependencyError, match=re.escape(hook["scheduleName"])):
        hooks.create_hook(scheduler, TARGET, hook)
    assert len(scheduler.creates) == 2


def test_other_create_errors_are_domain_errors() -> None:
    class Throttled(FakeScheduler):
        def create_schedule(self, **kwargs: Any) -> dict[str, Any]:
            raise client_error("ThrottlingException", "CreateSchedule")

    with pytest.raises(TransientDependencyError):
        hooks.create_hook(Throttled(), TARGET, hook_for("C-1", "action1"))
