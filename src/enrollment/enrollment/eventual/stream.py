"""The eventual workflow's front half: DataLambda turns each stream record into the JSON the async
state machine takes, and starts it once per enrollment.

EXPRESS executions are not deduplicated by name, so the offer itself records that its eventual
workflow was started (a conditional write that also requires the offer to be still enrolled):
a redelivered or duplicated record finds the mark and starts nothing.

A record that is not an enrollment of this stack (not UTF-8 JSON, another schema, or a contract with
no offer) is rejected by name: reported on the rejects queue with where it came from, and audited in
the `store.REJECTIONS` partition. It starts nothing and writes nothing else; retrying cannot help,
so it is skipped and never blocks the records behind it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from commonlib import faults
from commonlib.clock import Clock, isoformat, parse_isoformat, utc_now
from commonlib.errors import ConditionNotMetError, DomainError, aws_errors_as_domain_errors
from commonlib.serialization import json_ready
from commonlib.validation import field_errors
from enrollment import model, offsets, store
from enrollment.eventual.hooks import schedule_name
from enrollment.immediate import publisher
from enrollment.steps import AsyncWorkflowInput, Hook
from enrollment.store import Tables

# Scheduler rejects an `at()` in the past; a hook that is already due fires this soon instead.
EARLIEST_FIRE_DELAY = timedelta(seconds=5)
# Why a record was not started. The first two are rejections; the last three are normal skips.
MALFORMED_RECORD, UNKNOWN_CONTRACT = "MalformedStreamRecord", "UnknownContract"
ALREADY_STARTED, NOT_ENROLLED = "AlreadyStarted", "ContractNotEnrolled"
EARLIER_ENROLLMENT = "EarlierEnrollment"
MAX_REPORTED_ERRORS = 10


def _timestamp(text: str) -> str:
    parse_isoformat(text)  # a ValueError names the field
    return text


Timestamp = Annotated[str, AfterValidator(_timestamp)]


class EventualAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: model.ActionName
    offset: Annotated[int, Field(ge=1, le=model.MAX_OFFSET_DAYS)]
    dueAt: Timestamp  # noqa: N815
    data: dict[str, Any]


class StreamRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Annotated[str, Field(pattern=f"^{publisher.RECORD_TYPE}$")]
    version: Annotated[int, Field(ge=publisher.RECORD_VERSION, le=publisher.RECORD_VERSION)]
    contractId: model.Identifier  # noqa: N815
    accountId: model.Identifier  # noqa: N815
    enrollmentDate: Timestamp  # noqa: N815
    correlationId: str  # noqa: N815
    eventualActions: Annotated[list[EventualAction], Field(max_length=model.MAX_ACTIONS)]  # noqa: N815
    publishedAt: Timestamp  # noqa: N815


@dataclass(frozen=True)
class Rejection:
    """A named rejection: `error` is the name, `errors` the offending fields."""

    error: str
    errors: list[dict[str, str]]
    claimed: dict[str, str] = field(default_factory=dict)  # what the input said it was about

    @property
    def reason(self) -> str:
        fields = "; ".join(f"{e['field']}: {e['message']}" for e in self.errors[:MAX_REPORTED_ERRORS])
        return f"{self.error}: {fields}"


def parse_record(data: bytes) -> StreamRecord | Rejection:
    """The record, or why it is not an enrollment record (`MalformedStreamRecord`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection(MALFORMED_RECORD, [{"field": "(record)", "message": "not UTF-8 text"}])
    try:
        return StreamRecord.model_validate_json(text, strict=True)
    except ValidationError as invalid:
        errors = [
            {"field": "(record)" if e["field"] == "(body)" else e["field"][:200], "message": e["message"][:200]}
            for e in field_errors(invalid)
        ]
        return Rejection(MALFORMED_RECORD, errors[:MAX_REPORTED_ERRORS], _claimed(text))


def _claimed(text: str) -> dict[str, str]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: data[key][:100] for key in ("contractId", "correlationId") if isinstance(data.get(key), str)}


def schedule_expression(due: datetime, now: datetime) -> str:
    fire_at = max(due, now + EARLIEST_FIRE_DELAY)
    if fire_at.microsecond:
        fire_at = fire_at.replace(microsecond=0) + timedelta(seconds=1)  # never before it is due
    return f"at({fire_at.strftime('%Y-%m-%dT%H:%M:%S')})"


def hook(contract_id: str, correlation_id: str, action: dict[str, Any], now: datetime) -> Hook:
    """One hook: the schedule that fires `action` (name, offset, dueAt) at its due time. Its input names
    the action and leaves out its data, which the performance reads from the offer: a schedule may wait
    for the longest offset, and its input then in the dead-letter queue."""
    which = {key: action[key] for key in ("name", "offset", "dueAt")}
    hook_event = {"contractId": contract_id, "correlationId": correlation_id, "trigger": "hook", "action": which}
    return {
        "actionName": action["name"],
        "offset": action["offset"],
        "dueAt": action["dueAt"],
        "scheduleName": schedule_name(contract_id, action["name"]),
        "scheduleExpression": schedule_expression(parse_isoformat(action["dueAt"]), now),
        "targetInput": json.dumps(hook_event, separators=(",", ":")),
    }


