from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from enrollment import store
from enrollment.eventual import fulfillment, hooks, manage, stream
from enrollment.eventual import handlers as eventual_handlers
from enrollment.immediate import offers, publisher
from enrollment.store import Tables
from tests.support.events import kinesis_event
from tests.unit.conftest import DataLambdaClients
from tests.unit.enrollment_fixtures import (
    EXECUTION,
    LEASE,
    OTHER_EXECUTION,
    STARTED,
    AnswerLostAndRepeated,
    FixedClock,
    OneRunPerName,
    RecordingStepFunctions,
    schedule_hook,
    seed_offer,
)

NOW = datetime(2026, 1, 31, 12, 0, 1, tzinfo=UTC)
FAR_FUTURE = datetime(2027, 1, 1, tzinfo=UTC)


def record_for(offer: dict[str, Any]) -> stream.StreamRecord:
    return stream.StreamRecord.model_validate(publisher.stream_record(offer, "2026-01-31T12:00:01.000Z"))


def test_schedule_names_are_derived_and_bounded() -> None:
    assert stream.schedule_name("C-1001", "rateChange") == "C-1001." + hooks.action_digest("rateChange")
    assert hooks.contract_id_of(stream.schedule_name("C-1001", "rateChange")) == "C-1001"
    long_name = stream.schedule_name("C" * 40, "a" * 64)
    assert len(long_name) <= 64
    assert long_name == stream.schedule_name("C" * 40, "a" * 64)
    assert long_name != stream.schedule_name("C" * 40, "a" * 63 + "b")


@pytest.mark.parametrize(
    ("due", "expression"),
    [
        (datetime(2026, 2, 16, 12, 0, tzinfo=UTC), "at(2026-02-16T12:00:00)"),
        (datetime(2026, 2, 16, 12, 0, 0, 1000, tzinfo=UTC), "at(2026-02-16T12:00:01)"),  # never early
        (datetime(2026, 1, 1, tzinfo=UTC), "at(2026-01-31T12:00:06)"),  # already due: fires soon
    ],
)
def test_schedule_expression(due: datetime, expression: str) -> None:
    assert stream.schedule_expression(due, NOW) == expression


def test_async_input_has_one_hook_per_eventual_action_in_offset_order(enrolled: dict[str, Any]) -> None:
    workflow_input = stream.async_workflow_input(record_for(enrolled), NOW)

    assert [hook["actionName"] for hook in workflow_input["hooks"]] == ["action100", "action1", "rateChange"]
    rate_change = workflow_input["hooks"][-1]
    assert rate_change["scheduleName"] == hooks.schedule_name("C-1001", "rateChange")
    assert rate_change["scheduleExpression"] == "at(2026-02-16T12:00:00)"
    target = json.loads(rate_change["targetInput"])
    assert (target["contractId"], target["trigger"], target["action"]["name"]) == ("C-1001", "hook", "rateChange")


def test_duplicate_record_starts_nothing_new(enrollment_tables: Tables, enrolled: dict[str, Any]) -> None:
    stepfunctions = RecordingStepFunctions()
    first = stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record_for(enrolled))
    again = stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record_for(enrolled))

    assert first["started"] is True
    assert again["started"] is False
    assert len(stepfunctions.starts) == 1


def test_record_of_a_reverted_enrollment_starts_nothing(enrollment_tables: Tables, enrolled: dict[str, Any]) -> None:
    offers.revert_enrollment(enrollment_tables, enrolled, EXECUTION, "boom")
    stepfunctions = RecordingStepFunctions()
    assert (
        stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record_for(enrolled))["started"]
        is False
    )
    assert stepfunctions.starts == []


