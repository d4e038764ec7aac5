"""Values read from DynamoDB carry `Decimal`; Lambda results and HTTP bodies need plain JSON."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def json_ready(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_ready(item) for item in value]
    return value
