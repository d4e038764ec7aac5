"""Fault injection through every Lambda Task of the three state machines, the stream consumer and the
hook target (commonlib.faults; the stack is deployed with FaultInjection=enabled by samconfig `local`).

Every Lambda Task retries `States.TaskFailed` twice, so 2 faults are transient (the run succeeds, with
no duplicate effect) and 3 are persistent (the run ends in its documented consistent state, and a
later retry of the same request succeeds). Each test ends with the invariants check (conftest).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from commonlib import faults
from commonlib.clock import parse_isoformat
from enrollment.eventual.fulfillment import lease_for
from enrollment.eventual.hooks import schedule_name
from tests.integration.conftest import EnrollmentApi, LocalStack
from tests.support.enrollment import (
    audit_trail,
    contract_items,
    effects,
    post,
    reconcile,
    request,
    scan,
    stream_records,
)
from tests.support.invariants import ucp_contracts as ucp_contract_items
from tests.support.template import template
from tests.support.waiting import finished_execution, wait_until

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"
SEED = json.loads((EVENTS / "input.json").read_text())
TRANSIENT, PERSISTENT = 2, 3
# One same-day action and one far in the future: no hook fires while these tests run.
DRAFT = {"List": [{"name": "action2", "offset": 0}, {"name": "action1", "offset": 300}]}


class Faults:
    def __init__(self, local_stack: LocalStack) -> None:
        self.dynamodb = local_stack.client("dynamodb")
        self.table = local_stack.outputs["FaultInjectionTableName"]
        self.armed: list[tuple[str, str]] = []

    def arm(self, function_name: str, failures: int, at: str = faults.BEFORE, contract_id: str | None = None) -> None:
        """`contract_id`: only invocations of that contract take the fault (FulfillAction and ScheduleHook also
        run for the hooks and re-drives of earlier scenarios on this stack, which must not take it)."""
        faults.arm(self.dynamodb, self.table, function_name, failures, at, contract_id)
        self.armed.append((function_name, at))

    def injected(self, function_name: str, at: str = faults.BEFORE) -> int:
        return faults.injected_count(self.dynamodb, self.table, function_name, at)

    def disarm_all(self) -> None:
        for function_name, at in self.armed:
            faults.arm(self.dynamodb, self.table, function_name, 0, at)


@pytest.fixture(scope="module", autouse=True)
def no_hook_outlives_this_module(local_stack: LocalStack, enrollment_api: EnrollmentApi) -> Iterator[None]:
    """The contracts enrolled here keep far-future hooks (offset 200 or 300: 10 to 15 minutes locally)
    that no test here waits for. Cancelling them when the module ends keeps them from firing into the
    later tests that need a quiet stack (test_malformed_inputs.py)."""
    yield
    for item in scan(local_stack.client("dynamodb"), local_stack.outputs["OffersTableName"]):
        if item["OfferId"].startswith("FI-") and item["status"] == "enrolled":
            answer = request("DELETE", f"{enrollment_api.url}/{item['OfferId']}", enrollment_api.api_key)
            assert answer.status == 200, answer


@pytest.fixture
def fault(local_stack: LocalStack) -> Iterator[Faults]:
    injector = Faults(local_stack)
    try:
        yield injector
    finally:
        injector.disarm_all()


def offer(contract_id: str, account_id: str = "A-100") -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    body.update(contractId=contract_id, accountId=account_id, contractDraft=copy.deepcopy(DRAFT))
    return body


def offer_item(local_stack: LocalStack, contract_id: str) -> dict[str, Any] | None:
    answer = local_stack.client("dynamodb").get_item(
        TableName=local_stack.outputs["OffersTableName"], Key={"OfferId": {"S": contract_id}}, ConsistentRead=True
    )
    return _plain(answer.get("Item"))


def settled(local_stack: LocalStack, contract_id: str, status: str) -> None:
    """Wait (bounded) for the run of `contract_id` to leave its offer in `status`. A 500 answers at the
    API's 28 s deadline at the latest; on a loaded machine a run that reverts after three failed attempts
    of a step can still be reverting then (it goes on, and a retry meanwhile gets 409 ContractInProgress),
    so what the failure leaves is read once the run has ended, never before."""
    wait_until(
        lambda: (offer_item(local_stack, contract_id) or {}).get("status") == status, 60, f"{contract_id} {status}"
    )


def ucp_contracts(local_stack: LocalStack, account_id: str = "A-100") -> dict[str, Any]:
    """The contracts the account holds in the UCP (an item each), by contract id."""
    answer = local_stack.client("dynamodb").query(
        TableName=local_stack.outputs["UcpTableName"],
        KeyConditionExpression="accountId = :account AND begins_with(recordId, :contract)",
        ExpressionAttributeValues={":account": {"S": account_id}, ":contract": {"S": "contract#"}},
        ConsistentRead=True,
    )
    return ucp_contract_items([_plain(item) for item in answer["Items"]], account_id)


def actions(local_stack: LocalStack, contract_id: str) -> dict[str, dict[str, Any]]:
    items = contract_items(local_stack.client("dynamodb"), local_stack.outputs["ActionsTableName"], contract_id)
    return {a["actionName"]: a for a in items}


def published(local_stack: LocalStack, contract_id: str) -> int:
    records = stream_records(local_stack.client("kinesis"), local_stack.outputs["EnrollmentStreamName"])
    return len({json.dumps(r, sort_keys=True) for r in records if r.get("contractId") == contract_id})


def payments(local_stack: LocalStack, contract_id: str) -> list[str]:
    executions = local_stack.client("stepfunctions").list_executions(
        stateMachineArn=local_stack.outputs["PaymentStateMachineArn"]
    )["executions"]
    return [e["name"] for e in executions if e["name"].startswith(f"{contract_id}-payment-")]


def _plain(item: dict[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    deserializer = TypeDeserializer()
    return {key: deserializer.deserialize(value) for key, value in item.items()}


def assert_enrolled_once(local_stack: LocalStack, contract_id: str, reverted_before: int = 0) -> None:
    """Enrolled now, published once, one payment; the audit keeps each earlier, reverted enrollment too."""
    assert offer_item(local_stack, contract_id)["status"] == "enrolled"
    assert ucp_contracts(local_stack)[contract_id]["status"] == "enrolled"
    assert published(local_stack, contract_id) == 1
    assert payments(local_stack, contract_id) == [f"{contract_id}-payment-1"]
    trail = audit_trail(local_stack, contract_id)
    assert [e for e in trail if e.startswith("enroll=")] == ["enroll=enrolled: UCP updated, payments set"] * (
        1 + reverted_before
    )
    assert len([e for e in trail if e.startswith("revert=")]) == reverted_before


# ------------------------------------------------------------------ immediate workflow (EXPRESS, sync)

IMMEDIATE_STEPS = ["AcceptOffer", "VerifyCustomer", "RulesLab", "CommitEnrollment", "PublishEnrollment"]


@pytest.mark.parametrize("function_name", IMMEDIATE_STEPS)
def test_transient_fault_in_an_immediate_step_is_retried_and_enrolls_once(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults, function_name: str
) -> None:
    contract_id = f"FI-T-{function_name}"
    fault.arm(function_name, TRANSIENT)

    answer = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)

    assert answer.status == 201, answer
    assert fault.injected(function_name) == TRANSIENT
    assert_enrolled_once(local_stack, contract_id)
    assert actions(local_stack, contract_id)["action2"]["state"] == "fulfilled"


@pytest.mark.parametrize("function_name", IMMEDIATE_STEPS)
def test_persistent_fault_in_an_immediate_step_fails_consistently_and_a_retry_enrolls(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults, function_name: str
) -> None:
    contract_id = f"FI-P-{function_name}"
    fault.arm(function_name, PERSISTENT)

    failed = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)

    assert failed.status == 500, failed
    assert failed.body["error"] == "EnrollmentFailed"
    assert "Traceback" not in json.dumps(failed.body)
    assert fault.injected(function_name) == PERSISTENT
    if function_name != "AcceptOffer":
        settled(local_stack, contract_id, "failed")
    stored = offer_item(local_stack, contract_id)
    if function_name == "AcceptOffer":
        assert stored is None, "nothing is written when the guard step itself never ran"
    else:
        assert stored["status"] == "failed"
        reason = stored.get("statusReason") or stored.get("failureReason") or ""
        assert any(word in reason for word in ("injected fault", "HandlerError", "TaskFailed")), reason
        assert any(e.startswith(("failure=", "revert=")) for e in audit_trail(local_stack, contract_id))
    assert contract_id not in ucp_contracts(local_stack)
    assert {a["state"] for a in actions(local_stack, contract_id).values()} <= {"cancelled"}
    assert published(local_stack, contract_id) == 0
    assert payments(local_stack, contract_id) == []

    retried = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)

    assert retried.status == 201, retried
    assert_enrolled_once(local_stack, contract_id, reverted_before=1 if function_name == "PublishEnrollment" else 0)


def test_a_commit_that_wrote_but_lost_its_answer_is_reverted_and_a_retry_enrolls_once(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    """Every attempt of CommitEnrollment writes (or replays) its transaction and then fails (`after`): the
    client is told the enrollment failed, so the contract must not stay enrolled behind its back."""
    contract_id = "FI-A-CommitEnrollment"
    fault.arm("CommitEnrollment", PERSISTENT, at=faults.AFTER, contract_id=contract_id)

    failed = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)

    assert failed.status == 500, failed
    assert fault.injected("CommitEnrollment", at=faults.AFTER) == PERSISTENT
    settled(local_stack, contract_id, "failed")
    assert contract_id not in ucp_contracts(local_stack)
    assert {name: item["state"] for name, item in actions(local_stack, contract_id).items()} == {
        "action2": "cancelled",
        "action1": "cancelled",
    }
    assert effects(local_stack, contract_id) == {}
    assert published(local_stack, contract_id) == 0
    assert payments(local_stack, contract_id) == []
    trail = audit_trail(local_stack, contract_id)
    assert [e for e in trail if e.startswith(("revert=", "failure="))] == [e for e in trail if e.startswith("revert=")]
    assert len([e for e in trail if e.startswith("revert=")]) == 1

    retried = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)
    assert retried.status == 201, retried
    assert_enrolled_once(local_stack, contract_id, reverted_before=1)


def test_faults_in_the_outcome_recorder_on_the_ineligible_path(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    # A-200 is ineligible (bankruptcy flag): RecordIneligible runs RecordEnrollmentOutcome.
    fault.arm("RecordEnrollmentOutcome", TRANSIENT)
    transient = post(enrollment_api.url, offer("FI-T-RecordOutcome", "A-200"), enrollment_api.api_key)
    assert transient.status == 200, transient
    assert transient.body["status"] == "ineligible"
    assert offer_item(local_stack, "FI-T-RecordOutcome")["status"] == "ineligible"

    # Persistent: RecordIneligible gives up, its Catch runs RecordFailure (the same function, healthy again).
    fault.arm("RecordEnrollmentOutcome", PERSISTENT)
    failed = post(enrollment_api.url, offer("FI-P-RecordOutcome", "A-200"), enrollment_api.api_key)
    assert failed.status == 500, failed
    settled(local_stack, "FI-P-RecordOutcome", "failed")
    assert "FI-P-RecordOutcome" not in ucp_contracts(local_stack, "A-200")

    retried = post(enrollment_api.url, offer("FI-P-RecordOutcome", "A-200"), enrollment_api.api_key)
    assert retried.status == 200, retried
    assert offer_item(local_stack, "FI-P-RecordOutcome")["status"] == "ineligible"


def test_transient_fault_in_the_compensation_still_reverts(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    contract_id = "FI-T-RevertEnrollment"
    fault.arm("PublishEnrollment", PERSISTENT)
    fault.arm("RevertEnrollment", TRANSIENT)

    failed = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)

    assert failed.status == 500, failed
    assert fault.injected("RevertEnrollment") == TRANSIENT
    settled(local_stack, contract_id, "failed")
    assert contract_id not in ucp_contracts(local_stack)
    assert {a["state"] for a in actions(local_stack, contract_id).values()} == {"cancelled"}
    assert published(local_stack, contract_id) == 0
    assert [e for e in audit_trail(local_stack, contract_id) if e.startswith("revert=")]

    retried = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)
    assert retried.status == 201, retried
    assert_enrolled_once(local_stack, contract_id, reverted_before=1)


def test_a_compensation_that_dies_after_its_revert_is_finished_by_its_retry(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    """RevertEnrollment writes its transaction (offer failed, UCP entry deleted, same-day action
    cancelled), then dies before it cancels the eventual action (`after-revert`): the state machine's
    retry of the step finishes the cancels, so the eventual action's item exists, cancelled."""
    contract_id = "FI-A-RevertEnrollment"
    fault.arm("PublishEnrollment", PERSISTENT, contract_id=contract_id)
    fault.arm("RevertEnrollment", 1, at="after-revert", contract_id=contract_id)

    failed = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)

    assert failed.status == 500, failed
    assert fault.injected("RevertEnrollment", at="after-revert") == 1
    settled(local_stack, contract_id, "failed")
    stored = actions(local_stack, contract_id)
    assert {name: item["state"] for name, item in stored.items()} == {"action2": "cancelled", "action1": "cancelled"}
    assert len([e for e in audit_trail(local_stack, contract_id) if e.startswith("revert=")]) == 1
    assert contract_id not in ucp_contracts(local_stack)

    retried = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)
    assert retried.status == 201, retried
    assert_enrolled_once(local_stack, contract_id, reverted_before=1)


