"""The first payment is claimed, then started: the immediate workflow's ClaimFirstPayment, as its ASL
writes it, applied by moto, and what a cancel then reports. A cancel that comes first leaves the payment
unstarted; one that comes after reports it started. A payment the workflow could not start is recorded on
the offer (FlagPaymentNotStarted) and started by the reconciler: never lost in silence."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from commonlib.clock import parse_isoformat
from enrollment import store
from enrollment.eventual import hooks, manage, reconcile
from enrollment.store import Tables
from tests.support.state_machines import state_at
from tests.unit.enrollment_fixtures import EXECUTION, OTHER_EXECUTION, STARTED, FixedClock, RecordingStepFunctions

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "enrollment.asl.json"
CLAIMED_AT = "2026-01-31T12:00:02.000Z"


def run_state(state: str, contract_id: str, execution_id: str) -> None:
    """`state`'s Arguments, its JSONata expressions evaluated for this run, sent to moto."""
    values = {
        "$offer.contractId": contract_id,
        "$states.context.State.EnteredTime": CLAIMED_AT,
        "$states.context.Execution.Id": execution_id,
    }
    arguments = state_at(json.loads(ASL.read_text()), state)["Arguments"]
    text = re.sub(r"\{% (.+?) %\}", lambda match: values[match.group(1)], json.dumps(arguments))
    request = json.loads(text.replace("${OffersTableName}", "Offers"))
    boto3.client("dynamodb", region_name="us-east-1").update_item(**request)


def claim_first_payment(contract_id: str, execution_id: str) -> None:
    run_state("ClaimFirstPayment", contract_id, execution_id)


def test_the_run_that_enrolled_the_contract_claims_its_first_payment(
    enrollment_tables: Tables, enrolled: dict[str, Any]
) -> None:
    claim_first_payment("C-1001", EXECUTION)

    assert store.get_offer(enrollment_tables, "C-1001")["firstPaymentClaimedAt"] == CLAIMED_AT


@pytest.mark.parametrize("why", ["cancelling", "another execution"])
def test_no_first_payment_is_claimed_for_a_contract_another_run_or_a_cancel_holds(
    enrollment_tables: Tables, enrolled: dict[str, Any], why: str
) -> None:
    execution = EXECUTION
    if why == "cancelling":
        store.start_cancel(enrollment_tables, "C-1001", STARTED)
    else:
        execution = OTHER_EXECUTION

    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        claim_first_payment("C-1001", execution)

    assert "firstPaymentClaimedAt" not in store.get_offer(enrollment_tables, "C-1001")