def test_a_late_record_of_a_reverted_enrollment_leaves_the_run_to_the_contracts_next_enrollment(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    """The publication reached the stream but its answer was lost: the enrollment is reverted and the
    contract enrolled again. The first record, delivered late (DataLambda lagging, or a retried batch),
    must not take the run: the next enrollment's record starts it, with that enrollment's due times."""
    stale = record_for(enrolled)
    offers.revert_enrollment(enrollment_tables, enrolled, EXECUTION, "publication lost")
    later = STARTED + timedelta(minutes=5)
    again = offers.acquire(enrollment_tables, seed_offer(), OTHER_EXECUTION, later, clock=FixedClock(later))["offer"]
    offers.verify_customer(enrollment_tables, again, OTHER_EXECUTION)
    offers.commit_enrollment(enrollment_tables, again, OTHER_EXECUTION, {"rulesVersion": "v"})
    stepfunctions = RecordingStepFunctions()

    late = stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", stale)
    current = stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record_for(again))

    assert late == {"started": False, "reason": stream.EARLIER_ENROLLMENT}
    assert current["started"] is True
    assert len(stepfunctions.starts) == 1
    started = json.loads(stepfunctions.starts[0]["input"])
    assert started["enrollmentDate"] == again["enrollmentDate"] != stale.enrollmentDate


def test_failed_start_releases_the_claim(enrollment_tables: Tables, enrolled: dict[str, Any]) -> None:
    class Failing:
        def start_execution(self, **kwargs: Any) -> dict[str, Any]:
            raise RuntimeError("service unavailable")

    with pytest.raises(RuntimeError):
        stream.start_eventual_workflow(enrollment_tables, Failing(), "arn:sm", record_for(enrolled))
    retry = stream.start_eventual_workflow(enrollment_tables, RecordingStepFunctions(), "arn:sm", record_for(enrolled))
    assert retry["started"] is True


def test_a_start_whose_answer_was_lost_after_its_run_confirmed_keeps_the_confirmation(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    """The run started and confirmed, but the start's answer never came back (a timeout): the release
    must not take the confirmed mark away. The reconciler may have found the offer settled and unmarked
    it meanwhile, and would never look at it again."""
    record = record_for(enrolled)

    class StartedButAnswerLost:
        def start_execution(self, **kwargs: Any) -> dict[str, Any]:
            enrollment_tables.offers.update_item(  # what the run's ConfirmEventualWorkflow writes
                Key={"OfferId": record.contractId},
                UpdateExpression="SET eventualWorkflow.confirmedAt = :at",
                ExpressionAttributeValues={":at": "2026-01-31T12:00:05.000Z"},
            )
            raise TimeoutError("read timeout on StartExecution")

    with pytest.raises(TimeoutError):
        stream.start_eventual_workflow(enrollment_tables, StartedButAnswerLost(), "arn:sm", record)

    mark = store.get_offer(enrollment_tables, record.contractId)["eventualWorkflow"]
    assert mark["confirmedAt"] == "2026-01-31T12:00:05.000Z"
    assert stream.start_eventual_workflow(enrollment_tables, RecordingStepFunctions(), "arn:sm", record) == {
        "started": False,
        "reason": stream.ALREADY_STARTED,
    }


def test_a_start_repeated_by_the_sdk_and_refused_by_its_name_keeps_the_claim_for_the_run_that_started(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    """The first attempt started the run; its answer was lost and the repeat was refused by name. The
    claim stays the run's, so its confirmation (conditional on the mark naming it) goes through."""
    record = record_for(enrolled)
    stepfunctions = AnswerLostAndRepeated()

    started = stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record)

    [run] = stepfunctions.starts
    assert started == {"started": True, "executionName": run["name"]}
    assert store.get_offer(enrollment_tables, record.contractId)["eventualWorkflow"]["executionName"] == run["name"]
    assert stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record) == {
        "started": False,
        "reason": stream.ALREADY_STARTED,
    }
    assert len(_eventual_workflow_entries(enrollment_tables, record.contractId)) == 1


