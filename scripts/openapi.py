"""Export the enrollment API's OpenAPI definition, and keep the committed copy current.

    python scripts/openapi.py            # write openapi/enrollment-api.json
    python scripts/openapi.py --check    # exit 1 when the committed file differs

The document combines what the template deploys (the `EnrollmentApi` Swagger definition, which the
template includes from api/enrollment-api.yaml: paths, methods, security schemes, the stage) with the
request body schema of the real request model, `enrollment.model.EnrollmentRequest.model_json_schema()`.
It is OpenAPI 3.1, whose schemas are the JSON Schema dialect pydantic writes. The definition's
`Fn::If UseIamAuth` security becomes both alternatives (an operation takes one of them, depending on the
stack's `ApiAuthType`), and the Lambda integrations are left out (they are ARNs of one deployment).
Responses are written here, from the API's contract in docs/api.md; a route of the template without them
fails the export.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "openapi" / "enrollment-api.json"
API_RESOURCE = "EnrollmentApi"
for source in ("src/layers/common", "src/enrollment", "."):  # the model, its layer, the template reader
    if str(ROOT / source) not in sys.path:
        sys.path.insert(0, str(ROOT / source))

from sam_template import template  # noqa: E402 - the one reader of template.yaml's short tags

from enrollment import model  # noqa: E402


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


FORBIDDEN = {"description": "no or wrong API key (or no valid SigV4 signature with AWS_IAM); nothing is written"}
INVALID = _json(
    "the body is not a valid offer: each offending field is named; nothing is written",
    {"$ref": "#/components/schemas/InvalidRequestAnswer"},
)
RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("/enrollments", "post"): {
        "201": _json("eligible and enrolled: sameDayActions, eventualActions (name, offset, dueAt), payments"),
        "200": _json(
            "the rules lab said no: status ineligible, reasons (public code and message each; a sensitive rule"
            " answers NotEligibleThroughThisChannel) and rulesVersion"
        ),
        "400": INVALID,
        "403": FORBIDDEN,
        "409": _json(
            "ContractInProgress, ContractAlreadyEnrolled or ContractCancelled (the owner's contract);"
            " ContractUnavailable (a contract id that is not this client's); or RequestInProgress (same key)",
            {"$ref": "#/components/schemas/ErrorAnswer"},
        ),
        "422": _json("not_verified (AccountNotFound / AccountInactive), or IdempotencyKeyReused with another body"),
        "500": _json(
            "EnrollmentFailed: a step failed after its retries; no internals, safe to retry",
            {"$ref": "#/components/schemas/ErrorAnswer"},
        ),
        "504": _json(
            "EnrollmentStillRunning: the run did not finish within the request's time and may still complete;"
            " GET /enrollments/{contractId} shows its outcome, and sending the request again is safe",
            {"$ref": "#/components/schemas/ErrorAnswer"},
        ),
    },
    ("/enrollments/{contractId}", "get"): {
        "200": _json("status, every action (offset, dueAt, state, result or failure reason) and the audit trail"),
        "400": _json("not a contract id", {"$ref": "#/components/schemas/InvalidRequestAnswer"}),
        "403": FORBIDDEN,
        "404": _json(
            "EnrollmentNotFound: no such contract, or not this client's", {"$ref": "#/components/schemas/ErrorAnswer"}
        ),
    },
    ("/enrollments/{contractId}", "delete"): {
        "200": _json("cancelled: pending hooks deleted, their actions cancelled; fulfilled actions stay"),
        "400": _json("not a contract id", {"$ref": "#/components/schemas/InvalidRequestAnswer"}),
        "403": FORBIDDEN,
        "404": _json(
            "EnrollmentNotFound: no such contract, or not this client's", {"$ref": "#/components/schemas/ErrorAnswer"}
        ),
        "409": _json("NotCancellable: the contract is not enrolled", {"$ref": "#/components/schemas/ErrorAnswer"}),
    },
}
ANSWER_SCHEMAS = {
    "ErrorAnswer": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "the name of the outcome"},
            "message": {"type": "string"},
            "correlationId": {"type": "string"},
        },
    },
    "InvalidRequestAnswer": {
        "type": "object",
        "required": ["error", "errors"],
        "properties": {
            "error": {"type": "string", "enum": ["InvalidEnrollmentRequest", "InvalidContractId"]},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": "string", "description": "dotted path, or (body) for the body itself"},
                        "message": {"type": "string"},
                    },
                },
            },
            "correlationId": {"type": "string"},
        },
    },
}
POST_HEADERS = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "a retry with the same key and body gets the original answer; another body gets 422",
    },
    {
        "name": "X-Correlation-Id",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "carried through the workflow and the audit trail (default: the API Gateway request id)",
    },
]


def _parameter_defaults(tmpl: dict[str, Any]) -> dict[str, str]:
    return {name: str(spec.get("Default", "")) for name, spec in tmpl.get("Parameters", {}).items()}


def _sub(value: Any, defaults: dict[str, str]) -> Any:
    """`Fn::Sub` of parameters only (with their defaults); anything else is left as written."""
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        text = value["Fn::Sub"]
        for name, default in defaults.items():
            text = text.replace("${" + name + "}", default)
        return text
    return value


def _security(value: Any) -> list[dict[str, list[str]]]:
    """A plain list, or `Fn::If [condition, a, b]`: either alternative (OR, as OpenAPI lists it)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, when_true, when_false = value["Fn::If"]
        return [*_security(when_false), *_security(when_true)]
    return list(value)


