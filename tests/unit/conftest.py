from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tests.support.template import table_definition

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "UnitTests",
        "POWERTOOLS_SERVICE_NAME": "unit-tests",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@functools.cache
def moto_dynamodb() -> Any:
    """One boto3 resource for every test's tables: making it costs more than a table. moto intercepts
    it in whichever `mock_aws` is active (its stub is in every client's handlers from import on), and
    each `mock_aws` starts with no tables."""
    return boto3.resource("dynamodb", region_name="us-east-1")


def create_table(logical_id: str, name: str) -> Any:
    """The template's table `logical_id`, named `name`, in moto (where a new table is ACTIVE at once)."""
    return moto_dynamodb().create_table(TableName=name, **table_definition(logical_id))


@pytest.fixture
def orders_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ORDERS_TABLE_NAME", "MockOrders")
    return create_table("OrdersTable", "MockOrders")


@dataclass
class FakeLambdaContext:
    function_name: str = "unit-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:unit-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def enrollment_tables(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    from enrollment.store import Tables

    names = {
        "OFFERS_TABLE_NAME": ("OffersTable", "Offers"),
        "UCP_TABLE_NAME": ("UcpTable", "Ucp"),
        "ACTIONS_TABLE_NAME": ("ActionsTable", "EnrollmentActions"),
        "AUDIT_TABLE_NAME": ("AuditTable", "EnrollmentAudit"),
        "ACTION_EFFECTS_TABLE_NAME": ("ActionEffectsTable", "ActionEffects"),
    }
    created = {}
    for variable, (logical_id, name) in names.items():
        monkeypatch.setenv(variable, name)
        created[logical_id] = create_table(logical_id, name)
    import json
    from pathlib import Path

    accounts = json.loads((Path(__file__).resolve().parents[2] / "events/enrollment/sample-accounts.json").read_text())
    for account in accounts:
        created["UcpTable"].put_item(Item=account)
    return Tables(
        offers=created["OffersTable"],
        ucp=created["UcpTable"],
        actions=created["ActionsTable"],
        audit=created["AuditTable"],
        effects=created["ActionEffectsTable"],
    )


@dataclass
class DataLambdaClients:
    stepfunctions: Any  # RecordingStepFunctions
    sqs: Any
    queue_url: str


@pytest.fixture
def data_lambda_clients(enrollment_tables: Any, monkeypatch: pytest.MonkeyPatch) -> DataLambdaClients:
    """What DataLambda's handler calls: a recording Step Functions and a moto queue for rejected records."""
    from commonlib import aws as aws_clients
    from enrollment import store
    from tests.unit.enrollment_fixtures import RecordingStepFunctions

    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="enrollment-stream-rejects")["QueueUrl"]
    monkeypatch.setenv("REJECTED_RECORDS_QUEUE_URL", queue_url)
    monkeypatch.setenv("ENROLLMENT_ASYNC_STATE_MACHINE_ARN", "arn:sm")
    stepfunctions = RecordingStepFunctions()
    monkeypatch.setattr(aws_clients, "client", lambda name, **_: stepfunctions if name == "stepfunctions" else sqs)
    store.environment_tables.cache_clear()
    return DataLambdaClients(stepfunctions, sqs, queue_url)


@pytest.fixture
def scheduler(aws: None) -> Any:
    """EventBridge Scheduler in moto, with the hooks' schedule group (`enrollment-hooks`)."""
    client = boto3.client("scheduler", region_name="us-east-1")
    client.create_schedule_group(Name="enrollment-hooks")
    return client


@pytest.fixture
def enrolled(enrollment_tables: Any) -> dict[str, Any]:
    """The seed's offer, accepted, verified and committed (enrolled) in the moto tables."""
    from enrollment.immediate import offers
    from tests.unit.enrollment_fixtures import EXECUTION, STARTED, FixedClock, seed_offer

    offer = offers.acquire(enrollment_tables, seed_offer(), EXECUTION, STARTED, clock=FixedClock())["offer"]
    offers.verify_customer(enrollment_tables, offer, EXECUTION)
    offers.commit_enrollment(enrollment_tables, offer, EXECUTION, {"rulesVersion": "v"}, clock=FixedClock())
    return offer


@pytest.fixture
def http(aws: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The API's entry point module (`enrollment.enroll_handler`) over a moto idempotency table."""
    from commonlib import aws as aws_clients
    from enrollment.api import enroll_handler

    monkeypatch.setenv("IDEMPOTENCY_TABLE_NAME", "EnrollmentIdempotency")
    monkeypatch.setenv("ENROLLMENT_STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:E")
    create_table("IdempotencyTable", "EnrollmentIdempotency")
    enroll_handler._idempotent_start.cache_clear()
    aws_clients.client.cache_clear()
    return enroll_handler
