"""Publish an enrollment to the one stream the eventual workflow consumes.

The publication is audited by the run that consumes it (DataLambda's entry carries the step, with
the record's `publishedAt`): one audit item per run, not one per step.
"""

from __future__ import annotations

import json
from typing import Any

from commonlib.clock import Clock, isoformat, utc_now
from commonlib.errors import aws_errors_as_domain_errors
from enrollment.steps import Offer, Publication

RECORD_TYPE = "ContractEnrolled"
RECORD_VERSION = 1


def stream_record(offer: Offer, published_at: str) -> dict[str, Any]:
    return {
        "type": RECORD_TYPE,
        "version": RECORD_VERSION,
        "contractId": offer["contractId"],
        "accountId": offer["accountId"],
        "enrollmentDate": offer["enrollmentDate"],
        "correlationId": offer["correlationId"],
        "eventualActions": offer["eventualActions"],
        "publishedAt": published_at,
    }


def publish(kinesis: Any, stream_name: str, offer: Offer, clock: Clock = utc_now) -> Publication:
    now = clock()
    record = stream_record(offer, isoformat(now))
    with aws_errors_as_domain_errors():
        response = kinesis.put_record(
            StreamName=stream_name,
            PartitionKey=offer["contractId"],
            Data=json.dumps(record, separators=(",", ":")).encode(),
        )
    return {"shardId": response["ShardId"], "sequenceNumber": response["SequenceNumber"]}
