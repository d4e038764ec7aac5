"""Input validation: pydantic models in, `InvalidInputError` listing every offending field out."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from commonlib.errors import InvalidInputError

Model = TypeVar("Model", bound=BaseModel)


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    found = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(part) for part in item["loc"]) or "(body)"
        found.append({"field": field, "message": item["msg"]})
    return found


def parse[Model: BaseModel](model: type[Model], data: Any) -> Model:
    """Validate `data` against `model`; raise `InvalidInputError` naming each offending field."""
    if not isinstance(data, dict):
        raise InvalidInputError([{"field": "(body)", "message": f"expected a JSON object, got {_json_type(data)}"}])
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as error:
        raise InvalidInputError(field_errors(error)) from None


def _json_type(value: Any) -> str:
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return names.get(type(value), type(value).__name__)
