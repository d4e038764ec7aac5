"""The eventual workflow on the emulator with compressed time (samconfig `local`: OffsetUnitSeconds=3,
so offset 16 is due 48 s after enrollment; the emulator's scheduler sweeps every second, scripts/emulator.py)."""

from __future__ import annotations

import copy
import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import emulator
import pytest

from commonlib.clock import parse_isoformat, utc_now
from tests.integration.conftest import EnrollmentApi, LocalStack
from tests.support.enrollment import effects, post, request, stream_records
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
SEED = json.loads((Path(__file__).resolve().parents[2] / "events/enrollment/input.json").read_text())
ALL_HOOKS_DEADLINE_SECONDS = 150
# Hooks due this close together may complete in either order: one sweep of the scheduler fires both, or a
# delivery waits for a worker of its own while the next one's runs.
FIRING_TOGETHER = timedelta(seconds=emulator.scheduler_tick_seconds() + 2)


def enroll(api: EnrollmentApi, contract_id: str, actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    body["contractId"] = contract_id
    if actions is not None:
        body["contractDraft"] = {"List": actions}
    answer = post(api.url, body, api.api_key)
    assert answer.status == 201, answer
    return answer.body


def status(api: EnrollmentApi, contract_id: str) -> dict[str, Any]:
    answer = request("GET", f"{api.url}/{contract_id}", api.api_key)
    assert answer.status == 200, answer
    return answer.body


def states(api: EnrollmentApi, contract_id: str) -> dict[str, str]:
    return {action["name"]: action["state"] for action in status(api, contract_id)["actions"]}


def schedules(local_stack: LocalStack, contract_id: str) -> list[str]:
    found = local_stack.client("scheduler").list_schedules(GroupName=local_stack.outputs["HookScheduleGroupName"])
    return [s["Name"] for s in found["Schedules"] if s["Name"].startswith(f"{contract_id}.")]  # hooks.schedule_name


def assert_performed_once(local_stack: LocalStack, contract_id: str, actions: list[dict[str, Any]]) -> None:
    """Counted on the effects, not on the records written after them: the mock downstream holds one item
    per action of the contract (every action here records an effect: fulfillment.py), under the action's
    own idempotency key, and received exactly one call with that key."""
    done = effects(local_stack, contract_id)
    assert set(done) == {a["name"] for a in actions}, done
    for action in actions:
        effect = done[action["name"]]
        assert effect["idempotencyKey"] == f"{contract_id}/{action['name']}/{action['dueAt']}", effect
        assert effect["calls"] == 1, effect


@pytest.mark.long
def test_all_actions_fire_in_offset_order_exactly_once(local_stack: LocalStack, enrollment_api: EnrollmentApi) -> None:
    enroll(enrollment_api, "EV-ORDER-1")

    final = wait_until(
        lambda: (
            (s := status(enrollment_api, "EV-ORDER-1"))
            and all(a["state"] not in ("pending", "scheduled") for a in s["actions"])
            # the audit entry is appended just after the action's state changes
            and sum(e["step"].startswith("action:") for e in s["audit"]) >= len(s["actions"])
            and s
        ),
        ALL_HOOKS_DEADLINE_SECONDS,
        "every action of EV-ORDER-1 to be fulfilled",
        interval=1,
    )

    actions = final["actions"]
    assert [(a["name"], a["state"]) for a in actions] == [
        ("action2", "fulfilled"), ("action100", "fulfilled"), ("action1", "fulfilled"), ("rateChange", "fulfilled")
    ]  # fmt: skip
    # In offset order (a day lasts 3 s here), except for hooks that fire together.
    for earlier, later in itertools.combinations(actions, 2):
        apart = parse_isoformat(later["dueAt"]) - parse_isoformat(earlier["dueAt"])
        if apart > FIRING_TOGETHER:
            assert earlier["completedAt"] <= later["completedAt"], (earlier, later)
    assert all(a["completedAt"] >= a["dueAt"] for a in actions if a["offset"] > 0)
    assert [a["trigger"] for a in actions] == ["same-day", "hook", "hook", "hook"]
    fulfilled = [e["step"] for e in final["audit"] if e["outcome"].startswith("fulfilled")]
    assert sorted(fulfilled) == sorted(f"action:{a['name']}" for a in actions)  # each audited once
    assert_performed_once(local_stack, "EV-ORDER-1", actions)  # and each performed once, counted on the effect
    assert [e["step"] for e in final["audit"]].count("eventual-workflow") == 1
    assert schedules(local_stack, "EV-ORDER-1") == []  # ActionAfterCompletion: DELETE


def test_duplicated_stream_record_and_duplicated_hook_change_nothing(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    enroll(enrollment_api, "EV-DUP-1", [{"name": "action100", "offset": 1}])
    wait_until(
        lambda: states(enrollment_api, "EV-DUP-1") == {"action100": "fulfilled"}, 60, "the hook of EV-DUP-1", interval=1
    )
    before = status(enrollment_api, "EV-DUP-1")

    kinesis = local_stack.client("kinesis")
    stream = local_stack.outputs["EnrollmentStreamName"]
    record = next(r for r in stream_records(kinesis, stream) if r["contractId"] == "EV-DUP-1")
    kinesis.put_record(StreamName=stream, PartitionKey="EV-DUP-1", Data=json.dumps(record).encode())
    # A malformed record behind it in the same shard: once it is on the rejects queue, the duplicate
    # in front of it has been handled too.
    kinesis.put_record(StreamName=stream, PartitionKey="EV-DUP-1", Data=b'{"sentinel": "EV-DUP-1"}')
    sqs = local_stack.client("sqs")
    queue = local_stack.outputs["RejectedRecordsQueueUrl"]

    def sentinel_rejected() -> bool:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return any("EV-DUP-1" in json.loads(m["Body"]).get("partitionKey", "") for m in messages)

    wait_until(sentinel_rejected, 60, "the sentinel record on the rejects queue")
    hook_event = {
        "contractId": "EV-DUP-1",
        "correlationId": "dup",
        "trigger": "hook",
        "action": {"name": "action100", "offset": 1},
    }
    invoked = local_stack.client("lambda").invoke(FunctionName="FulfillAction", Payload=json.dumps(hook_event).encode())
    answer = json.loads(invoked["Payload"].read())

    assert (answer["status"], answer["duplicate"]) == ("fulfilled", True)
    assert status(enrollment_api, "EV-DUP-1") == before
    assert_performed_once(local_stack, "EV-DUP-1", before["actions"])  # the duplicates called nothing downstream
    executions = local_stack.client("stepfunctions").list_executions(
        stateMachineArn=local_stack.outputs["EnrollmentAsyncStateMachineArn"]
    )
    assert len([e for e in executions["executions"] if e["name"].startswith("EV-DUP-1-")]) == 1


def test_cancel_before_the_hooks_fire(local_stack: LocalStack, enrollment_api: EnrollmentApi) -> None:
    enroll(
        enrollment_api,
        "EV-CANCEL-1",
        [
            {"name": "action2", "offset": 0},
            {"name": "rateChange", "offset": 100, "otherData": {"newRate": 0.0499}},
            {"name": "action1", "offset": 90},
        ],
    )
    wait_until(
        lambda: len(schedules(local_stack, "EV-CANCEL-1")) == 2,
        60,
        "both hooks of EV-CANCEL-1 to be scheduled",
        interval=1,
    )

    cancelled = request("DELETE", f"{enrollment_api.url}/EV-CANCEL-1", enrollment_api.api_key)

    assert cancelled.status == 200, cancelled
    assert sorted(cancelled.body["cancelledActions"]) == ["action1", "rateChange"]
    assert schedules(local_stack, "EV-CANCEL-1") == []
    after = status(enrollment_api, "EV-CANCEL-1")
    assert after["status"] == "cancelled"
    assert {a["name"]: a["state"] for a in after["actions"]} == {
        "action2": "fulfilled",
        "action1": "cancelled",
        "rateChange": "cancelled",
    }
    assert any(e["step"] == "cancel" for e in after["audit"])
    # A retry of a finished cancel answers what it answered (a client that lost the first answer).
    again = request("DELETE", f"{enrollment_api.url}/EV-CANCEL-1", enrollment_api.api_key)
    assert (again.status, again.body) == (200, cancelled.body)
    assert request("DELETE", f"{enrollment_api.url}/EV-NOPE", enrollment_api.api_key).status == 404
    assert request("GET", f"{enrollment_api.url}/EV-NOPE", enrollment_api.api_key).status == 404
    assert request("GET", f"{enrollment_api.url}/EV-CANCEL-1", None).status == 403


def test_a_cancel_of_a_contract_the_ucp_lost_completes_with_the_functions_own_grants(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    """The contract's UCP item is gone (deleted by hand): EnrollmentManage, under its own role, reads the
    account to tell an absent item from an absent account, and the cancel completes and says so."""
    enroll(enrollment_api, "EV-CANCEL-LOST", [{"name": "action2", "offset": 0}])
    key = {"accountId": {"S": SEED["accountId"]}, "recordId": {"S": "contract#EV-CANCEL-LOST"}}
    local_stack.client("dynamodb").delete_item(TableName=local_stack.outputs["UcpTableName"], Key=key)

    cancelled = request("DELETE", f"{enrollment_api.url}/EV-CANCEL-LOST", enrollment_api.api_key)

    assert cancelled.status == 200, cancelled
    after = status(enrollment_api, "EV-CANCEL-LOST")
    assert after["status"] == "cancelled"
    [cancel] = [e for e in after["audit"] if e["step"] == "cancel"]
    assert cancel["outcome"].endswith("; the UCP had no entry for the contract"), cancel


def test_a_cancel_racing_a_firing_hook_reports_the_action_done_or_cancels_it_never_both(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    """The cancel is sent around the hook's due time: whichever wins, the action's effect exists exactly when
    the cancel reported the action done (or in flight), and never for an action it cancelled."""
    contract_id = "EV-RACE-CANCEL"
    enroll(enrollment_api, contract_id, [{"name": "action1", "offset": 3}, {"name": "action100", "offset": 300}])
    due = parse_isoformat(next(a["dueAt"] for a in status(enrollment_api, contract_id)["actions"]))
    wait_until(lambda: utc_now() >= due + timedelta(seconds=emulator.scheduler_tick_seconds() / 2), 60,
               "the hook to be about to fire")  # fmt: skip

    cancelled = request("DELETE", f"{enrollment_api.url}/{contract_id}", enrollment_api.api_key)

    assert cancelled.status == 200, cancelled
    reported_done = {a["name"] for a in cancelled.body["completedActions"]}
    assert "action100" in cancelled.body["cancelledActions"]
    assert reported_done.isdisjoint(cancelled.body["cancelledActions"])
    wait_until(
        lambda: states(enrollment_api, contract_id)["action1"] in {"fulfilled", "cancelled"}, 60, "action1 to settle"
    )
    performed = set(effects(local_stack, contract_id))
    assert performed == reported_done, (performed, cancelled.body)
    assert states(enrollment_api, contract_id)["action1"] == ("fulfilled" if performed else "cancelled")


def test_an_action_no_handler_performs_is_refused_at_intake(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    body = copy.deepcopy(SEED)
    body["contractId"] = "EV-UNKNOWN-1"
    body["contractDraft"] = {"List": [{"name": "action1", "offset": 1}, {"name": "teleport", "offset": 1}]}

    answer = post(enrollment_api.url, body, enrollment_api.api_key)

    assert answer.status == 400, answer
    assert [error["field"] for error in answer.body["errors"]] == ["contractDraft.List.1.name"]
    assert "action 'teleport' is not supported" in answer.body["errors"][0]["message"]
    # Nothing written: no offer (so no status), no hook.
    assert request("GET", f"{enrollment_api.url}/EV-UNKNOWN-1", enrollment_api.api_key).status == 404
    assert schedules(local_stack, "EV-UNKNOWN-1") == []
