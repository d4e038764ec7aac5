"""The one place boto3 clients are created.

boto3 reads ``AWS_ENDPOINT_URL`` by itself, so the same code talks to AWS or to a local emulator.
Clients are created lazily and cached per process: created on first use, reused on warm
invocations. boto3 itself is imported by the first factory call, not by this module: a function
pays for the SDK only on the paths that call AWS. Unit tests pass their own clients to the domain
functions instead.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botocore.config import Config


def client_config(read_timeout: int = 10, total_attempts: int = 3) -> Config:
    from botocore.config import Config

    # total_max_attempts counts the first call; botocore's max_attempts would count retries only.
    config = Config(
        retries={"mode": "standard", "total_max_attempts": total_attempts},
        connect_timeout=2,
        read_timeout=read_timeout,
    )
    if os.environ.get("AWS_ENDPOINT_URL"):
        # Host-prefixed operations (states:StartSyncExecution) would otherwise call
        # `sync-localhost`, which does not resolve. Only relevant with an endpoint override.
        config = config.merge(Config(inject_host_prefix=False))
    return config


@functools.cache
def client(service_name: str, read_timeout: int = 10, total_attempts: int = 3) -> Any:
    """A client with the SDK's standard retries. Pass `total_attempts=1` for calls that are not safe
    to repeat (StartSyncExecution: a read timeout would otherwise start a second execution)."""
    import boto3

    return boto3.client(service_name, config=client_config(read_timeout, total_attempts))


@functools.cache
def dynamodb_table(table_name: str) -> Any:
    import boto3

    return boto3.resource("dynamodb", config=client_config()).Table(table_name)
