"""The eventual workflow's front half: DataLambda turns each stream record into the JSON the async
state machine takes, and starts it once per enrollment.

EXPRESS executions are not deduplicated by name, so the offer itself records that its eventual
workflow was started (a conditional write that also requires the offer to be still enrolled):
a redelivered or duplicated record finds the mark and starts nothing.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from commonlib.clock import Clock, isoformat, parse_isoformat, utc_now
from commonlib.errors import ConditionNotMetError, aws_errors_as_domain_errors
from enrollment import model, publisher, store
from enrollment.store import Tables

SCHEDULE_NAME_MAX = 64
# Scheduler rejects an `at()` in the past; a hook that is already due fires this soon instead.
EARLIEST_FIRE_DELAY = timedelta(seconds=5)


class EventualAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: model.ActionName
    offset: Annotated[int, Field(ge=1, le=model.MAX_OFFSET_DAYS)]
    dueAt: str  # noqa: N815
    data: dict[str, Any]


class StreamRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Annotated[str, Field(pattern=f"^{publisher.RECORD_TYPE}$")]
    version: Annotated[int, Field(ge=publisher.RECORD_VERSION, le=publisher.RECORD_VERSION)]
    contractId: model.Identifier  # noqa: N815
    accountId: model.Identifier  # noqa: N815
    enrollmentDate: str  # noqa: N815
    correlationId: str  # noqa: N815
    eventualActions: Annotated[list[EventualAction], Field(max_length=model.MAX_ACTIONS)]  # noqa: N815
    publishedAt: str  # noqa: N815


def schedule_name(contract_id: str, action_name: str) -> str:
    """Derived from contract and action, so scheduling twice names the same schedule."""
    name = f"{contract_id}-{action_name}"
    if len(name) <= SCHEDULE_NAME_MAX:
        return name
    digest = hashlib.sha256(action_name.encode()).hexdigest()[:12]
    return f"{contract_id}-{digest}"


def schedule_expression(due: datetime, now: datetime) -> str:
    fire_at = max(due, now + EARLIEST_FIRE_DELAY)
    if fire_at.microsecond:
        fire_at = fire_at.replace(microsecond=0) + timedelta(seconds=1)  # never before it is due
    return f"at({fire_at.strftime('%Y-%m-%dT%H:%M:%S')})"


def async_workflow_input(record: StreamRecord, now: datetime) -> dict[str, Any]:
    """The JSON the async state machine takes: one hook per eventual action."""
    hooks = []
    for action in record.eventualActions:
        hook_event = {
            "contractId": record.contractId,
            "correlationId": record.correlationId,
            "trigger": "hook",
            "action": action.model_dump(),
        }
        hooks.append(
            {
                "actionName": action.name,
                "offset": action.offset,
                "dueAt": action.dueAt,
                "scheduleName": schedule_name(record.contractId, action.name),
                "scheduleExpression": schedule_expression(parse_isoformat(action.dueAt), now),
                "targetInput": json.dumps(hook_event, separators=(",", ":")),
            }
        )
    return {
        "contractId": record.contractId,
        "accountId": record.accountId,
        "enrollmentDate": record.enrollmentDate,
        "correlationId": record.correlationId,
        "hooks": hooks,
    }


def claim_start(tables: Tables, record: StreamRecord, execution_name: str, clock: Clock = utc_now) -> bool:
    """Mark the offer's eventual workflow as started by `execution_name`. False: already started (a
    duplicate record) or the offer is no longer enrolled (reverted or cancelled)."""
    try:
        with aws_errors_as_domain_errors():
            tables.offers.update_item(
                Key={"OfferId": record.contractId},
                UpdateExpression="SET eventualWorkflow = :mark",
                ConditionExpression="#status = :enrolled AND attribute_not_exists(eventualWorkflow)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":enrolled": store.ENROLLED,
                    ":mark": {"executionName": execution_name, "startedAt": isoformat(clock())},
                },
            )
    except ConditionNotMetError:
        return False
    return True


def release_claim(tables: Tables, contract_id: str, execution_name: str) -> None:
    """Undo `claim_start` when the start itself failed, so the redelivered record can try again."""
    with aws_errors_as_domain_errors():
        tables.offers.update_item(
            Key={"OfferId": contract_id},
            UpdateExpression="REMOVE eventualWorkflow",
            ConditionExpression="eventualWorkflow.executionName = :name",
            ExpressionAttributeValues={":name": execution_name},
        )


def execution_name(record: StreamRecord) -> str:
    digest = hashlib.sha256(f"{record.contractId}|{record.enrollmentDate}".encode()).hexdigest()[:16]
    return f"{record.contractId}-{digest}"[:80]


def start_eventual_workflow(
    tables: Tables, stepfunctions: Any, state_machine_arn: str, record: StreamRecord, clock: Clock = utc_now
) -> dict[str, Any]:
    """`{"started": bool, "reason"?: str, "executionArn"?: str}`; raises when the start fails."""
    name = execution_name(record)
    if not claim_start(tables, record, name, clock):
        return {"started": False, "reason": "already started, or the offer is no longer enrolled"}
    workflow_input = async_workflow_input(record, clock())
    try:
        with aws_errors_as_domain_errors():
            response = stepfunctions.start_execution(
                stateMachineArn=state_machine_arn, name=name, input=json.dumps(workflow_input)
            )
    except Exception:
        release_claim(tables, record.contractId, name)
        raise
    with aws_errors_as_domain_errors():
        store.append_audit(
            tables,
            store.audit_entry(
                record.contractId,
                "eventual-workflow",
                f"started: {len(workflow_input['hooks'])} hooks to schedule",
                record.correlationId,
                clock(),
            ),
        )
    return {"started": True, "executionArn": response["executionArn"]}


def reject_record(sqs: Any, queue_url: str, record: Any, reason: str) -> None:
    """Report a malformed stream record on the rejects queue, with where it came from and why."""
    body = {
        "reason": reason,
        "sequenceNumber": record.kinesis.sequence_number,
        "partitionKey": record.kinesis.partition_key,
        "eventSourceARN": record.event_source_arn,
        "dataBase64": record.kinesis.data[:200_000],
    }
    with aws_errors_as_domain_errors():
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(body))
