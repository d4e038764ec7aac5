from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from commonlib import aws, clock, errors, validation


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "boom"}}, "PutItem")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ConditionalCheckFailedException", errors.ConditionNotMetError),
        ("TransactionCanceledException", errors.ConditionNotMetError),
        ("ResourceNotFoundException", errors.ResourceMissingError),
        ("ProvisionedThroughputExceededException", errors.TransientDependencyError),
        ("ThrottlingException", errors.TransientDependencyError),
        ("AccessDeniedException", errors.DependencyError),
        ("ValidationException", errors.DependencyError),
    ],
)
def test_client_error_codes_map_to_domain_errors(code: str, expected: type[errors.DomainError]) -> None:
    mapped = errors.map_client_error(client_error(code))

    assert type(mapped) is expected
    assert mapped.details["code"] == code
    assert "PutItem failed" in mapped.message


def test_context_manager_chains_the_original_error() -> None:
    original = client_error("ThrottlingException")
    with pytest.raises(errors.TransientDependencyError) as raised, errors.aws_errors_as_domain_errors():
        raise original
    assert raised.value.__cause__ is original
    assert raised.value.name == "TransientDependencyError"


def test_isoformat_is_utc_with_milliseconds() -> None:
    moment = datetime(2026, 1, 1, 5, 30, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert clock.isoformat(moment) == "2026-01-01T00:00:00.123Z"
    assert clock.utc_now().tzinfo is UTC


def test_client_config_disables_host_prefix_only_with_endpoint_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert aws.client_config().inject_host_prefix is True
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:4566")
    assert isinstance(aws.client_config(), Config)
    assert aws.client_config().inject_host_prefix is False


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    count: int


def test_parse_lists_every_offending_field() -> None:
    with pytest.raises(errors.InvalidInputError) as raised:
        validation.parse(Sample, {"name": 3, "extra": True})
    fields = sorted(error["field"] for error in raised.value.errors)
    assert fields == ["count", "extra", "name"]
    assert raised.value.message == "invalid input: count, extra, name"


@pytest.mark.parametrize(("value", "kind"), [(None, "null"), ([], "array"), ("x", "string"), (1.5, "number")])
def test_parse_rejects_non_objects(value: object, kind: str) -> None:
    with pytest.raises(errors.InvalidInputError) as raised:
        validation.parse(Sample, value)
    assert raised.value.errors == [{"field": "(body)", "message": f"expected a JSON object, got {kind}"}]


def test_single_attempt_client_never_retries() -> None:
    config = aws.client_config(read_timeout=28, total_attempts=1)
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}
    assert config.read_timeout == 28
