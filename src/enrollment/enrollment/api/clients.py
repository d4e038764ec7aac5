"""Who is calling: the client API Gateway authenticated, as one opaque id that owns what it creates.

- IAM mode (`ApiAuthType=AWS_IAM`): `iam:<userArn>`, the principal whose SigV4 signature API Gateway
  verified (`requestContext.identity.userArn`). An assumed role's ARN ends in a session name that each
  session chooses anew (`arn:aws:sts::<account>:assumed-role/<Role>/<Session>`), so the client is the role
  (`iam:arn:aws:sts::<account>:assumed-role/<Role>`): every session of one role is one client.
- API-key mode: `key:<first 32 hex digits of sha256(x-api-key)>`. API Gateway checked that key
  against the usage plan before the function runs; the event's `identity.apiKeyId` is not used because
  the local emulator does not send it. The key itself is never stored or logged.

Nothing identified means no client: the caller is refused (403), never given a shared owner.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

API_KEY_HEADER = "x-api-key"
# Any partition (aws, aws-cn, aws-us-gov...); role and session names contain no "/".
_ASSUMED_ROLE_SESSION = re.compile(r"^(arn:[^:/]+:sts::[^:/]*:assumed-role/[^/]+)/[^/]+$")


def client_id(event: Mapping[str, Any]) -> str | None:
    """The caller's client id, or None when the event names no authenticated caller."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    user_arn = identity.get("userArn") if isinstance(identity, Mapping) else None
    if isinstance(user_arn, str) and user_arn:
        return f"iam:{principal(user_arn)}"  # checked first: in IAM mode an x-api-key header is not verified
    key = _header(event, API_KEY_HEADER)
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:32]
    return None


def principal(user_arn: str) -> str:
    """The IAM principal an ARN names: an assumed role without its session name, anything else as is."""
    match = _ASSUMED_ROLE_SESSION.match(user_arn)
    return match[1] if match else user_arn


def _header(event: Mapping[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name and isinstance(value, str) and value:
            return value
    return None
