"""Data access of the enrollment: the only code that builds DynamoDB requests (keys, condition and
update expressions, transactions, queries and scans). The domain calls these functions with plain
values; one module per table (`offers`, `ucp`, `actions`, `audit`, `effects`), what they share in
`tables`. Everything public is re-exported here, so callers write `store.claim_action(...)`.

Every state change is a conditional write (or one transaction of them) owned by the Step Functions
execution that accepted the offer, so a retried step replays harmlessly and any other caller is
refused. The audit table is append-only: entries are only ever put with `attribute_not_exists`.
"""

from __future__ import annotations

from enrollment.store.actions import (
    cancel_action,
    cancel_waiting_action,
    claim_action,
    complete_action,
    contract_actions,
    fail_unscheduled_action,
    get_action,
    release_claim,
    scan_actions,
    take_over_claim,
)
from enrollment.store.audit import (
    append_audit,
    audit_entry,
    audit_put,
    audit_trail,
    expand,
    rejection_entry,
    step,
    steps_before,
)
from enrollment.store.effects import (
    record_effect,
)
from enrollment.store.offers import (
    commit_enrollment,
    finish_cancel,
    get_offer,
    mark_eventual_workflow,
    revert_enrollment,
    scan_offers,
    set_offer_status,
    start_cancel,
    take_offer,
    unmark_eventual_workflow,
)
from enrollment.store.tables import (
    ACTION_CANCELLED,
    ACTION_DONE,
    ACTION_FAILED,
    ACTION_FULFILLED,
    ACTION_PENDING,
    ACTION_RUNNING,
    ACTION_SCHEDULED,
    ACTION_WAITING,
    CANCELLED,
    CANCELLING,
    ENROLLED,
    FAILED,
    INELIGIBLE,
    MAX_REASON_CHARS,
    RECEIVED,
    REJECTED,
    REJECTIONS,
    VERIFIED,
    Tables,
    environment_tables,
    item_from_condition_failure,
    storable,
)
from enrollment.store.ucp import (
    UCP_ABSENT,
    UCP_CANCELLED,
    cancel_ucp_contract,
    get_account,
    set_contract_rate,
)

__all__ = [
    "ACTION_CANCELLED",
    "ACTION_DONE",
    "ACTION_FAILED",
    "ACTION_FULFILLED",
    "ACTION_PENDING",
    "ACTION_RUNNING",
    "ACTION_SCHEDULED",
    "ACTION_WAITING",
    "CANCELLED",
    "CANCELLING",
    "ENROLLED",
    "FAILED",
    "INELIGIBLE",
    "MAX_REASON_CHARS",
    "RECEIVED",
    "REJECTED",
    "REJECTIONS",
    "UCP_ABSENT",
    "UCP_CANCELLED",
    "VERIFIED",
    "Tables",
    "append_audit",
    "audit_entry",
    "audit_put",
    "audit_trail",
    "cancel_action",
    "cancel_ucp_contract",
    "cancel_waiting_action",
    "claim_action",
    "commit_enrollment",
    "complete_action",
    "contract_actions",
    "environment_tables",
    "expand",
    "fail_unscheduled_action",
    "finish_cancel",
    "get_account",
    "get_action",
    "get_offer",
    "item_from_condition_failure",
    "mark_eventual_workflow",
    "record_effect",
    "rejection_entry",
    "release_claim",
    "revert_enrollment",
    "scan_actions",
    "scan_offers",
    "set_contract_rate",
    "set_offer_status",
    "start_cancel",
    "step",
    "steps_before",
    "storable",
    "take_offer",
    "take_over_claim",
    "unmark_eventual_workflow",
]