def test_a_redelivered_record_whose_run_started_after_all_keeps_its_claim(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    """The start's answer was lost before its run confirmed, so the claim was given back and the record
    redelivered; the name admits one run. The retry takes the claim again for the run that started: it
    confirms if it still can, else the reconciler re-drives the unconfirmed mark (under a new name)."""
    record = record_for(enrolled)
    stepfunctions = OneRunPerName()

    class StartedButAnswerLost:
        def start_execution(self, **kwargs: Any) -> dict[str, Any]:
            stepfunctions.start_execution(**kwargs)
            raise TimeoutError("read timeout on StartExecution")

    with pytest.raises(TimeoutError):
        stream.start_eventual_workflow(enrollment_tables, StartedButAnswerLost(), "arn:sm", record)
    assert "eventualWorkflow" not in store.get_offer(enrollment_tables, record.contractId)

    retry = stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record)

    [run] = stepfunctions.starts
    assert retry == {"started": True, "executionName": run["name"]}
    assert store.get_offer(enrollment_tables, record.contractId)["eventualWorkflow"]["executionName"] == run["name"]


def test_a_start_refused_for_another_reason_gives_the_claim_back(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    from botocore.exceptions import ClientError

    from commonlib.errors import DomainError

    class Refusing:
        def start_execution(self, **kwargs: Any) -> dict[str, Any]:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "denied"}}, "StartExecution")

    with pytest.raises(DomainError):
        stream.start_eventual_workflow(enrollment_tables, Refusing(), "arn:sm", record_for(enrolled))
    assert "eventualWorkflow" not in store.get_offer(enrollment_tables, enrolled["contractId"])


def _eventual_workflow_entries(tables: Tables, contract_id: str) -> list[dict[str, Any]]:
    return [e for e in store.audit_trail(tables, contract_id) if e["step"] == "eventual-workflow"]


def test_the_start_is_audited_before_the_run_starts_naming_the_run(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    record = record_for(enrolled)

    class AuditedFirst(RecordingStepFunctions):
        def start_execution(self, **kwargs: Any) -> dict[str, Any]:
            entries = _eventual_workflow_entries(enrollment_tables, record.contractId)
            assert [e["details"]["executionName"] for e in entries] == [kwargs["name"]]
            return super().start_execution(**kwargs)

    stepfunctions = AuditedFirst()
    assert stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record)["started"] is True
    assert len(stepfunctions.starts) == 1
    [entry] = _eventual_workflow_entries(enrollment_tables, record.contractId)
    assert entry["outcome"] == f"starting: {len(record.eventualActions)} hooks to schedule"


def test_a_failed_audit_write_releases_the_claim_and_starts_nothing(
    enrollment_tables: Tables, enrolled: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    record = record_for(enrolled)
    stepfunctions = RecordingStepFunctions()

    def unavailable(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("DynamoDB unavailable")

    with monkeypatch.context() as patched:
        patched.setattr(stream.store, "append_audit", unavailable)
        with pytest.raises(RuntimeError):
            stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record)
    assert stepfunctions.starts == []
    assert stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record)["started"] is True
    assert len(stepfunctions.starts) == 1
    assert len(_eventual_workflow_entries(enrollment_tables, record.contractId)) == 1


def test_a_crash_between_the_audit_and_the_start_keeps_the_mark_for_the_reconciler(
    enrollment_tables: Tables, enrolled: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash raises nothing the function could act on: the mark stays, the redelivered record starts
    nothing, and the audited attempt is what the reconciler's re-drive follows."""
    record = record_for(enrolled)
    stepfunctions = RecordingStepFunctions()

    def crash_after_the_audit(point: str) -> None:
        if point == "after-audit":
            raise SystemExit("the function died")

    with monkeypatch.context() as patched:
        patched.setattr(stream.faults, "checkpoint", crash_after_the_audit)
        with pytest.raises(SystemExit):
            stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record)
    redelivered = stream.start_eventual_workflow(enrollment_tables, stepfunctions, "arn:sm", record)
    assert redelivered == {"started": False, "reason": stream.ALREADY_STARTED}
    assert stepfunctions.starts == []
    assert len(_eventual_workflow_entries(enrollment_tables, record.contractId)) == 1


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"\xff\xfe", b"[]", b'{"type": "ContractEnrolled"}', b'{"type": "Other", "version": 1}'],
)
def test_data_lambda_reports_and_skips_a_malformed_record(
    enrollment_tables: Tables,
    enrolled: dict[str, Any],
    data_lambda_clients: DataLambdaClients,
    lambda_context: Any,
    payload: bytes,
) -> None:
    stepfunctions, sqs, queue_url = (
        data_lambda_clients.stepfunctions,
        data_lambda_clients.sqs,
        data_lambda_clients.queue_url,
    )
    good = json.dumps(publisher.stream_record(enrolled, "2026-01-31T12:00:01.000Z")).encode()

    response = eventual_handlers.data_lambda(kinesis_event(payload, good, partition_key="C-1001"), lambda_context)

    assert response == {"batchItemFailures": []}
    assert len(stepfunctions.starts) == 1  # the good record behind the bad one went through
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(messages) == 1
    assert json.loads(messages[0]["Body"])["sequenceNumber"] == f"{1:056d}"


