"""Domain errors, and the one place that maps AWS `ClientError` codes onto them.

Expected business outcomes (not eligible, already exists) are *data*, returned to the caller.
Exceptions are for the unexpected; they propagate to the state machine's Retry/Catch. The class name
is the Lambda `errorType` on AWS (the local emulator reports every one as `Runtime.HandlerError`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


class DomainError(Exception):
    """Base of every error this application raises on purpose."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def name(self) -> str:
        return type(self).__name__


class InvalidInputError(DomainError):
    """The request does not satisfy the input contract; `details["errors"]` lists each field."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        fields = ", ".join(sorted({error["field"] for error in errors}))
        super().__init__(f"invalid input: {fields}", errors=errors)
        self.errors = errors


class ConditionNotMetError(DomainError):
    """A guarded write found the item in another state than the one required."""


class ResourceMissingError(DomainError):
    """A table, stream or function the code depends on does not exist (a deployment problem)."""


class TransientDependencyError(DomainError):
    """A dependency throttled or failed in a way that is worth retrying."""


class DependencyError(DomainError):
    """A dependency refused the call for a reason retrying will not fix."""


_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "TransactionInProgressException",
        "LimitExceededException",
    }
)


def map_client_error(error: ClientError) -> DomainError:
    code = error.response.get("Error", {}).get("Code", "Unknown")
    message = error.response.get("Error", {}).get("Message", str(error))
    operation = getattr(error, "operation_name", "call")
    text = f"{operation} failed: {code}: {message}"
    if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
        return ConditionNotMetError(text, code=code)
    if code in ("ResourceNotFoundException", "ResourceNotFound", "StateMachineDoesNotExist"):
        return ResourceMissingError(text, code=code)
    if code in _TRANSIENT_CODES:
        return TransientDependencyError(text, code=code)
    return DependencyError(text, code=code)


@contextlib.contextmanager
def aws_errors_as_domain_errors() -> Iterator[None]:
    """Re-raise any `ClientError` raised inside the block as the matching `DomainError`."""
    try:
        yield
    except Exception as error:
        # Only botocore raises ClientError: if botocore.exceptions was never imported, this is not one.
        # Importing botocore here (or at module scope) would load the SDK where nothing calls AWS.
        exceptions = sys.modules.get("botocore.exceptions")
        if exceptions is not None and isinstance(error, exceptions.ClientError):
            raise map_client_error(error) from error
        raise