@pytest.mark.long
def test_faults_in_the_same_day_fulfillment(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    fault.arm("FulfillAction", TRANSIENT, contract_id="FI-T-FulfillAction")
    transient = post(enrollment_api.url, offer("FI-T-FulfillAction"), enrollment_api.api_key)
    assert transient.status == 201, transient
    assert [a["status"] for a in transient.body["sameDayActions"]] == ["fulfilled"]
    assert [e for e in audit_trail(local_stack, "FI-T-FulfillAction") if e.startswith("action:action2=")] == [
        "action:action2=fulfilled (same-day)"
    ]
    assert effects(local_stack, "FI-T-FulfillAction")["action2"]["calls"] == 1
    assert fault.injected("FulfillAction") == TRANSIENT

    # Persistent: the enrollment stands (it is committed and published); the answer says the same-day
    # delivery was deferred, the action stays pending, and the reconciler delivers it again: once.
    contract_id = "FI-P-FulfillAction"
    fault.arm("FulfillAction", PERSISTENT, contract_id=contract_id)
    answer = post(enrollment_api.url, offer(contract_id), enrollment_api.api_key)
    assert answer.status == 201, answer
    assert [a["status"] for a in answer.body["sameDayActions"]] == ["deferred"]
    assert actions(local_stack, contract_id)["action2"]["state"] == "pending"
    assert effects(local_stack, contract_id) == {}
    assert_enrolled_once(local_stack, contract_id)

    reconciled_until(local_stack, lambda: action_state(local_stack, contract_id, "action2") == "fulfilled")
    assert effects(local_stack, contract_id)["action2"]["calls"] == 1


# A crash at each point of a same-day delivery: (the action it hits, how often the downstream is then
# called with the action's key). After the claim, nothing was performed yet; after rateChange's UCP write,
# the takeover finds the rate set with its key (not set again) and records the effect once; after the
# effect, the takeover calls again with the same key (the downstream performs it once); after the
# completion, the retry is a duplicate.
DELIVERY_CRASHES = {
    "after-claim": ("action2", 1),
    "after-rate": ("rateChange", 1),
    "after-effect": ("action2", 2),
    faults.AFTER: ("action2", 1),
}
NEW_RATE = 0.0399


@pytest.mark.long
def test_a_same_day_delivery_that_crashes_after_any_write_is_finished_once_with_the_same_key(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    contracts = {}
    for point, (action_name, _) in DELIVERY_CRASHES.items():
        contract_id = f"FI-{point}-FulfillAction"
        body = offer(contract_id)
        if action_name == "rateChange":
            body["contractDraft"]["List"][0] = {"name": "rateChange", "offset": 0, "otherData": {"newRate": NEW_RATE}}
        fault.arm("FulfillAction", 1, at=point, contract_id=contract_id)
        answer = post(enrollment_api.url, body, enrollment_api.api_key)
        assert answer.status == 201, answer
        assert fault.injected("FulfillAction", at=point) == 1
        contracts[point] = contract_id

    # A claim whose delivery crashed is taken over once its lease lapsed (the invocation's timeout and a margin).
    reconciled_until(
        local_stack,
        lambda: all(
            action_state(local_stack, c, DELIVERY_CRASHES[point][0]) == "fulfilled" for point, c in contracts.items()
        ),
        deadline=150,
    )
    for point, contract_id in contracts.items():
        action_name, calls = DELIVERY_CRASHES[point]
        item = actions(local_stack, contract_id)[action_name]
        effect = effects(local_stack, contract_id)[action_name]
        assert effect["calls"] == calls, point
        assert effect["idempotencyKey"] == f"{contract_id}/{action_name}/{item['dueAt']}"
        fulfilled = [
            e for e in audit_trail(local_stack, contract_id) if e.startswith(f"action:{action_name}=fulfilled")
        ]
        assert len(fulfilled) == 1, point
        if action_name == "rateChange":
            entry = ucp_contracts(local_stack)[contract_id]
            assert entry["interestRate"] == Decimal(str(NEW_RATE))
            assert entry["rateChange"]["idempotencyKey"] == effect["idempotencyKey"]
            # Set by the crashed attempt, within its lease: the takeover (after the lease) did not set it again.
            longest_lease = lease_for(int(template()["Globals"]["Function"]["Timeout"]) * 1000)
            assert parse_isoformat(entry["rateChange"]["at"]) < parse_isoformat(item["claimedAt"]) + longest_lease


def action_state(local_stack: LocalStack, contract_id: str, name: str) -> str | None:
    return actions(local_stack, contract_id).get(name, {}).get("state")


def reconciled_until(local_stack: LocalStack, done: Any, deadline: float = 120) -> None:
    """Run the reconciler (as its schedule does) until `done()`: it repairs only once a fault has had
    its grace (ReconcileGraceSeconds, 20 s locally), and a re-created hook fires on the next tick."""

    def probe() -> bool:
        if done():
            return True
        reconcile(local_stack)
        return bool(done())

    wait_until(probe, deadline, "the reconciler to repair it", interval=5)


# ------------------------------------------------------------------ payment workflow (STANDARD)

PAYMENT_STEPS = ["mock-create-order", "mock-hold-payment", "mock-accept-payment"]


def run_payment(local_stack: LocalStack, order_id: str) -> dict[str, Any]:
    stepfunctions = local_stack.client("stepfunctions")
    started = stepfunctions.start_execution(
        stateMachineArn=local_stack.outputs["PaymentStateMachineArn"], input=json.dumps({"orderId": order_id})
    )
    return finished_execution(stepfunctions, started["executionArn"], deadline_seconds=90)


def order(local_stack: LocalStack, order_id: str) -> dict[str, Any] | None:
    answer = local_stack.client("dynamodb").get_item(
        TableName=local_stack.outputs["OrdersTableName"], Key={"orderId": {"S": order_id}}, ConsistentRead=True
    )
    return _plain(answer.get("Item"))


@pytest.mark.parametrize("function_name", PAYMENT_STEPS)
def test_payment_step_faults_transient_then_persistent_then_retry(
    local_stack: LocalStack, fault: Faults, function_name: str
) -> None:
    order_id = f"fi-{function_name}"
    fault.arm(function_name, TRANSIENT)
    assert run_payment(local_stack, f"{order_id}-t")["status"] == "SUCCEEDED"
    assert order(local_stack, f"{order_id}-t")["status"] == "paid"

    fault.arm(function_name, PERSISTENT)
    failed = run_payment(local_stack, order_id)
    assert failed["status"] == "FAILED"
    stored = order(local_stack, order_id)
    if function_name == "mock-create-order":
        assert stored is None, "the order is never written when creating it failed"
    else:
        assert stored["status"] == "failed"
        assert stored["failureReason"]

    retried = run_payment(local_stack, order_id)
    assert retried["status"] == "SUCCEEDED", retried
    assert order(local_stack, order_id)["status"] == "paid"


# ------------------------------------------------------------------ eventual workflow


def enroll_with_hooks(enrollment_api: EnrollmentApi, contract_id: str, offsets: dict[str, int]) -> None:
    body = offer(contract_id)
    body["contractDraft"] = {"List": [{"name": name, "offset": offset} for name, offset in offsets.items()]}
    answer = post(enrollment_api.url, body, enrollment_api.api_key)
    assert answer.status == 201, answer


def async_executions(local_stack: LocalStack, contract_id: str) -> list[dict[str, Any]]:
    """The async runs of a contract. Listing EXPRESS executions is the emulator's; the product and the
    reconciler never read an execution back (AWS does not describe EXPRESS runs)."""
    executions = local_stack.client("stepfunctions").list_executions(
        stateMachineArn=local_stack.outputs["EnrollmentAsyncStateMachineArn"]
    )["executions"]
    # Named `<contractId>-<digest>` or `<contractId>-redrive-<token>`: a prefix alone would also match
    # another contract whose id starts with this one.
    return [e for e in executions if e["name"].rpartition("-")[0] in (contract_id, f"{contract_id}-redrive")]


def confirmed(local_stack: LocalStack, contract_id: str) -> bool:
    return bool(((offer_item(local_stack, contract_id) or {}).get("eventualWorkflow") or {}).get("confirmedAt"))


def hook_exists(local_stack: LocalStack, contract_id: str, action_name: str) -> bool:
    scheduler = local_stack.client("scheduler")
    try:
        scheduler.get_schedule(
            GroupName=local_stack.outputs["HookScheduleGroupName"], Name=schedule_name(contract_id, action_name)
        )
    except scheduler.exceptions.ResourceNotFoundException:
        return False
    return True


def test_transient_fault_in_the_stream_consumer_is_retried_and_starts_the_workflow_once(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    contract_id = "FI-T-DataLambda"
    fault.arm("DataLambda", TRANSIENT)

    enroll_with_hooks(enrollment_api, contract_id, {"action1": 300})

    # An eventual action has no item until its hook is scheduled.
    wait_until(lambda: action_state(local_stack, contract_id, "action1") == "scheduled", 90, "the hook")
    wait_until(lambda: confirmed(local_stack, contract_id), 60, "the eventual workflow to confirm")
    assert fault.injected("DataLambda") == TRANSIENT
    assert len(async_executions(local_stack, contract_id)) == 1


@pytest.mark.long
@pytest.mark.parametrize("point", ["after-claim", "after-audit"])
def test_a_stream_consumer_that_dies_after_its_claim_is_redriven_by_the_reconciler(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults, point: str
) -> None:
    """DataLambda marks the offer's workflow as started (and audits the start), then dies before starting
    it: every redelivery of the record finds the mark and starts nothing. The offer stays unconfirmed; the
    reconciler re-drives it from the offer item, and the audit trail shows every attempt."""
    contract_id = f"FI-{point}-DataLambda"
    fault.arm("DataLambda", 1, at=point)

    enroll_with_hooks(enrollment_api, contract_id, {"action1": 300, "action100": 200})
    wait_until(lambda: fault.injected("DataLambda", at=point) == 1, 60, f"DataLambda to die {point}")
    assert async_executions(local_stack, contract_id) == []
    assert not confirmed(local_stack, contract_id)

    reconciled_until(local_stack, lambda: confirmed(local_stack, contract_id))

    assert {a: action_state(local_stack, contract_id, a) for a in ("action1", "action100")} == {
        "action1": "scheduled", "action100": "scheduled"
    }  # fmt: skip
    assert hook_exists(local_stack, contract_id, "action1")
    assert hook_exists(local_stack, contract_id, "action100")
    assert [e["name"] for e in async_executions(local_stack, contract_id)] == [
        offer_item(local_stack, contract_id)["eventualWorkflow"]["executionName"]
    ]
    trail = audit_trail(local_stack, contract_id)
    assert any(e.startswith("reconcile=eventual workflow re-driven") for e in trail)
    attempts = [e for e in trail if e.startswith("eventual-workflow=")]
    first = ["eventual-workflow=starting: 2 hooks to schedule"] if point == "after-audit" else []
    assert attempts == [*first, "eventual-workflow=re-driving: 2 hooks to schedule"]


@pytest.mark.parametrize(
    ("function_name", "point"),
    [("DataLambda", "after-start"), ("ScheduleHook", faults.AFTER)],
)
def test_a_crash_after_an_eventual_write_is_retried_without_a_second_effect(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults, function_name: str, point: str
) -> None:
    """DataLambda audited and started the run (its last write), then died: the redelivered record finds
    the mark and starts no second run. ScheduleHook created the hook, then
    died: the retried step finds this hook under its name and creates no second one."""
    contract_id = f"FI-{function_name}-{point}"
    # ScheduleHook's fault for this contract only; DataLambda's event is a batch of stream records, which
    # names no contract at its top.
    fault.arm(function_name, 1, at=point, contract_id=contract_id if function_name == "ScheduleHook" else None)

    enroll_with_hooks(enrollment_api, contract_id, {"action1": 300})

    wait_until(lambda: confirmed(local_stack, contract_id), 90, "the eventual workflow to confirm")
    assert fault.injected(function_name, at=point) == 1
    assert len(async_executions(local_stack, contract_id)) == 1
    assert action_state(local_stack, contract_id, "action1") == "scheduled"
    assert hook_exists(local_stack, contract_id, "action1")
    # The start was audited once, before it; the redelivered record writes nothing.
    started = [e for e in audit_trail(local_stack, contract_id) if e.startswith("eventual-workflow=")]
    assert started == ["eventual-workflow=starting: 1 hooks to schedule"]


@pytest.mark.long
def test_schedule_hook_faults_transient_then_persistent_then_the_reconciler_redrives(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    fault.arm("ScheduleHook", TRANSIENT, contract_id="FI-T-ScheduleHook")
    enroll_with_hooks(enrollment_api, "FI-T-ScheduleHook", {"action1": 300})
    # The action is marked `scheduled` before its hook is created: wait for the hook itself.
    wait_until(lambda: hook_exists(local_stack, "FI-T-ScheduleHook", "action1"), 90, "the hook")
    assert fault.injected("ScheduleHook") == TRANSIENT
    assert action_state(local_stack, "FI-T-ScheduleHook", "action1") == "scheduled"

    # Persistent: the action fails with the reason, the run fails (its alarm), the offer stays unconfirmed.
    contract_id = "FI-P-ScheduleHook"
    fault.arm("ScheduleHook", PERSISTENT, contract_id=contract_id)
    enroll_with_hooks(enrollment_api, contract_id, {"action1": 300})
    failed = wait_until(
        lambda: (a := actions(local_stack, contract_id).get("action1")) and a["state"] == "failed" and a,
        90,
        "the action to be marked failed",
    )
    assert failed["failureReason"].startswith("the hook could not be scheduled")
    wait_until(
        lambda: [e["status"] for e in async_executions(local_stack, contract_id)] == ["FAILED"], 60, "the run to fail"
    )
    assert not confirmed(local_stack, contract_id)

    # Once the Scheduler answers again, the reconciler re-drives the workflow: the action gets its hook.
    fault.disarm_all()
    reconciled_until(local_stack, lambda: confirmed(local_stack, contract_id))
    assert action_state(local_stack, contract_id, "action1") == "scheduled"
    assert hook_exists(local_stack, contract_id, "action1")


@pytest.mark.long
def test_a_hook_delivery_that_fails_before_its_claim_is_delivered_again_by_the_reconciler(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    """On AWS the Scheduler hands the hook to Lambda asynchronously: Lambda retries a failing handler
    twice and then sends the event to the hooks' DLQ (last test); the emulator's scheduler calls the
    function once. Either way the action stays `scheduled` with no hook (it deleted itself after
    firing) until the reconciler re-creates it: performed once."""
    contract_id = "FI-HookTarget"
    # No same-day action in this draft: the hook is the first call.
    fault.arm("FulfillAction", 1, contract_id=contract_id)

    enroll_with_hooks(enrollment_api, contract_id, {"action1": 1})

    wait_until(lambda: fault.injected("FulfillAction") == 1, 90, "the hook to fire into the fault")
    assert action_state(local_stack, contract_id, "action1") == "scheduled"
    assert effects(local_stack, contract_id) == {}

    reconciled_until(local_stack, lambda: action_state(local_stack, contract_id, "action1") == "fulfilled")
    assert effects(local_stack, contract_id)["action1"]["calls"] == 1
    fulfilled = [e for e in audit_trail(local_stack, contract_id) if e.startswith("action:action1=fulfilled")]
    assert len(fulfilled) == 1


@pytest.mark.long
def test_a_hook_delivery_that_crashes_after_its_effect_is_finished_once_with_the_same_key(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    contract_id = "FI-HookEffect"
    fault.arm("FulfillAction", 1, at="after-effect", contract_id=contract_id)

    enroll_with_hooks(enrollment_api, contract_id, {"action1": 1})

    wait_until(lambda: fault.injected("FulfillAction", at="after-effect") == 1, 90, "the hook to crash")
    assert action_state(local_stack, contract_id, "action1") == "running"
    assert effects(local_stack, contract_id)["action1"]["calls"] == 1

    reconciled_until(local_stack, lambda: action_state(local_stack, contract_id, "action1") == "fulfilled")
    effect = effects(local_stack, contract_id)["action1"]
    assert effect["calls"] == 2, "the takeover calls the downstream again, with the same key"
    assert actions(local_stack, contract_id)["action1"]["attempts"] == 2


@pytest.mark.long
def test_a_hook_delivery_that_died_holding_its_claim_performs_nothing_after_a_cancel(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    """The hook's delivery claimed action1 and died before its effect; the client cancelled meanwhile, and
    the answer reports the action in flight. Once the lease lapses the reconciler's hook settles the claim:
    the downstream has no effect under its key, so the action ends cancelled, never performed."""
    contract_id = "FI-HookDiedCancel"
    fault.arm("FulfillAction", 1, at="after-claim", contract_id=contract_id)

    enroll_with_hooks(enrollment_api, contract_id, {"action1": 1})
    wait_until(lambda: fault.injected("FulfillAction", at="after-claim") == 1, 90, "the hook to die holding its claim")
    assert action_state(local_stack, contract_id, "action1") == "running"

    cancel = request("DELETE", f"{enrollment_api.url}/{contract_id}", enrollment_api.api_key)
    assert cancel.status == 200, cancel
    assert cancel.body["completedActions"] == [{"name": "action1", "state": "running"}]

    reconciled_until(local_stack, lambda: action_state(local_stack, contract_id, "action1") == "cancelled")
    assert "action1" not in effects(local_stack, contract_id), "nothing performed after the cancel"
    assert actions(local_stack, contract_id)["action1"]["failureReason"].startswith(
        "not performed: the contract is cancelled"
    )
    # Its hook has done its work: the next sweep removes it like any other hook of a cancelled contract.
    wait_until(
        lambda: reconcile(local_stack) is not None and not hook_exists(local_stack, contract_id, "action1"),
        30,
        "the settled hook to be removed",
        interval=5,
    )


CANCEL_POINTS = [
    "cancel-after-cancelling",
    "cancel-after-hook-deleted",
    "cancel-after-action-cancelled",  # the first action cancelled, the next one's hook not deleted yet
    "cancel-after-actions",
    "cancel-after-ucp",
    faults.AFTER,
]


@pytest.mark.parametrize("point", CANCEL_POINTS)
def test_a_cancel_interrupted_after_any_write_is_finished_by_its_retry(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults, point: str
) -> None:
    contract_id = f"FI-Cancel-{CANCEL_POINTS.index(point)}"
    enroll_with_hooks(enrollment_api, contract_id, {"action2": 0, "action1": 300, "action100": 200})
    wait_until(lambda: confirmed(local_stack, contract_id), 60, "both hooks")
    fault.arm("EnrollmentManageApi", 1, at=point)
    url = f"{enrollment_api.url}/{contract_id}"

    interrupted = request("DELETE", url, enrollment_api.api_key)
    retried = request("DELETE", url, enrollment_api.api_key)
    again = request("DELETE", url, enrollment_api.api_key)

    assert interrupted.status >= 500, interrupted
    assert fault.injected("EnrollmentManageApi", at=point) == 1
    assert (retried.status, again.status) == (200, 200), (retried, again)
    stored = offer_item(local_stack, contract_id)
    assert (
        retried.body
        == again.body
        == {
            "contractId": contract_id,
            "status": "cancelled",
            "cancelledActions": ["action100", "action1"],
            "completedActions": [{"name": "action2", "state": "fulfilled"}],
            # The enrollment's run claimed its first payment before the cancel: it went ahead, and is reported.
            "firstPayment": {"status": "started", "claimedAt": stored["firstPaymentClaimedAt"]},
        }
    )
    assert stored["status"] == "cancelled"
    assert ucp_contracts(local_stack)[contract_id]["status"] == "cancelled"
    assert not hook_exists(local_stack, contract_id, "action1")
    assert not hook_exists(local_stack, contract_id, "action100")
    assert set(effects(local_stack, contract_id)) == {"action2"}
    assert [e for e in audit_trail(local_stack, contract_id) if e.startswith("cancel=")] == [
        "cancel=cancelled: 2 pending actions cancelled, 1 already done or in flight; the first payment was already"
        " started"
    ]


@pytest.mark.long
def test_a_publication_whose_answer_was_lost_is_reverted_and_none_of_its_hooks_performs(
    local_stack: LocalStack, enrollment_api: EnrollmentApi, fault: Faults
) -> None:
    """Every attempt of PublishEnrollment writes the record and then fails: the immediate workflow reverts
    the enrollment, while the stream consumer may already have scheduled the hooks. None of them performs
    anything (a claim needs an enrolled contract), the reconciler removes them, and a retry of the offer
    enrolls anew: each action is then performed once, for the new enrollment."""
    contract_id = "FI-Uncertain-Publish"
    fault.arm("PublishEnrollment", PERSISTENT, at=faults.AFTER)
    body = offer(contract_id)
    body["contractDraft"] = {"List": [{"name": "action2", "offset": 0}, {"name": "action1", "offset": 5}]}

    failed = post(enrollment_api.url, body, enrollment_api.api_key)

    assert failed.status == 500, failed
    assert fault.injected("PublishEnrollment", at=faults.AFTER) == PERSISTENT
    settled(local_stack, contract_id, "failed")
    # Its action1 was due 15 s after the first enrollment, well after the revert: the hook is removed.
    reconciled_until(
        local_stack,
        lambda: (
            not hook_exists(local_stack, contract_id, "action1")
            and {a["state"] for a in actions(local_stack, contract_id).values()} == {"cancelled"}
        ),
    )
    assert effects(local_stack, contract_id) == {}

    fault.disarm_all()
    retried = post(enrollment_api.url, body, enrollment_api.api_key)

    assert retried.status == 201, retried
    wait_until(lambda: action_state(local_stack, contract_id, "action1") == "fulfilled", 90, "the new action1")
    done = effects(local_stack, contract_id)
    assert set(done) == {"action2", "action1"}
    new_due = actions(local_stack, contract_id)["action1"]["dueAt"]
    assert done["action1"]["idempotencyKey"] == f"{contract_id}/action1/{new_due}"
    assert done["action1"]["calls"] == done["action2"]["calls"] == 1


def test_an_asynchronous_invocation_that_keeps_failing_lands_on_the_hooks_dead_letter_queue(
    local_stack: LocalStack, fault: Faults
) -> None:
    """On AWS the hooks' schedules invoke FulfillAction asynchronously: Lambda retries a failed event
    twice and then sends it with its error to the hooks' dead-letter queue (EventInvokeConfig
    OnFailure). The emulator's scheduler calls the function directly, so the asynchronous path is
    driven here with an `Event` invocation: 1 call + 2 retries, all failing."""
    marker = {"contractId": "FI-Async-FulfillAction", "correlationId": "dead-letter"}
    fault.arm("FulfillAction", PERSISTENT, contract_id=marker["contractId"])

    local_stack.client("lambda").invoke(
        FunctionName="FulfillAction", InvocationType="Event", Payload=json.dumps(marker).encode()
    )

    sqs = local_stack.client("sqs")
    queue = local_stack.outputs["HookDeadLetterQueueUrl"]

    def dead_lettered() -> dict[str, Any] | None:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        records = [json.loads(message["Body"]) for message in messages]
        return next((r for r in records if r.get("requestPayload") == marker), None)

    record = wait_until(dead_lettered, 90, "the failed event on the hooks' dead-letter queue", interval=1)
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert fault.injected("FulfillAction") == PERSISTENT, record