HOOK_TARGET = hooks.HookTarget(
    "enrollment-hooks",
    "arn:aws:lambda:us-east-1:123456789012:function:F",
    "arn:aws:iam::123456789012:role/r",
    "arn:aws:sqs:us-east-1:123456789012:dlq",
)


def test_hook_is_created_once(scheduler: Any) -> None:
    target = HOOK_TARGET
    name = hooks.schedule_name("C-1", "action1")
    target_input = json.dumps({"contractId": "C-1", "trigger": "hook", "action": {"name": "action1", "offset": 3}})
    hook = {"scheduleName": name, "scheduleExpression": "at(2030-01-01T00:00:00)", "targetInput": target_input}

    assert hooks.create_hook(scheduler, target, hook)["created"] is True
    assert hooks.create_hook(scheduler, target, hook) == {
        "created": False,
        "scheduleName": name,
        "reason": "already scheduled",
    }
    created = scheduler.get_schedule(GroupName="enrollment-hooks", Name=name)
    assert created["ActionAfterCompletion"] == "DELETE"
    assert created["Target"]["RetryPolicy"] == hooks.HOOK_RETRY_POLICY


def test_a_hook_of_an_enrolled_contract_is_scheduled_and_stays(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    hook = stream.async_workflow_input(record_for(enrolled), NOW)["hooks"][0]

    answer = hooks.schedule_hook(enrollment_tables, scheduler, HOOK_TARGET, "C-1001", hook)

    assert answer == {"created": True, "scheduleName": hook["scheduleName"]}
    assert [s["Name"] for s in scheduler.list_schedules(GroupName="enrollment-hooks")["Schedules"]] == [
        hook["scheduleName"]
    ]


@pytest.mark.parametrize("cancel_reached", ["cancelling", "cancelled"])
def test_a_hook_created_after_a_cancel_looked_for_it_is_withdrawn(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any, cancel_reached: str
) -> None:
    """The eventual workflow marks the action scheduled, a cancel then finds no schedule to delete, and
    only then is the schedule created: it must not stay behind to fire after the cancel."""
    hook = stream.async_workflow_input(record_for(enrolled), NOW)["hooks"][0]
    if cancel_reached == "cancelling":
        store.start_cancel(enrollment_tables, "C-1001", NOW)
    else:
        assert (
            manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001")["outcome"]
            == "cancelled"
        )

    answer = hooks.schedule_hook(enrollment_tables, scheduler, HOOK_TARGET, "C-1001", hook)

    assert answer == {
        "created": False,
        "scheduleName": hook["scheduleName"],
        "reason": f"withdrawn: the contract is {cancel_reached}",
    }
    assert scheduler.list_schedules(GroupName="enrollment-hooks")["Schedules"] == []
    if cancel_reached == "cancelling":  # the interrupted cancel, finished, cancels the action itself
        manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001")
    status = manage.enrollment_status(enrollment_tables, "C-1001")
    assert status["status"] == "cancelled"


def test_a_hook_created_after_a_revert_is_withdrawn_and_its_action_stays_cancelled(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """A publication whose answer was lost is reverted while the eventual workflow it reached goes on:
    the revert cancels the eventual actions, and a hook created after it must not stay behind."""
    hook = stream.async_workflow_input(record_for(enrolled), NOW)["hooks"][0]
    assert offers.revert_enrollment(enrollment_tables, enrolled, EXECUTION, "publication lost") == {"reverted": True}

    answer = hooks.schedule_hook(enrollment_tables, scheduler, HOOK_TARGET, "C-1001", hook)

    assert answer == {
        "created": False,
        "scheduleName": hook["scheduleName"],
        "reason": "withdrawn: the contract is failed",
    }
    assert scheduler.list_schedules(GroupName="enrollment-hooks")["Schedules"] == []
    action = store.get_action(enrollment_tables, "C-1001", hook["actionName"])
    assert action is not None
    assert action["state"] == "cancelled"


def test_cancel_deletes_hooks_and_keeps_fulfilled_actions(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    target = HOOK_TARGET
    for hook in stream.async_workflow_input(record_for(enrolled), NOW)["hooks"]:
        hooks.create_hook(scheduler, target, hook)
    same_day = enrolled["immediateActions"][0]
    fulfillment.fulfil(enrollment_tables, "C-1001", same_day, "corr", "same-day", "t1", FixedClock(NOW), lease=LEASE)

    result = manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001")

    assert result["outcome"] == "cancelled"
    assert sorted(result["cancelledActions"]) == ["action1", "action100", "rateChange"]
    assert result["completedActions"] == [{"name": "action2", "state": "fulfilled"}]
    assert scheduler.list_schedules(GroupName="enrollment-hooks")["Schedules"] == []
    status = manage.enrollment_status(enrollment_tables, "C-1001")
    assert status["status"] == "cancelled"
    assert {a["name"]: a["state"] for a in status["actions"]} == {
        "action2": "fulfilled", "action100": "cancelled", "action1": "cancelled", "rateChange": "cancelled"
    }  # fmt: skip
    assert store.get_contract(enrollment_tables, "A-100", "C-1001")["status"] == "cancelled"
    assert any(entry["step"] == "cancel" for entry in status["audit"])
    # A retry answers what the cancel answered.
    assert manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001") == result
    assert manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-404") == {
        "outcome": "not_found"
    }
    # A hook that fires after all (it was already in flight) changes nothing.
    late = fulfillment.fulfil(
        enrollment_tables,
        "C-1001",
        enrolled["eventualActions"][0],
        "corr",
        "hook",
        "t2",
        FixedClock(FAR_FUTURE),
        lease=LEASE,
    )
    assert (late["status"], late["duplicate"]) == ("cancelled", True)


def test_status_lists_every_action_before_and_after_its_hook_is_scheduled(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    """An eventual action has no item until its hook is scheduled; the status shows it pending, due
    where the commit put it, and then as its item says."""
    before = manage.enrollment_status(enrollment_tables, "C-1001")
    expected_due = {a["name"]: a["dueAt"] for a in enrolled["immediateActions"] + enrolled["eventualActions"]}
    assert [(a["name"], a["state"], a["dueAt"]) for a in before["actions"]] == [
        ("action2", "pending", expected_due["action2"]),
        ("action100", "pending", expected_due["action100"]),
        ("action1", "pending", expected_due["action1"]),
        ("rateChange", "pending", expected_due["rateChange"]),
    ]
    schedule_hook(enrollment_tables, "C-1001", enrolled["eventualActions"][0])
    after = manage.enrollment_status(enrollment_tables, "C-1001")
    assert [a["state"] for a in after["actions"]] == ["pending", "scheduled", "pending", "pending"]


def test_cancelled_contract_is_not_enrolled_again(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001")
    again = offers.acquire(enrollment_tables, seed_offer(), "arn:other", STARTED)
    assert again["rejection"]["error"] == "ContractCancelled"