def async_workflow_input(record: StreamRecord, now: datetime) -> AsyncWorkflowInput:
    """The JSON the async state machine takes: one hook per eventual action."""
    return {
        "contractId": record.contractId,
        "accountId": record.accountId,
        "enrollmentDate": record.enrollmentDate,
        "correlationId": record.correlationId,
        "hooks": [
            hook(record.contractId, record.correlationId, action.model_dump(), now) for action in record.eventualActions
        ],
    }


def draft_actions(offer_item: dict[str, Any], offset_unit_seconds: int) -> list[dict[str, Any]]:
    """Every action of an offer item's draft as the published record carries them (name, offset, dueAt,
    data), in offset order: what a re-drive and the reconciler rebuild hooks from, so neither needs the
    execution that ran before."""
    details = json_ready(offer_item["offer"])
    enrollment_date = parse_isoformat(details["enrollmentDate"])
    actions = [
        {
            "name": action["name"],
            "offset": int(action["offset"]),
            "dueAt": isoformat(offsets.due_at(enrollment_date, int(action["offset"]), offset_unit_seconds)),
            "data": model.drafted_data(action),
        }
        for action in details["contractDraft"]["List"]
    ]
    return sorted(actions, key=lambda action: (action["offset"], action["name"]))


def record_from_offer(offer_item: dict[str, Any], offset_unit_seconds: int, now: datetime) -> StreamRecord:
    """The stream record an enrolled offer was published as (up to `publishedAt`)."""
    details = offer_item["offer"]
    return StreamRecord(
        type=publisher.RECORD_TYPE,
        version=publisher.RECORD_VERSION,
        contractId=details["contractId"],
        accountId=details["accountId"],
        enrollmentDate=details["enrollmentDate"],
        correlationId=details["correlationId"],
        eventualActions=[
            EventualAction(**action)
            for action in draft_actions(offer_item, offset_unit_seconds)
            if action["offset"] > 0
        ],
        publishedAt=offer_item.get("enrolledAt") or isoformat(now),
    )


def claim_start(
    tables: Tables, record: StreamRecord, execution_name: str, clock: Clock = utc_now, replacing: str | None = None
) -> str | None:
    """Mark the offer's eventual workflow as started by `execution_name` (replacing the mark of the run
    `replacing` names, for a re-drive). None when marked; else why not: `AlreadyStarted` (a duplicate
    record), `ContractNotEnrolled` (reverted or cancelled), `EarlierEnrollment` (the record of an
    enrollment since reverted, the contract enrolled again: its current enrollment's record starts the
    run) or `UnknownContract` (no offer at all)."""
    try:
        store.mark_eventual_workflow(
            tables, record.contractId, record.enrollmentDate, execution_name, clock(), replacing
        )
    except ConditionNotMetError as refused:
        existing = store.item_from_condition_failure(refused)
        if not existing:
            return UNKNOWN_CONTRACT
        if existing.get("status") != store.ENROLLED:
            return NOT_ENROLLED
        if existing.get("offer", {}).get("enrollmentDate") != record.enrollmentDate:
            return EARLIER_ENROLLMENT
        return ALREADY_STARTED
    return None


def release_claim(tables: Tables, contract_id: str, execution_name: str, replacing: str | None = None) -> None:
    """Undo `claim_start` when the start itself failed, so the redelivered record can try again (a
    failed re-drive leaves the mark it replaced: the reconciler tries again). Nothing to undo when the
    run confirmed meanwhile (the start's answer was lost, not the start) or another start took the mark."""
    with contextlib.suppress(ConditionNotMetError):
        store.unmark_eventual_workflow(tables, contract_id, execution_name, replacing)


def execution_name(record: StreamRecord) -> str:
    digest = hashlib.sha256(f"{record.contractId}|{record.enrollmentDate}".encode()).hexdigest()[:16]
    return f"{record.contractId}-{digest}"[:80]


def start_eventual_workflow(
    tables: Tables,
    stepfunctions: Any,
    state_machine_arn: str,
    record: StreamRecord,
    clock: Clock = utc_now,
    replacing: str | None = None,
    redrive: bool = False,
) -> dict[str, Any]:
    """`{"started": bool, "reason"?: str, "executionName"?: str}`; raises when the start fails. The
    reason is one of `claim_start`'s. A re-drive (`redrive`, or `replacing` the run that never confirmed)
    gets a name of its own: EXPRESS runs are not deduplicated by name, the mark on the offer is what
    counts."""
    fresh = redrive or replacing is not None
    name = f"{record.contractId}-redrive-{secrets.token_hex(6)}" if fresh else execution_name(record)
    refused = claim_start(tables, record, name, clock, replacing)
    if refused is not None:
        return {"started": False, "reason": refused}
    faults.checkpoint("after-claim")
    workflow_input = async_workflow_input(record, clock())
    # Audited before the start, so that no run goes unaudited: a crash between the two leaves an
    # unconfirmed mark, which the reconciler re-drives (and audits); a start that fails writes the
    # entry again on its retry, one per attempt.
    with _claim_released_on_failure(tables, record.contractId, name, replacing):
        _audit_start(tables, record, workflow_input, name, replacing, clock)
    faults.checkpoint("after-audit")
    with _claim_released_on_failure(tables, record.contractId, name, replacing):
        _start(stepfunctions, state_machine_arn, name, workflow_input)
    faults.checkpoint("after-start")
    return {"started": True, "executionName": name}


