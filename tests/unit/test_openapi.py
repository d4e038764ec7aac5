from __future__ import annotations

import json

import openapi
from enrollment import model
from tests.support.template import ROOT, resource


def test_committed_openapi_matches_the_template_and_the_model() -> None:
    committed = (ROOT / "openapi" / "enrollment-api.json").read_text()
    assert openapi.render() == committed, "openapi/enrollment-api.json is stale: run `make openapi`"


def test_every_deployed_route_is_exported_with_its_security() -> None:
    document = json.loads(openapi.render())
    deployed = resource("EnrollmentApi")["Properties"]["DefinitionBody"]
    routes = {(path, method) for path, methods in deployed["paths"].items() for method in methods}
    assert {(path, method) for path, methods in document["paths"].items() for method in methods} == routes
    for path, method in routes:
        assert document["paths"][path][method]["security"] == [{"api_key": []}, {"sigv4": []}], (path, method)
    assert set(document["components"]["securitySchemes"]) == set(deployed["securityDefinitions"])


def test_request_body_is_the_request_models_schema() -> None:
    document = json.loads(openapi.render())
    body = document["paths"]["/enrollments"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schemas = document["components"]["schemas"]
    wanted = model.EnrollmentRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert body == {"$ref": "#/components/schemas/EnrollmentRequest"}
    assert schemas["EnrollmentRequest"] == {key: value for key, value in wanted.items() if key != "$defs"}
    for name, definition in wanted["$defs"].items():
        assert schemas[name] == definition, name