def test_a_cancel_after_the_claim_reports_the_first_payment_started(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    claim_first_payment("C-1001", EXECUTION)

    result = manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001", FixedClock())

    assert result["outcome"] == "cancelled"
    assert result["firstPayment"] == {"status": "started", "claimedAt": CLAIMED_AT}
    again = manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001", FixedClock())
    assert again["firstPayment"] == result["firstPayment"], "a cancelled contract answers what its cancel answered"


def test_a_cancel_after_a_claimed_start_failed_reports_the_first_payment_not_started(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """The claim was made, the start failed and was flagged: the cancel comes before the reconciler, which
    then starts nothing for a cancelled contract."""
    claim_first_payment("C-1001", EXECUTION)
    run_state("FlagPaymentNotStarted", "C-1001", EXECUTION)

    result = manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001", FixedClock())

    assert result["firstPayment"] == {"status": "not-started", "claimedAt": CLAIMED_AT}


def test_a_cancel_before_any_claim_reports_no_first_payment(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    result = manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001", FixedClock())

    assert result["outcome"] == "cancelled"
    assert "firstPayment" not in result
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        claim_first_payment("C-1001", EXECUTION)


# ---------------------------------------------------------------- a first payment the workflow could not start
GRACE = timedelta(seconds=300)
PAYMENTS = "arn:aws:states:us-east-1:123456789012:stateMachine:mock-payment-workflow"
AFTER_GRACE = parse_isoformat(CLAIMED_AT) + GRACE + timedelta(seconds=1)


def sweep(tables: Tables, scheduler: Any, stepfunctions: Any, at: Any = AFTER_GRACE, **changes: Any) -> dict:
    settings = reconcile.Settings(
        grace=GRACE,
        offset_unit_seconds=86400,
        async_state_machine_arn="arn:sm",
        hook_target=hooks.HookTarget("enrollment-hooks", "arn:f", "arn:r", "arn:q"),
        payment_state_machine_arn=PAYMENTS,
    )
    settings = reconcile.Settings(**{**vars(settings), **changes})
    return reconcile.reconcile(tables, scheduler, stepfunctions, settings, FixedClock(at))


class refusing(RecordingStepFunctions):  # noqa: N801 - reads as what it does
    """Step Functions refusing every start with the error `code`."""

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def start_execution(self, **kwargs: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": self.code, "Message": self.code}}, "StartExecution")


def payments_started(stepfunctions: RecordingStepFunctions) -> list[dict[str, Any]]:
    return [start for start in stepfunctions.starts if start["stateMachineArn"] == PAYMENTS]


def test_a_first_payment_the_workflow_could_not_start_is_started_once_by_the_reconciler(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    claim_first_payment("C-1001", EXECUTION)
    run_state("FlagPaymentNotStarted", "C-1001", EXECUTION)  # StartFirstPayment failed, the failure audited
    stepfunctions = RecordingStepFunctions()

    during_grace = sweep(enrollment_tables, scheduler, stepfunctions, at=parse_isoformat(CLAIMED_AT))
    first = sweep(enrollment_tables, scheduler, stepfunctions)
    second = sweep(enrollment_tables, scheduler, stepfunctions, at=AFTER_GRACE + GRACE)

    assert during_grace["paymentsStarted"] == []
    assert (first["paymentsStarted"], second["paymentsStarted"]) == (["C-1001"], [])
    assert reconcile.Report(paymentsStarted=["C-1001"]).repairs() == 1, "a repair: it raises its alarm"
    assert payments_started(stepfunctions) == [
        {"stateMachineArn": PAYMENTS, "name": "C-1001-payment-1", "input": json.dumps({"orderId": "C-1001-payment-1"})}
    ]
    assert "firstPaymentNotStarted" not in store.get_offer(enrollment_tables, "C-1001")
    outcomes = [e["outcome"] for e in store.audit_trail(enrollment_tables, "C-1001") if e["step"] == "reconcile"]
    assert any(outcome.startswith("first payment C-1001-payment-1 started") for outcome in outcomes)


def test_a_first_payment_flagged_after_the_reconciler_unmarked_the_offer_is_still_started(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """The reconciler reads only the offers marked for it: the flag marks the offer again."""
    store.mark_eventual_workflow(enrollment_tables, "C-1001", enrolled["enrollmentDate"], "run", STARTED)
    enrollment_tables.offers.update_item(
        Key={"OfferId": "C-1001"},
        UpdateExpression="SET eventualWorkflow.confirmedAt = :at",
        ExpressionAttributeValues={":at": "2026-01-31T12:00:01.000Z"},
    )
    stepfunctions = RecordingStepFunctions()
    sweep(enrollment_tables, scheduler, stepfunctions)  # settled: unmarked
    assert "watch" not in store.get_offer(enrollment_tables, "C-1001")

    claim_first_payment("C-1001", EXECUTION)
    run_state("FlagPaymentNotStarted", "C-1001", EXECUTION)
    sweep(enrollment_tables, scheduler, stepfunctions, at=AFTER_GRACE + GRACE)

    assert [start["name"] for start in payments_started(stepfunctions)] == ["C-1001-payment-1"]


def test_a_start_that_fails_while_another_run_finds_the_offer_settled_is_tried_again(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """Two runs overlap (a run by hand beside the scheduled one): while the first holds the record and
    its start fails, the second finds no record and unmarks the offer. Giving the record back marks it
    again, so a later run still starts the payment."""
    store.mark_eventual_workflow(enrollment_tables, "C-1001", enrolled["enrollmentDate"], "run", STARTED)
    enrollment_tables.offers.update_item(
        Key={"OfferId": "C-1001"},
        UpdateExpression="SET eventualWorkflow.confirmedAt = :at",
        ExpressionAttributeValues={":at": "2026-01-31T12:00:01.000Z"},
    )
    claim_first_payment("C-1001", EXECUTION)
    run_state("FlagPaymentNotStarted", "C-1001", EXECUTION)

    class OverlappedThenRefused(RecordingStepFunctions):
        def start_execution(self, **kwargs: Any) -> dict[str, Any]:
            sweep(enrollment_tables, scheduler, RecordingStepFunctions())  # the other run, meanwhile
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "StartExecution")

    with pytest.raises(reconcile.ReconcileError, match="ThrottlingException"):
        sweep(enrollment_tables, scheduler, OverlappedThenRefused())
    stepfunctions = RecordingStepFunctions()
    sweep(enrollment_tables, scheduler, stepfunctions, at=AFTER_GRACE + 2 * GRACE)

    assert [start["name"] for start in payments_started(stepfunctions)] == ["C-1001-payment-1"]


def test_no_first_payment_is_flagged_or_started_for_a_cancelled_contract(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    claim_first_payment("C-1001", EXECUTION)
    manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001", FixedClock())
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        run_state("FlagPaymentNotStarted", "C-1001", EXECUTION)
    stepfunctions = RecordingStepFunctions()

    assert sweep(enrollment_tables, scheduler, stepfunctions)["paymentsStarted"] == []
    assert payments_started(stepfunctions) == []


def test_a_start_the_reconciler_cannot_make_fails_its_run_and_is_tried_again(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    claim_first_payment("C-1001", EXECUTION)
    run_state("FlagPaymentNotStarted", "C-1001", EXECUTION)

    with pytest.raises(reconcile.ReconcileError, match="ServiceUnavailable"):
        sweep(enrollment_tables, scheduler, refusing("ServiceUnavailable"))
    assert store.get_offer(enrollment_tables, "C-1001")["firstPaymentNotStarted"] == CLAIMED_AT

    # Given back, the record marks the offer anew: the run after the next grace tries again.
    stepfunctions = RecordingStepFunctions()
    assert sweep(enrollment_tables, scheduler, stepfunctions)["paymentsStarted"] == []
    assert sweep(enrollment_tables, scheduler, stepfunctions, at=AFTER_GRACE + GRACE + timedelta(seconds=1))[
        "paymentsStarted"
    ] == ["C-1001"]
    assert len(payments_started(stepfunctions)) == 1


def test_a_first_payment_already_started_counts_as_started(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    """The workflow's start reached Step Functions although its answer was lost: the name admits one."""
    store.mark_eventual_workflow(enrollment_tables, "C-1001", enrolled["enrollmentDate"], "run", STARTED)
    enrollment_tables.offers.update_item(  # its eventual workflow confirmed: only the payment is left to start
        Key={"OfferId": "C-1001"},
        UpdateExpression="SET eventualWorkflow.confirmedAt = :at",
        ExpressionAttributeValues={":at": "2026-01-31T12:00:01.000Z"},
    )
    claim_first_payment("C-1001", EXECUTION)
    run_state("FlagPaymentNotStarted", "C-1001", EXECUTION)

    assert sweep(enrollment_tables, scheduler, refusing("ExecutionAlreadyExists"))["paymentsStarted"] == ["C-1001"]
    assert "firstPaymentNotStarted" not in store.get_offer(enrollment_tables, "C-1001")


def test_the_reconciler_starts_no_payment_when_payments_only_are_recorded(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    claim_first_payment("C-1001", EXECUTION)
    run_state("FlagPaymentNotStarted", "C-1001", EXECUTION)
    stepfunctions = RecordingStepFunctions()

    assert sweep(enrollment_tables, scheduler, stepfunctions, payment_state_machine_arn=None)["paymentsStarted"] == []
    assert payments_started(stepfunctions) == []
