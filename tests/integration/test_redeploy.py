"""Redeploying loses nothing: `make up` on a stack that holds enrolled contracts (the same `sam deploy`, then
the sample accounts seeded again) keeps each contract on its UCP account, its offer and its action items."""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import stack

from enrollment.eventual import hooks
from tests.integration.conftest import STACK_NAME, EnrollmentApi, LocalStack
from tests.support.enrollment import post, request, scan
from tests.support.invariants import ucp_contracts
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"
SEED = json.loads((EVENTS / "input.json").read_text())
SAMPLE_ACCOUNTS = json.loads((EVENTS / "sample-accounts.json").read_text())
# Far in the future (300 days of 3 s: 15 min; the rules lab refuses more than 365), so no hook fires
# while the test runs.
FAR_ACTIONS = [
    {"name": "rateChange", "offset": 300, "otherData": {"newRate": 0.0499}},
    {"name": "action1", "offset": 301},
    {"name": "action100", "offset": 302},
]
SCHEDULED_DEADLINE_SECONDS = 90


def contract_state(local_stack: LocalStack, contract_id: str, account_id: str) -> dict[str, Any]:
    """Everything the enrollment keeps about one contract: its UCP entry, its offer, its action items
    and its hooks' schedules."""
    dynamodb = local_stack.client("dynamodb")
    outputs = local_stack.outputs
    contracts = ucp_contracts(scan(dynamodb, outputs["UcpTableName"]), account_id)
    offers = [o for o in scan(dynamodb, outputs["OffersTableName"]) if o["OfferId"] == contract_id]
    actions = [a for a in scan(dynamodb, outputs["ActionsTableName"]) if a["contractId"] == contract_id]
    scheduler = local_stack.client("scheduler")
    group = outputs["HookScheduleGroupName"]
    prefix = f"{contract_id}{hooks.SEPARATOR}"
    names = [
        s["Name"]
        for page in scheduler.get_paginator("list_schedules").paginate(GroupName=group, NamePrefix=prefix)
        for s in page["Schedules"]
    ]
    return {
        "contract": contracts.get(contract_id),
        "offer": offers[0] if offers else None,
        "actions": sorted(actions, key=lambda a: a["actionName"]),
        "schedules": {
            name: scheduler.get_schedule(GroupName=group, Name=name)["ScheduleExpression"] for name in sorted(names)
        },
    }


def redeploy_as_make_up(local_stack: LocalStack, enrollment_api: EnrollmentApi) -> tuple[int, int]:
    """`make up` on a deployed stack: the same deploy (no parameter of its own), then the seeding. The
    API's id changes on an update here, so the session's outputs and API address are read again."""
    stack.deploy(local_stack.env, STACK_NAME)
    outputs = stack.outputs(local_stack.client("cloudformation"), STACK_NAME)
    seeded = stack.seed_sample_accounts(local_stack.port, outputs)
    local_stack.outputs = outputs
    enrollment_api.url = f"{outputs['EnrollmentApiUrl']}/enrollments"
    enrollment_api.api_key = local_stack.client("apigateway").get_api_key(
        apiKey=outputs["EnrollmentApiKeyId"], includeValue=True
    )["value"]
    return seeded


def test_redeploying_keeps_enrolled_contracts(local_stack: LocalStack, enrollment_api: EnrollmentApi) -> None:
    contract_id = f"IT-REDEPLOY-{uuid.uuid4().hex[:8]}"
    body = copy.deepcopy(SEED) | {"contractId": contract_id, "contractDraft": {"List": FAR_ACTIONS}}
    answer = post(enrollment_api.url, body, enrollment_api.api_key)
    assert answer.status == 201, answer
    assert answer.body["status"] == "enrolled"
    # The eventual workflow schedules the hooks in the background: compare once all three are scheduled
    # and the workflow has confirmed its run.
    before = wait_until(
        lambda: (
            (s := contract_state(local_stack, contract_id, body["accountId"]))
            and len(s["actions"]) == len(FAR_ACTIONS)
            and all(a["state"] == "scheduled" for a in s["actions"])
            and sorted(s["schedules"]) == sorted(a["scheduleName"] for a in s["actions"])
            # The workflow's last write confirms its run on the offer; until then the offer still changes.
            and s["offer"].get("eventualWorkflow", {}).get("confirmedAt")
            and s
        ),
        SCHEDULED_DEADLINE_SECONDS,
        f"the hooks of {contract_id} to be scheduled and the run confirmed",
    )
    assert before["contract"]["status"] == "enrolled"
    assert len(before["contract"]["payments"]) == SEED["contractInfo"]["termMonths"]
    assert before["offer"]["status"] == "enrolled"

    added, kept = redeploy_as_make_up(local_stack, enrollment_api)

    after = contract_state(local_stack, contract_id, body["accountId"])
    assert after == before
    assert (added, kept) == (0, len(SAMPLE_ACCOUNTS)), "the session's seeding put every sample account already"
    # The API, at its address after the update, still knows the contract: its status, and a second offer refused.
    status = request("GET", f"{enrollment_api.url}/{contract_id}", enrollment_api.api_key)
    assert status.status == 200, status
    assert {a["name"]: a["state"] for a in status.body["actions"]} == {a["name"]: "scheduled" for a in FAR_ACTIONS}
    again = post(enrollment_api.url, body, enrollment_api.api_key)
    assert (again.status, again.body["error"]) == (409, "ContractAlreadyEnrolled"), again
