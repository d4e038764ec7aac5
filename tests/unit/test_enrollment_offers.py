from __future__ import annotations

import contextlib
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import cost_model
import pytest
from boto3.dynamodb.conditions import Key

from commonlib.errors import ConditionNotMetError
from enrollment import store
from enrollment.immediate import offers, rules
from enrollment.store import Tables
from tests.unit.enrollment_fixtures import EXECUTION, OTHER_EXECUTION, STARTED, FixedClock, seed_offer


def accepted(tables: Tables, execution: str = EXECUTION, **changes: Any) -> dict[str, Any]:
    result = offers.acquire(tables, seed_offer(**changes), execution, STARTED, clock=FixedClock())
    assert result["outcome"] == "accepted", result
    return result["offer"]


def eligibility(offer: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
    return rules.evaluate(rules.facts(offer["contractInfo"], offer["contractDraft"], account), rules.load_rules())


def enrolled(tables: Tables, execution: str = EXECUTION) -> dict[str, Any]:
    offer = accepted(tables, execution)
    verified = offers.verify_customer(tables, offer, execution)
    offers.commit_enrollment(tables, offer, execution, eligibility(offer, verified["account"]))
    return offer


def offer_item(tables: Tables, contract_id: str = "C-1001") -> dict[str, Any] | None:
    return tables.offers.get_item(Key={"OfferId": contract_id}, ConsistentRead=True).get("Item")


def audit_outcomes(tables: Tables, contract_id: str = "C-1001") -> list[str]:
    """The trail as `step=outcome`, each item expanded into the steps it carries."""
    items = tables.audit.query(KeyConditionExpression=Key("contractId").eq(contract_id))["Items"]
    return [f"{entry['step']}={entry['outcome']}" for item in items for entry in store.expand(item)]


def audit_items(tables: Tables, contract_id: str = "C-1001") -> list[dict]:
    return tables.audit.query(KeyConditionExpression=Key("contractId").eq(contract_id))["Items"]


def everything(tables: Tables) -> dict[str, list]:
    return {name: getattr(tables, name).scan()["Items"] for name in ("offers", "actions", "audit")} | {
        "ucp": tables.ucp.scan()["Items"]
    }


def test_accept_normalises_the_offer_and_takes_the_guard(enrollment_tables: Tables) -> None:
    offer = accepted(enrollment_tables)

    assert offer["enrollmentDate"] == "2026-01-31T12:00:00.000Z"
    assert [a["name"] for a in offer["immediateActions"]] == ["action2"]
    assert [a["name"] for a in offer["eventualActions"]] == ["action100", "action1", "rateChange"]
    assert len(offer["payments"]) == 12
    assert offer["correlationId"] == "run-1"
    item = offer_item(enrollment_tables)
    assert item["status"] == "received"
    assert item["executionId"] == EXECUTION
    # Nothing audited yet: the entry that ends the run carries this step.
    assert audit_outcomes(enrollment_tables) == []


def test_the_offer_item_keeps_the_request_not_what_derives_from_it(enrollment_tables: Tables) -> None:
    offer = accepted(enrollment_tables)

    stored = offer_item(enrollment_tables)["offer"]
    assert set(stored) == set(offers.STORED_OFFER_FIELDS)
    assert stored["contractDraft"] == json.loads(json.dumps(offer["contractDraft"]), parse_float=Decimal)
    # One write unit per write of the item (it is written four times per enrollment), with the seed's
    # offer at its largest: after the commit and the eventual workflow's start mark.
    largest = {
        **offer_item(enrollment_tables),
        "status": "enrolled",
        "enrolledAt": offer["enrollmentDate"],
        "updatedAt": offer["enrollmentDate"],
        "rulesVersion": "2026-11-01.1",
        "eventualWorkflow": {"executionName": "C-1001-" + "0" * 16, "startedAt": offer["enrollmentDate"]},
    }
    assert cost_model.write_units(largest) == 1, cost_model.item_bytes(largest)


def test_invalid_offer_writes_nothing(enrollment_tables: Tables) -> None:
    before = everything(enrollment_tables)
    result = offers.acquire(enrollment_tables, seed_offer(contractId="", contractDraft={}), EXECUTION, STARTED)

    assert result["outcome"] == "invalid"
    assert result["rejection"]["error"] == "InvalidEnrollmentRequest"
    assert sorted(e["field"] for e in json.loads(result["rejection"]["cause"])) == ["contractDraft.List", "contractId"]
    assert everything(enrollment_tables) == before


def test_second_execution_for_a_contract_in_progress_is_a_conflict(enrollment_tables: Tables) -> None:
    accepted(enrollment_tables)

    result = offers.acquire(enrollment_tables, seed_offer(), OTHER_EXECUTION, STARTED, clock=FixedClock())

    assert result["outcome"] == "conflict"
    assert result["rejection"]["error"] == "ContractInProgress"
    assert offer_item(enrollment_tables)["executionId"] == EXECUTION
    assert audit_outcomes(enrollment_tables) == ["receive-offer=rejected: ContractInProgress"]


def test_enrolled_contract_is_a_conflict(enrollment_tables: Tables) -> None:
    enrolled(enrollment_tables)
    result = offers.acquire(enrollment_tables, seed_offer(), OTHER_EXECUTION, STARTED)
    assert result["rejection"]["error"] == "ContractAlreadyEnrolled"


def test_expired_lease_frees_a_stuck_contract(enrollment_tables: Tables) -> None:
    accepted(enrollment_tables)
    later = FixedClock(STARTED + offers.LEASE + timedelta(seconds=1))

    result = offers.acquire(enrollment_tables, seed_offer(), OTHER_EXECUTION, STARTED, clock=later)

    assert result["outcome"] == "accepted"
    assert offer_item(enrollment_tables)["executionId"] == OTHER_EXECUTION


def test_retried_accept_by_the_same_execution_is_accepted(enrollment_tables: Tables) -> None:
    first = accepted(enrollment_tables)
    assert accepted(enrollment_tables) == first


@pytest.mark.parametrize(("account_id", "reason"), [("A-999", "AccountNotFound"), ("A-300", "AccountInactive")])
def test_unknown_or_inactive_customer_is_rejected_and_audited(
    enrollment_tables: Tables, account_id: str, reason: str
) -> None:
    offer = accepted(enrollment_tables, accountId=account_id)

    result = offers.verify_customer(enrollment_tables, offer, EXECUTION)

    assert result["verified"] is False
    assert result["reason"] == reason
    item = offer_item(enrollment_tables)
    assert (item["status"], item["statusReason"]) == ("rejected", reason)
    assert audit_outcomes(enrollment_tables) == ["receive-offer=received", f"verify-customer=rejected: {reason}"]
    assert len(audit_items(enrollment_tables)) == 1  # one item for the run, carrying the earlier step
    # A rejected offer releases the guard: the same contract may be submitted again.
    assert offers.acquire(enrollment_tables, seed_offer(), OTHER_EXECUTION, STARTED)["outcome"] == "accepted"


def test_verified_customer_facts_feed_the_rules(enrollment_tables: Tables) -> None:
    offer = accepted(enrollment_tables, accountId="A-200")
    result = offers.verify_customer(enrollment_tables, offer, EXECUTION)
    assert result == {"verified": True, "reason": None, "account": {"status": "active", "flags": ["bankruptcy"]}}
    assert offer_item(enrollment_tables)["status"] == "verified"


def test_ineligible_is_recorded_with_rules_version(enrollment_tables: Tables) -> None:
    offer = accepted(enrollment_tables)
    offers.verify_customer(enrollment_tables, offer, EXECUTION)

    result = offers.record_outcome(
        enrollment_tables, offer, EXECUTION, "ineligible", "rules-lab", "too risky", "2026-11-01.1"
    )

    assert result == {"recorded": True, "status": "ineligible"}
    assert offer_item(enrollment_tables)["status"] == "ineligible"
    [entry] = audit_items(enrollment_tables)
    assert entry["rulesVersion"] == "2026-11-01.1"
    assert audit_outcomes(enrollment_tables) == [
        "receive-offer=received",
        "verify-customer=verified",
        "rules-lab=ineligible: too risky",
    ]


def test_record_outcome_leaves_another_executions_offer_alone(enrollment_tables: Tables) -> None:
    offer = accepted(enrollment_tables)
    result = offers.record_outcome(enrollment_tables, offer, OTHER_EXECUTION, "failed", "failure", "boom")
    assert result["recorded"] is False
    assert offer_item(enrollment_tables)["status"] == "received"


def test_an_enrollment_writes_its_own_ucp_item_and_never_the_accounts(enrollment_tables: Tables) -> None:
    """What an enrollment writes in the UCP does not grow with the contracts the account holds: each
    contract is an item of its own, and the account's item stays as it was."""
    account_before = store.get_account(enrollment_tables, "A-100")
    for number, execution in enumerate((EXECUTION, OTHER_EXECUTION)):
        offer = accepted(enrollment_tables, execution, contractId=f"C-{2001 + number}")
        verified = offers.verify_customer(enrollment_tables, offer, execution)
        offers.commit_enrollment(enrollment_tables, offer, execution, eligibility(offer, verified["account"]))

    assert store.get_account(enrollment_tables, "A-100") == account_before
    held = sorted(item["recordId"] for item in enrollment_tables.ucp.scan()["Items"] if item["accountId"] == "A-100")
    assert held == ["account", "contract#C-2001", "contract#C-2002"]
    assert store.get_contract(enrollment_tables, "A-100", "C-2002")["status"] == "enrolled"


def test_a_commit_for_an_account_the_ucp_lost_is_refused_and_writes_nothing(enrollment_tables: Tables) -> None:
    offer = accepted(enrollment_tables)
    verified = offers.verify_customer(enrollment_tables, offer, EXECUTION)
    enrollment_tables.ucp.delete_item(Key={"accountId": "A-100", "recordId": "account"})  # after the verify
    before = everything(enrollment_tables)

    with pytest.raises(ConditionNotMetError):
        offers.commit_enrollment(enrollment_tables, offer, EXECUTION, eligibility(offer, verified["account"]))

    assert everything(enrollment_tables) == before


def test_commit_updates_ucp_offer_actions_and_audit_at_once(enrollment_tables: Tables) -> None:
    offer = enrolled(enrollment_tables)

    assert offer_item(enrollment_tables)["status"] == "enrolled"
    contract = store.get_contract(enrollment_tables, "A-100", "C-1001")
    assert contract["status"] == "enrolled"
    assert len(contract["payments"]) == 12
    # Only the same-day action has its item now; an eventual one gets it when its hook is scheduled.
    actions = enrollment_tables.actions.scan()["Items"]
    assert [(a["actionName"], a["state"], a["offset"]) for a in actions] == [("action2", "pending", 0)]
    # One audit item for the whole run: the steps before the commit travel inside it.
    assert len(audit_items(enrollment_tables)) == 1
    assert audit_outcomes(enrollment_tables) == [
        "receive-offer=received",
        "verify-customer=verified",
        "rules-lab=eligible",
        "enroll=enrolled: UCP updated, payments set",
    ]
    assert offer["contractId"] == "C-1001"


def test_commit_replayed_by_the_same_execution_is_a_no_op(enrollment_tables: Tables) -> None:
    offer = enrolled(enrollment_tables)
    before = everything(enrollment_tables)
    verified = {"status": "active", "flags": []}

    result = offers.commit_enrollment(enrollment_tables, offer, EXECUTION, eligibility(offer, verified))

    assert result["replayed"] is True
    assert everything(enrollment_tables) == before


def test_commit_by_another_execution_is_refused(enrollment_tables: Tables) -> None:
    offer = enrolled(enrollment_tables)
    with pytest.raises(ConditionNotMetError):
        offers.commit_enrollment(enrollment_tables, offer, OTHER_EXECUTION, {"rulesVersion": "x"})


def test_revert_undoes_the_enrollment_and_releases_the_guard(enrollment_tables: Tables) -> None:
    offer = enrolled(enrollment_tables)

    result = offers.revert_enrollment(enrollment_tables, offer, EXECUTION, "Kinesis down")

    assert result == {"reverted": True}
    item = offer_item(enrollment_tables)
    assert (item["status"], item["failureReason"]) == ("failed", "Kinesis down")
    assert store.get_contract(enrollment_tables, "A-100", "C-1001") is None
    # Every action is cancelled, the eventual ones too (their items created so): the publication may have
    # reached the stream, and a cancelled item refuses the eventual workflow's scheduling.
    states = {a["actionName"]: a["state"] for a in enrollment_tables.actions.scan()["Items"]}
    assert states == dict.fromkeys(("action2", "action100", "action1", "rateChange"), "cancelled")
    assert audit_outcomes(enrollment_tables)[-1] == "revert=failed: Kinesis down"
    # A later retry of the same contract enrolls again: its same-day item replaces the cancelled one; the
    # eventual items left are the earlier enrollment's (another due time), replaced when scheduled.
    again = offers.acquire(enrollment_tables, seed_offer(), OTHER_EXECUTION, STARTED + timedelta(minutes=1))
    assert again["outcome"] == "accepted"
    offers.verify_customer(enrollment_tables, again["offer"], OTHER_EXECUTION)
    offers.commit_enrollment(enrollment_tables, again["offer"], OTHER_EXECUTION, {"rulesVersion": "v"})
    items = {a["actionName"]: a for a in enrollment_tables.actions.scan()["Items"]}
    assert items["action2"]["state"] == "pending"
    assert items["action2"]["enrollmentDate"] == again["offer"]["enrollmentDate"]
    for earlier in again["offer"]["eventualActions"]:
        assert items[earlier["name"]]["state"] == "cancelled"
        assert items[earlier["name"]]["dueAt"] != earlier["dueAt"]


def test_revert_twice_changes_nothing_more(enrollment_tables: Tables) -> None:
    offer = enrolled(enrollment_tables)
    offers.revert_enrollment(enrollment_tables, offer, EXECUTION, "boom")
    before = everything(enrollment_tables)
    assert offers.revert_enrollment(enrollment_tables, offer, EXECUTION, "boom") == {"reverted": False}
    assert everything(enrollment_tables) == before


def die_after_the_revert(point: str) -> None:
    if point == "after-revert":
        raise SystemExit("the function died")


def test_a_revert_retried_after_it_died_finishes_cancelling_the_eventual_actions(
    enrollment_tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The revert's transaction is written, then the function dies before it cancels the eventual actions
    (`after-revert`): the state machine's retry of the same execution finishes them."""
    offer = enrolled(enrollment_tables)
    with monkeypatch.context() as patched:
        patched.setattr(offers.faults, "checkpoint", die_after_the_revert)
        with pytest.raises(SystemExit):
            offers.revert_enrollment(enrollment_tables, offer, EXECUTION, "Kinesis down")
    assert {a["actionName"] for a in enrollment_tables.actions.scan()["Items"]} == {"action2"}

    retried = offers.revert_enrollment(enrollment_tables, offer, EXECUTION, "Kinesis down")

    assert retried == {"reverted": False}, "reverted by the first attempt"
    states = {a["actionName"]: a["state"] for a in enrollment_tables.actions.scan()["Items"]}
    assert states == dict.fromkeys(("action2", "action100", "action1", "rateChange"), "cancelled")
    assert [o for o in audit_outcomes(enrollment_tables) if o.startswith("revert=")] == ["revert=failed: Kinesis down"]


def test_a_reverts_late_cancels_leave_the_next_enrollments_actions_alone(
    enrollment_tables: Tables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The revert's transaction releases the contract before its cancels are written: the contract may
    be enrolled again, and its eventual action scheduled, in between. Those cancels must not take it."""
    first = enrolled(enrollment_tables)
    with monkeypatch.context() as patched:
        patched.setattr(offers.faults, "checkpoint", die_after_the_revert)
        with pytest.raises(SystemExit):
            offers.revert_enrollment(enrollment_tables, first, EXECUTION, "Kinesis down")
    again = offers.acquire(enrollment_tables, seed_offer(), OTHER_EXECUTION, STARTED + timedelta(minutes=1))["offer"]
    offers.verify_customer(enrollment_tables, again, OTHER_EXECUTION)
    offers.commit_enrollment(enrollment_tables, again, OTHER_EXECUTION, {"rulesVersion": "v"})
    action1 = next(a for a in again["eventualActions"] if a["name"] == "action1")
    enrollment_tables.actions.put_item(  # what the next enrollment's MarkActionScheduled writes
        Item={"contractId": "C-1001", "actionName": "action1", "offset": action1["offset"], "state": "scheduled",
              "dueAt": action1["dueAt"], "enrollmentDate": again["enrollmentDate"]}
    )  # fmt: skip

    for late in first["eventualActions"]:  # the first revert's cancels, written late
        with contextlib.suppress(ConditionNotMetError):
            store.cancel_action(enrollment_tables, "C-1001", late, "corr", first["enrollmentDate"], STARTED)
    retried = offers.revert_enrollment(enrollment_tables, first, EXECUTION, "Kinesis down")

    assert retried == {"reverted": False}
    item = enrollment_tables.actions.get_item(Key={"contractId": "C-1001", "actionName": "action1"})["Item"]
    assert (item["state"], item["dueAt"]) == ("scheduled", action1["dueAt"])
    assert offer_item(enrollment_tables)["status"] == "enrolled"


def test_audit_is_append_only(enrollment_tables: Tables) -> None:
    entry = store.audit_entry("C-1", "step", "ok", "corr", STARTED)
    store.append_audit(enrollment_tables, entry)
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        store.append_audit(enrollment_tables, {**entry, "outcome": "rewritten"})
