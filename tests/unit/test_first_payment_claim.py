"""The first payment is claimed, then started: the immediate workflow's ClaimFirstPayment, as its ASL
writes it, applied by moto, and what a cancel then reports. A cancel that comes first leaves the payment
unstarted; one that comes after reports it started."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from enrollment import store
from enrollment.eventual import manage
from enrollment.store import Tables
from tests.support.state_machines import state_at
from tests.unit.enrollment_fixtures import EXECUTION, OTHER_EXECUTION, STARTED, FixedClock

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "enrollment.asl.json"
CLAIMED_AT = "2026-01-31T12:00:02.000Z"


def claim_first_payment(contract_id: str, execution_id: str) -> None:
    """ClaimFirstPayment's Arguments, its JSONata expressions evaluated for this run, sent to moto."""
    values = {
        "$offer.contractId": contract_id,
        "$states.context.State.EnteredTime": CLAIMED_AT,
        "$states.context.Execution.Id": execution_id,
    }
    arguments = state_at(json.loads(ASL.read_text()), "ClaimFirstPayment")["Arguments"]
    text = re.sub(r"\{% (.+?) %\}", lambda match: values[match.group(1)], json.dumps(arguments))
    request = json.loads(text.replace("${OffersTableName}", "Offers"))
    boto3.client("dynamodb", region_name="us-east-1").update_item(**request)


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


def test_a_cancel_before_any_claim_reports_no_first_payment(
    enrollment_tables: Tables, enrolled: dict[str, Any], scheduler: Any
) -> None:
    result = manage.cancel_enrollment(enrollment_tables, scheduler, "enrollment-hooks", "C-1001", FixedClock())

    assert result["outcome"] == "cancelled"
    assert "firstPayment" not in result
    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        claim_first_payment("C-1001", EXECUTION)
