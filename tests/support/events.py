"""Lambda event payloads the unit tests hand to handlers, shaped as AWS delivers them."""

from __future__ import annotations

import base64
from typing import Any


def kinesis_event(*payloads: bytes, partition_key: str | None = None) -> dict[str, Any]:
    """A Kinesis event source batch, one record per payload (partition key `pk-N` unless given)."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": partition_key or f"pk-{index}",
                    "sequenceNumber": f"{index:056d}",
                    "data": base64.b64encode(payload).decode(),
                    "approximateArrivalTimestamp": 1_700_000_000.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{index:056d}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/x",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/EnrollmentStream",
            }
            for index, payload in enumerate(payloads, start=1)
        ]
    }