def request_schemas() -> dict[str, Any]:
    """The request model's JSON schema, its definitions moved into `components/schemas`."""
    schema = model.EnrollmentRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return {model.EnrollmentRequest.__name__: schema, **definitions}


def _contract_id_parameter(schemas: dict[str, Any]) -> dict[str, Any]:
    identifier = dict(schemas["EnrollmentRequest"]["properties"]["contractId"])
    identifier.pop("title", None)
    return {"name": "contractId", "in": "path", "required": True, "schema": identifier}


def render() -> str:
    tmpl = template()
    properties = tmpl["Resources"][API_RESOURCE]["Properties"]
    body = properties["DefinitionBody"]
    defaults = _parameter_defaults(tmpl)
    schemas = request_schemas()
    paths: dict[str, Any] = {}
    for path, methods in body["paths"].items():
        for method, operation in methods.items():
            if (path, method) not in RESPONSES:
                raise SystemExit(f"{method.upper()} {path} is deployed but has no documented responses in {__file__}")
            exported: dict[str, Any] = {"security": _security(operation.get("security", []))}
            parameters = [_contract_id_parameter(schemas)] if "{contractId}" in path else []
            if (path, method) == ("/enrollments", "post"):
                parameters += POST_HEADERS
                exported["requestBody"] = {
                    "required": True,
                    "description": (
                        f"Exactly one contract offer; at most {model.MAX_REQUEST_BYTES} bytes. Fields the model "
                        f"does not name are kept, nested at most {model.MAX_EXTRA_DEPTH} levels, with numbers "
                        "DynamoDB can store."
                    ),
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/EnrollmentRequest"}}},
                }
            if parameters:
                exported["parameters"] = parameters
            exported["responses"] = RESPONSES[(path, method)]
            paths.setdefault(path, {})[method] = exported
    security_schemes = {name: dict(scheme) for name, scheme in body["securityDefinitions"].items()}
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": _sub(body["info"]["title"], defaults),
            "version": str(body["info"]["version"]),
            "description": (
                "Generated by scripts/openapi.py (`make openapi`) from template.yaml's EnrollmentApi and the "
                "request model in src/enrollment/enrollment/model.py. Do not edit by hand."
            ),
        },
        "servers": [
            {
                "url": "https://{apiId}.execute-api.{region}.amazonaws.com/" + properties["StageName"],
                "variables": {"apiId": {"default": "apiId"}, "region": {"default": "us-east-1"}},
            }
        ],
        "paths": paths,
        "components": {"securitySchemes": security_schemes, "schemas": {**schemas, **ANSWER_SCHEMAS}},
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    wanted = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != wanted:
            print(
                f"{OUTPUT.relative_to(ROOT)} differs from the template and the model: run `make openapi`",
                file=sys.stderr,
            )
            sys.exit(1)
        return
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(wanted)
    print(f"{OUTPUT.relative_to(ROOT)} written: {sum(len(m) for m in json.loads(wanted)['paths'].values())} operations")


if __name__ == "__main__":
    main()