def _start(stepfunctions: Any, state_machine_arn: str, name: str, workflow_input: AsyncWorkflowInput) -> None:
    """Start the run the claim names. A name already taken counts as started: only a claim of this
    enrollment starts under it, so an earlier attempt did and its answer was lost (the SDK repeats such a
    start, and a local emulator, unlike AWS for EXPRESS runs, refuses the name the second time).
    Releasing the claim for it would leave that run unable to confirm and fail every retry the same way;
    kept, the run confirms, or the reconciler re-drives the unconfirmed mark under a new name."""
    try:
        with aws_errors_as_domain_errors():
            stepfunctions.start_execution(
                stateMachineArn=state_machine_arn, name=name, input=json.dumps(workflow_input)
            )
    except DomainError as error:
        if error.details.get("code") != "ExecutionAlreadyExists":
            raise


@contextlib.contextmanager
def _claim_released_on_failure(tables: Tables, contract_id: str, name: str, replacing: str | None) -> Iterator[None]:
    """A write after the claim that raises gives the claim back, so the redelivered record tries again
    at once (a crash, which raises nothing here, leaves the mark for the reconciler)."""
    try:
        yield
    except Exception:
        release_claim(tables, contract_id, name, replacing)
        raise


def _audit_start(
    tables: Tables,
    record: StreamRecord,
    workflow_input: AsyncWorkflowInput,
    name: str,
    replacing: str | None,
    clock: Clock,
) -> None:
    with aws_errors_as_domain_errors():
        store.append_audit(
            tables,
            store.audit_entry(
                record.contractId,
                "eventual-workflow",
                f"{'re-driving' if replacing else 'starting'}: {len(workflow_input['hooks'])} hooks to schedule",
                record.correlationId,
                clock(),
                # The run's one audit item: the run, the publication it consumed, each hook it schedules and
                # when that fires. Whether each hook was created is on its action's item (`scheduled`, or
                # `failed` with the reason).
                details={
                    "executionName": name,
                    "steps": [
                        store.step(
                            "publish", record.publishedAt, f"published {len(record.eventualActions)} eventual actions"
                        )
                    ],
                    "hooks": [
                        {"action": hook["actionName"], "dueAt": hook["dueAt"], "fireAt": hook["scheduleExpression"]}
                        for hook in workflow_input["hooks"]
                    ],
                },
            ),
        )


def handle_record(
    tables: Tables,
    stepfunctions: Any,
    sqs: Any,
    state_machine_arn: str,
    queue_url: str,
    record: Any,
    clock: Clock = utc_now,
) -> dict[str, Any]:
    """One stream record (a Powertools `KinesisStreamRecord`): start its eventual workflow once, or
    reject it by name. `{"started": ...}` or `{"rejected": name, "reason": ...}`."""
    parsed = parse_record(record.kinesis.data_as_bytes())
    if isinstance(parsed, Rejection):
        return reject_record(tables, sqs, queue_url, record, parsed, clock)
    result = start_eventual_workflow(tables, stepfunctions, state_machine_arn, parsed, clock)
    if result.get("reason") == UNKNOWN_CONTRACT:
        unknown = Rejection(
            UNKNOWN_CONTRACT,
            [{"field": "contractId", "message": f"no offer for contract {parsed.contractId}"}],
            {"contractId": parsed.contractId, "correlationId": parsed.correlationId[:100]},
        )
        return reject_record(tables, sqs, queue_url, record, unknown, clock)
    return result


def reject_record(
    tables: Tables, sqs: Any, queue_url: str, record: Any, rejection: Rejection, clock: Clock = utc_now
) -> dict[str, Any]:
    """Report a rejected stream record on the rejects queue, with where it came from and why, and
    audit the rejection. Nothing else is written."""
    where = {"sequenceNumber": record.kinesis.sequence_number, "partitionKey": record.kinesis.partition_key[:256]}
    body = {
        "error": rejection.error,
        "reason": rejection.reason,
        "errors": rejection.errors,
        **where,
        "eventSourceARN": record.event_source_arn,
        "dataBase64": record.kinesis.data[:200_000],
    }
    entry = store.rejection_entry(
        "stream-record",
        rejection.error,
        rejection.reason,
        rejection.claimed.get("correlationId") or f"stream:{record.kinesis.sequence_number}",
        clock(),
        details={"errors": rejection.errors, "claimed": rejection.claimed, **where},
    )
    with aws_errors_as_domain_errors():
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
        store.append_audit(tables, entry)
    return {"rejected": rejection.error, "reason": rejection.reason}
