"""The steps of the immediate workflow, as plain functions over `Tables` (and a clock); every read and
write goes through `enrollment.store`, with plain values.

Each returns its business outcome as data for the state machine's `Choice` states; only the
unexpected raises (a `DomainError`, after `ClientError`s are mapped in `commonlib.errors`).
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from typing import Any

from commonlib import faults
from commonlib.clock import Clock, isoformat, utc_now
from commonlib.errors import ConditionNotMetError, InvalidInputError, aws_errors_as_domain_errors
from enrollment import offsets, store
from enrollment.steps import Acceptance, Commitment, Eligibility, Offer, OutcomeRecorded, Reversal, Verification
from enrollment.store import Tables

LEASE = timedelta(minutes=5)
_CONFLICTS = {
    store.ENROLLED: ("ContractAlreadyEnrolled", "already enrolled"),
    store.CANCELLED: ("ContractCancelled", "cancelled; a cancelled contract is not enrolled again"),
}  # longer than an EXPRESS execution may run, so a lost lock frees itself
# What a client hears about a contract id that is not its own, whatever that contract's state: the same
# as for any conflict, never its status.
UNAVAILABLE = ("ContractUnavailable", "this contract id cannot be used")
OWNER_FIELD = "ownerId"
# The statuses of an offer whose run is under way: the ones its steps move it from.
IN_PROGRESS = (store.RECEIVED, store.VERIFIED)


def acquire(
    tables: Tables,
    raw_request: Any,
    execution_id: str,
    started_at: datetime,
    offset_unit_seconds: int | None = None,
    clock: Clock = utc_now,
) -> Acceptance:
    """Validate the offer and take the one-contract-at-a-time guard. A day is `offset_unit_seconds`
    long (`offsets.SECONDS_PER_DAY` unless given).

    Outcomes: `accepted` (with the normalised offer), `invalid` (nothing written) or `conflict`
    (the contract is in progress or already enrolled; audited). An accepted offer is audited by the
    entry that ends its run, which carries this step.

    The request may carry `ownerId`, the API client that sent it (the API adds it; a direct start
    has none): the offer belongs to that client. A contract id owned by another client (or by nobody,
    when the request has an owner) is never taken over, and is refused with the neutral
    `ContractUnavailable`, whatever its state."""
    # The request model (pydantic) is loaded here, the one step that validates: the other steps of
    # this module run on the already validated offer and never pay for it at cold start.
    from commonlib.validation import parse
    from enrollment import model

    if offset_unit_seconds is None:
        offset_unit_seconds = offsets.SECONDS_PER_DAY
    owner_id = None
    if isinstance(raw_request, dict) and OWNER_FIELD in raw_request:
        raw_request = dict(raw_request)
        owner_id = raw_request.pop(OWNER_FIELD)
        if not isinstance(owner_id, str) or not owner_id:
            error = [{"field": OWNER_FIELD, "message": "the API client's id: a non-empty string"}]
            return _rejected("invalid", "InvalidEnrollmentRequest", json.dumps(error))
    try:
        request = parse(model.EnrollmentRequest, raw_request)
    except InvalidInputError as invalid:
        return _rejected("invalid", "InvalidEnrollmentRequest", json.dumps(invalid.errors))

    correlation_id = request.correlationId or execution_id.rsplit(":", 1)[-1]
    immediate, eventual = model.split_actions(request, started_at, offset_unit_seconds)
    offer: Offer = {
        "contractId": request.contractId,
        "accountId": request.accountId,
        "contractInfo": request.contractInfo.model_dump(),
        "contractDraft": request.contractDraft.model_dump(),
        "correlationId": correlation_id,
        "enrollmentDate": isoformat(started_at),
        "immediateActions": immediate,
        "eventualActions": eventual,
        "payments": model.payment_schedule(request, started_at),
    }
    now = clock()
    try:
        store.take_offer(tables, offer_item(offer, execution_id, now, owner_id), now)
    except ConditionNotMetError as taken:
        existing = store.item_from_condition_failure(taken)
        if existing.get("executionId") == execution_id:
            return {"outcome": "accepted", "offer": offer, "rejection": None}  # a retried step
        if existing.get(OWNER_FIELD) != owner_id:
            # Audited apart from the contract's own trail, which its owner reads: another client's attempt
            # (and its correlation id) is no business of the owner's either.
            error, cause = UNAVAILABLE
            claimed = {"contractId": request.contractId, "correlationId": correlation_id[:100]}
            entry = store.rejection_entry(
                "offer", error, f"{error}: the contract id belongs to another client", correlation_id, now,
                details={"claimed": claimed, "ownerId": owner_id},
            )  # fmt: skip
        else:
            error, state = _CONFLICTS.get(existing.get("status"), ("ContractInProgress", "being processed"))
            cause = f"contract {request.contractId} is {state}"
            entry = store.audit_entry(request.contractId, "receive-offer", f"rejected: {error}", correlation_id, now)
        store.append_audit(tables, entry)
        return _rejected("conflict", error, cause)
    # No audit entry here: the entry that ends this run carries the step (see `store.steps_before`).
    return {"outcome": "accepted", "offer": offer, "rejection": None}


# What the Offers item keeps of the offer. The split actions and the payment schedule are left out:
# they are derived from these (and live in the actions table and the UCP once enrolled), and with them
# the item would be about 3 KB, so every write of it would cost 3 write units instead of 1.
STORED_OFFER_FIELDS = ("contractId", "accountId", "contractInfo", "contractDraft", "correlationId", "enrollmentDate")


def offer_item(offer: Offer, execution_id: str, now: datetime, owner_id: str | None = None) -> dict[str, Any]:
    """The Offers item that takes the guard for `execution_id` (owned by `owner_id`, if given)."""
    return {
        "OfferId": offer["contractId"],
        "status": store.RECEIVED,
        "executionId": execution_id,
        "receivedAt": isoformat(now),
        "leaseExpiresAt": isoformat(now + LEASE),
        "offer": store.storable({field: offer[field] for field in STORED_OFFER_FIELDS}),
    } | ({OWNER_FIELD: owner_id} if owner_id else {})


def verify_customer(tables: Tables, offer: Offer, execution_id: str, clock: Clock = utc_now) -> Verification:
    """Check the account in the UCP. `{"verified": bool, "reason": str | None, "account": {...}}`.
    A verified offer is audited by the commit's entry (or a later failure's); a rejection here."""
    account = store.get_account(tables, offer["accountId"])
    if account is None:
        verified, reason = False, "AccountNotFound"
    elif account.get("status") != "active":
        verified, reason = False, "AccountInactive"
    else:
        verified, reason = True, None
    status = store.VERIFIED if verified else store.REJECTED
    now = clock()
    stamp = "verifiedAt" if verified else None
    before = store.set_offer_status(tables, offer["contractId"], execution_id, status, reason, now, IN_PROGRESS, stamp)
    if not verified:  # the run ends here: its entry carries the earlier steps
        with aws_errors_as_domain_errors():
            store.append_audit(
                tables,
                store.audit_entry(
                    offer["contractId"],
                    "verify-customer",
                    f"rejected: {reason}",
                    offer["correlationId"],
                    now,
                    details={"steps": store.steps_before(before)},
                ),
            )
    facts = {"status": account.get("status"), "flags": sorted(account.get("flags", []))} if account else {}
    return {"verified": verified, "reason": reason, "account": facts}


def record_outcome(
    tables: Tables,
    offer: Offer,
    execution_id: str,
    status: str,
    step: str,
    reason: str | None = None,
    rules_version: str | None = None,
    clock: Clock = utc_now,
    public_reason: str | None = None,
) -> OutcomeRecorded:
    """Record an end state (`ineligible`, `failed`) on the offer this execution owns, and audit it with
    the steps the run had done. `reason` is the full reason (the audit trail's); `public_reason`, when
    given, is what a client may be shown instead (`publicReason` on the offer, `details.publicOutcome`
    on the audit entry)."""
    now = clock()
    try:
        before = store.set_offer_status(
            tables, offer["contractId"], execution_id, status, reason, now, IN_PROGRESS, public_reason=public_reason
        )
        recorded = True
    except ConditionNotMetError:
        before, recorded = None, False  # the offer is not (or no longer) this execution's: change nothing
    outcome = status if not reason else f"{status}: {reason}"
    details: dict[str, Any] = {"steps": store.steps_before(before)} if before else {}
    if public_reason:
        details["publicOutcome"] = f"{status}: {public_reason}"
    with aws_errors_as_domain_errors():
        store.append_audit(
            tables,
            store.audit_entry(
                offer["contractId"], step, outcome, offer["correlationId"], now, rules_version, details or None
            ),
        )
    return {"recorded": recorded, "status": status}


def commit_enrollment(
    tables: Tables, offer: Offer, execution_id: str, eligibility: Eligibility, clock: Clock = utc_now
) -> Commitment:
    """One transaction: offer `enrolled`, the UCP's contract entry (status enrolled, payments), one
    pending item per same-day action, and the run's audit entry (received, verified, eligible,
    enrolled). A replay by the same execution is a no-op."""
    now = clock()
    contract_id, correlation_id, rules_version = (
        offer["contractId"],
        offer["correlationId"],
        eligibility["rulesVersion"],
    )
    # One audit item for the run so far: the steps before this one travel inside it (read from the
    # offer item, which records when each was done) instead of one item each, billed twice here.
    done = [
        *store.steps_before(store.get_offer(tables, contract_id)),
        store.step("rules-lab", isoformat(now), "eligible", rules_version),
    ]
    actions = len(offer["immediateActions"]) + len(offer["eventualActions"])
    entry = store.audit_entry(
        contract_id, "enroll", "enrolled: UCP updated, payments set", correlation_id,
        now + timedelta(milliseconds=1), rules_version,  # sorts after the eligibility step
        {"payments": len(offer["payments"]), "actions": actions, "steps": done},
    )  # fmt: skip
    try:
        store.commit_enrollment(tables, offer, execution_id, rules_version, entry, now)
    except ConditionNotMetError:
        current = store.get_offer(tables, contract_id) or {}
        if current.get("executionId") == execution_id and current.get("status") == store.ENROLLED:
            return {"enrolledAt": current["enrolledAt"], "replayed": True}
        raise
    return {"enrolledAt": isoformat(now), "replayed": False}


def revert_enrollment(tables: Tables, offer: Offer, execution_id: str, reason: str, clock: Clock = utc_now) -> Reversal:
    """Compensation after a failure that followed the commit: undo the UCP entry, cancel the pending
    actions, mark the offer failed with the reason (which releases the guard), audit it."""
    now = clock()
    contract_id = offer["contractId"]
    entry = store.audit_entry(contract_id, "revert", f"failed: {reason[:500]}", offer["correlationId"], now)
    reverted = True
    try:
        store.revert_enrollment(tables, offer, execution_id, reason, entry, now)
    except ConditionNotMetError:
        current = store.get_offer(tables, contract_id) or {}
        if current.get("executionId") != execution_id or current.get("status") != store.FAILED:
            return {"reverted": False}
        reverted = False  # this execution's revert, retried after it died: its cancels are finished below
    faults.checkpoint("after-revert")
    # The publication may have reached the stream although its answer was lost: the eventual workflow may
    # be scheduling these already. Cancelled items refuse it (and any hook it created: a claim needs an
    # enrolled contract; the reconciler deletes such hooks). One at a time, since one may be done already.
    for action in offer["eventualActions"]:
        # A refusal means it was claimed before the revert (only possible with compressed days): it completes.
        with contextlib.suppress(ConditionNotMetError):
            store.cancel_action(tables, contract_id, action, offer["correlationId"], offer["enrollmentDate"], now)
    return {"reverted": reverted}


def _rejected(outcome: str, error: str, cause: str) -> Acceptance:
    return {"outcome": outcome, "offer": None, "rejection": {"error": error, "cause": cause}}
