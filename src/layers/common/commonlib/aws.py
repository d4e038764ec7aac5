"""The one place boto3 clients are created.

boto3 reads ``AWS_ENDPOINT_URL`` by itself, so the same code talks to AWS or to a local emulator.
Clients are created lazily and cached per process: created on first use (cheap imports, fast cold
start), reused on warm invocations. Unit tests pass their own clients to the domain functions instead.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import boto3
from botocore.config import Config

_RETRIES = {"mode": "standard", "max_attempts": 3}


def client_config() -> Config:
    config = Config(retries=_RETRIES, connect_timeout=2, read_timeout=10)
    if os.environ.get("AWS_ENDPOINT_URL"):
        # Host-prefixed operations (states:StartSyncExecution) would otherwise call
        # `sync-localhost`, which does not resolve. Only relevant with an endpoint override.
        config = config.merge(Config(inject_host_prefix=False))
    return config


@functools.cache
def client(service_name: str) -> Any:
    return boto3.client(service_name, config=client_config())


@functools.cache
def dynamodb_table(table_name: str) -> Any:
    return boto3.resource("dynamodb", config=client_config()).Table(table_name)
