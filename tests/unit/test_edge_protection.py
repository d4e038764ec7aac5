"""Edge protection on AWS, checked in template.yaml: the REST API's resource policy,
the optional WAF web ACL, the request body's size bounds at API Gateway, the usage plan's per-key
throttling and quota, and the queues' TLS-only policies.

The local emulator ignores the resource policy, the request validator and the gateway response when it
imports the API's body, and the queue policies are not deployed there (its endpoint is plain HTTP), so
these tests are where those controls are checked; the body bounds are also run against the requests the
integration tests send, with a JSON Schema draft 4 validator (the draft API Gateway uses).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import stack
from hypothesis import HealthCheck, given, settings
from jsonschema import Draft4Validator

from enrollment import model
from tests.support import malformed
from tests.support.template import resource, template

SEED = malformed.SEED
EVENTS = Path(__file__).resolve().parents[2] / "events" / "enrollment"
FIVE_MB = 5 * 1024 * 1024


def parameter(name: str) -> dict[str, Any]:
    return template()["Parameters"][name]


def condition(name: str) -> Any:
    return template()["Conditions"][name]


def api_body() -> dict[str, Any]:
    return resource("EnrollmentApi")["Properties"]["DefinitionBody"]


def post_enrollments() -> dict[str, Any]:
    return api_body()["paths"]["/enrollments"]["post"]


# ---------------------------------------------------------------- resource policy


def test_api_resource_policy_allows_invoke_and_denies_sources_outside_the_allowed_cidrs() -> None:
    cidrs = parameter("AllowedSourceCidrs")
    assert cidrs["Type"] == "CommaDelimitedList"
    assert cidrs["Default"] == "0.0.0.0/0,::/0"  # every address: no restriction unless narrowed
    policy = api_body()["x-amazon-apigateway-policy"]
    assert policy["Version"] == "2012-10-17"
    allow, deny = policy["Statement"]
    assert allow["Effect"] == "Allow"
    assert allow["Action"] == "execute-api:Invoke"
    assert allow["Resource"] == "execute-api:/*"
    # API keys: any caller (the key authenticates); IAM: this account's principals only.
    assert allow["Principal"] == {
        "Fn::If": [
            "UseIamAuth",
            {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
            "*",
        ]
    }
    assert "Condition" not in allow
    assert deny == {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "execute-api:Invoke",
        "Resource": "execute-api:/*",
        "Condition": {"NotIpAddress": {"aws:SourceIp": {"Ref": "AllowedSourceCidrs"}}},
    }


def test_resource_policy_is_not_in_sam_auth() -> None:
    # SAM resolves parameters in Auth at transform time: a CommaDelimitedList would become one string.
    assert "ResourcePolicy" not in resource("EnrollmentApi")["Properties"]["Auth"]


# ---------------------------------------------------------------- optional WAF


def test_waf_is_optional_and_off_by_default() -> None:
    waf = parameter("WafWebAcl")
    assert waf["AllowedValues"] == ["disabled", "enabled"]
    assert waf["Default"] == "disabled"
    assert condition("WafEnabled") == {"Fn::Equals": [{"Ref": "WafWebAcl"}, "enabled"]}
    assert parameter("WafRateLimitPer5Minutes")["Default"] == 2000
    wafv2 = {name for name, body in template()["Resources"].items() if body["Type"].startswith("AWS::WAFv2::")}
    assert wafv2 == {"EnrollmentApiWebAcl", "EnrollmentApiWebAclAssociation"}
    for name in wafv2:
        assert resource(name)["Condition"] == "WafEnabled", name


def test_web_acl_limits_each_client_ip_and_applies_the_aws_common_rules() -> None:
    acl = resource("EnrollmentApiWebAcl")["Properties"]
    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    rules = {rule["Name"]: rule for rule in acl["Rules"]}
    assert len({rule["Priority"] for rule in acl["Rules"]}) == len(acl["Rules"])
    rate = next(rule for rule in rules.values() if "RateBasedStatement" in rule["Statement"])
    assert rate["Statement"]["RateBasedStatement"] == {
        "Limit": {"Ref": "WafRateLimitPer5Minutes"},
        "AggregateKeyType": "IP",
    }
    assert rate["Action"] == {"Block": {}}
    managed = {
        rule["Statement"]["ManagedRuleGroupStatement"]["Name"]: rule
        for rule in rules.values()
        if "ManagedRuleGroupStatement" in rule["Statement"]
    }
    assert "AWSManagedRulesCommonRuleSet" in managed
    for rule in managed.values():
        assert rule["Statement"]["ManagedRuleGroupStatement"]["VendorName"] == "AWS"
        assert rule["OverrideAction"] == {"None": {}}  # the group's own block actions apply
    for rule in acl["Rules"]:
        assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True, rule["Name"]


def test_web_acl_is_associated_with_the_api_stage() -> None:
    association = resource("EnrollmentApiWebAclAssociation")["Properties"]
    assert association["WebACLArn"] == {"Fn::GetAtt": "EnrollmentApiWebAcl.Arn"}
    assert association["ResourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${EnrollmentApi}"
        "/stages/${EnrollmentApi.Stage}"
    }
    assert resource("EnrollmentApi")["Properties"]["StageName"]


# ---------------------------------------------------------------- request body bounds at API Gateway


def bounds() -> dict[str, Any]:
    [body_parameter] = [p for p in post_enrollments()["parameters"] if p["in"] == "body"]
    assert body_parameter["required"] is False  # an empty body is the function's to answer
    reference = body_parameter["schema"]["$ref"]
    assert reference.startswith("#/definitions/")
    return api_body()["definitions"][reference.removeprefix("#/definitions/")]


def test_post_enrollments_validates_its_body_against_the_bounds_model() -> None:
    name = post_enrollments()["x-amazon-apigateway-request-validator"]
    assert api_body()["x-amazon-apigateway-request-validators"][name] == {
        "validateRequestBody": True,
        "validateRequestParameters": False,
    }
    assert bounds()
    # Only POST /enrollments carries a body.
    for path, methods in api_body()["paths"].items():
        for method, operation in methods.items():
            if (path, method) != ("/enrollments", "post"):
                assert "x-amazon-apigateway-request-validator" not in operation, (path, method)


# Keywords that only bound a size, and only for the type they apply to (draft 4): no `type`, `required`,
# `pattern` or minimum, and `additionalProperties` only as a schema of such bounds (never `false`), so
# nothing the function names by field is refused here.
SIZE_KEYWORDS = {"title", "properties", "additionalProperties", "items", "maxProperties", "maxItems", "maxLength"}


def subschemas(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every schema of the model with its path (`*` for any other property, `#` for any item)."""
    found = [(path, schema)]
    for name, sub in schema.get("properties", {}).items():
        found += subschemas(sub, f"{path}.{name}".lstrip("."))
    if "additionalProperties" in schema:
        assert isinstance(schema["additionalProperties"], dict), path
        found += subschemas(schema["additionalProperties"], f"{path}.*".lstrip("."))
    if isinstance(schema.get("items"), dict):
        found += subschemas(schema["items"], f"{path}.#".lstrip("."))
    return found


def keywords(schema: dict[str, Any]) -> set[str]:
    return {keyword for _, sub in subschemas(schema) for keyword in sub}


def test_bounds_only_limit_sizes_far_above_the_functions_own_limits() -> None:
    schema = bounds()
    Draft4Validator.check_schema(schema)
    assert keywords(schema) <= SIZE_KEYWORDS
    fields = schema["properties"]
    assert fields["contractId"]["maxLength"] >= 10 * 40
    assert fields["accountId"]["maxLength"] >= 10 * 40
    assert fields["correlationId"]["maxLength"] >= 10 * 100
    assert fields["contractInfo"]["properties"]["product"]["maxLength"] >= 10 * 100
    actions = fields["contractDraft"]["properties"]["List"]
    assert actions["maxItems"] >= 5 * model.MAX_ACTIONS
    assert actions["items"]["properties"]["name"]["maxLength"] >= 10 * 64
    assert schema["maxProperties"] >= 10 * len(model.EnrollmentRequest.model_fields)
    # Above what the integration tests send as oversized (tests/support/malformed.py).
    assert min(f["maxLength"] for f in (fields["contractId"], fields["correlationId"])) > malformed.OVERSIZED_MAX + 1


def test_every_value_the_model_does_not_name_is_bounded_beyond_what_an_accepted_body_holds() -> None:
    """Free-form values (the function takes any within its 32 KB body) are bounded at each level the
    function accepts them: a character, an item or a property takes at least one byte of the body, so
    a bound of twice MAX_REQUEST_BYTES is never reached by a body the function accepts."""
    schemas = dict(subschemas(bounds()))
    free_form = {path for path in schemas if path.endswith("*")}
    assert free_form == {"*", "contractInfo.*", "contractDraft.*", "contractDraft.List.#.*"} | {
        "contractDraft.List.#.otherData.*"
    }
    for path in free_form | {"contractDraft.List.#.otherData"}:
        schema = schemas[path]
        limits = {"maxProperties"} if path.endswith("otherData") else {"maxLength", "maxItems", "maxProperties"}
        for keyword in limits:
            assert schema[keyword] >= 2 * model.MAX_REQUEST_BYTES, (path, keyword)


def gateway_answer() -> tuple[int, dict[str, Any]]:
    response = api_body()["x-amazon-apigateway-gateway-responses"]["BAD_REQUEST_BODY"]
    rendered = response["responseTemplates"]["application/json"].replace("$context.requestId", "req-1")
    return response["statusCode"], json.loads(rendered)


def test_a_body_refused_at_api_gateway_gets_the_functions_answer_for_the_body() -> None:
    status, answer = gateway_answer()
    assert status == 400
    assert answer["error"] == "InvalidEnrollmentRequest"
    assert [error["field"] for error in answer["errors"]] == ["(body)"]
    assert answer["correlationId"] == "req-1"


def refused_at_api_gateway(raw: bytes) -> bool:
    """What API Gateway's validator does with an application/json body: not JSON, or outside the bounds."""
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return True
    try:
        return not Draft4Validator(bounds()).is_valid(document)
    except RecursionError:
        return True


def largest_valid_request() -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    body["contractId"] = "C" * 40
    body["accountId"] = "A" * 40
    body["correlationId"] = "x" * 100
    body["contractInfo"]["product"] = "p" * 100
    body["contractDraft"]["List"] = [{"name": "action1", "offset": n} for n in range(model.MAX_ACTIONS)]
    return body


def compact(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


@pytest.mark.parametrize("body", [SEED, largest_valid_request()], ids=["seed", "largest"])
def test_valid_requests_pass_the_bounds(body: dict[str, Any]) -> None:
    assert not refused_at_api_gateway(json.dumps(body).encode())


def filled(place: str) -> dict[str, Any]:
    """The seed with one free-form value as large as the function takes (its body just under 32 KB)."""
    body = copy.deepcopy(SEED)
    room = model.MAX_REQUEST_BYTES - len(compact(body)) - 100
    holders = {
        "contractInfo": body["contractInfo"],
        "contractDraft": body["contractDraft"],
        "action": body["contractDraft"]["List"][1],
        "otherData": next(a for a in body["contractDraft"]["List"] if "otherData" in a)["otherData"],
    }
    holder, _, shape = place.partition(":")
    value: Any = {
        "string": "x" * room,
        "list": [0] * (room // 2),
        "object": {str(n): 0 for n in range(room // 9)},
    }[shape]
    holders[holder]["notes"] = value
    return body


def api_event_body(name: str) -> dict[str, Any]:
    return json.loads(json.loads((EVENTS / name).read_text())["body"])


ACCEPTED_REQUESTS = {
    "seed": SEED,
    "api-post-eligible": api_event_body("api-post-eligible.json"),
    "api-post-ineligible": api_event_body("api-post-ineligible.json"),
    **{
        f"largest {place}": filled(place)
        for place in (
            f"{holder}:{shape}"
            for holder in ("contractInfo", "contractDraft", "action", "otherData")
            for shape in ("string", "list", "object")
        )
    },
}


@pytest.mark.parametrize("body", ACCEPTED_REQUESTS.values(), ids=ACCEPTED_REQUESTS.keys())
def test_every_request_the_function_accepts_passes_the_bounds(body: dict[str, Any]) -> None:
    raw = compact(body)
    assert len(raw) <= model.MAX_REQUEST_BYTES
    model.EnrollmentRequest.model_validate(body)  # the function accepts it
    assert not refused_at_api_gateway(raw)


def with_value(place: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    holder = {
        "top level": body,
        "contractInfo": body["contractInfo"],
        "contractDraft": body["contractDraft"],
        "action": body["contractDraft"]["List"][1],
        "otherData": next(a for a in body["contractDraft"]["List"] if "otherData" in a)["otherData"],
    }[place]
    holder["unknown"] = value
    return body


@pytest.mark.parametrize("place", ["top level", "contractInfo", "contractDraft", "action", "otherData"])
def test_a_5_mb_value_of_a_field_the_model_does_not_name_is_refused_at_api_gateway(place: str) -> None:
    for value in ("x" * FIVE_MB, [0] * (FIVE_MB // 2), {str(n): 0 for n in range(FIVE_MB // 16)}):
        assert refused_at_api_gateway(json.dumps(with_value(place, value)).encode()), (place, type(value))


def test_an_action_with_5_mb_of_other_data_is_refused_at_api_gateway() -> None:
    body = copy.deepcopy(SEED)
    action = next(a for a in body["contractDraft"]["List"] if "otherData" in a)
    action["otherData"] = {"newRate": 0.0499, "note": "n" * FIVE_MB}
    assert refused_at_api_gateway(json.dumps(body).encode())
    action["otherData"] = {"newRate": 0.0499} | {f"k{n}": 0 for n in range(FIVE_MB // 16)}
    assert refused_at_api_gateway(json.dumps(body).encode())


def test_far_oversized_structures_are_refused_at_api_gateway() -> None:
    many = copy.deepcopy(SEED)
    many["contractDraft"]["List"] = [{"name": f"a{n}", "offset": n} for n in range(10 * model.MAX_ACTIONS)]
    long_id = {**SEED, "contractId": "C" * 100_000}
    many_fields = {**SEED, **{f"x{n}": n for n in range(1000)}}
    for body in (many, long_id, many_fields):
        assert refused_at_api_gateway(json.dumps(body).encode())


def test_every_simplest_malformed_request_gets_the_same_fields_whoever_answers() -> None:
    refused = []
    for request in malformed.one_of_each():
        if refused_at_api_gateway(request.body):
            assert request.fields == malformed.BODY, request.category
            refused.append(request.category)
    assert refused, "no request took the API Gateway branch: the check above ran zero times"


def test_generated_malformed_requests_get_the_same_fields_whoever_answers() -> None:
    refused = []

    @settings(max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(malformed.malformed_requests())
    def check(sent: malformed.Malformed) -> None:
        # The integration tests expect the function's 400 naming each broken field; a request API Gateway
        # refuses first is answered (body), so it must be one whose expected answer is (body) anyway.
        if refused_at_api_gateway(sent.body):
            assert sent.fields == malformed.BODY, (sent.category, sent.body[:200])
            refused.append(sent.category)

    check()
    assert refused, "no generated request took the API Gateway branch: the check above ran zero times"


# ---------------------------------------------------------------- usage plan: per-key throttle and quota


def test_usage_plan_throttles_and_meters_each_api_key() -> None:
    quota = parameter("ApiQuotaPerDay")
    assert quota["Type"] == "Number"
    assert quota["Default"] >= 10_000
    plan = resource("EnrollmentApi")["Properties"]["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert plan["Throttle"] == {
        "RateLimit": {"Ref": "ApiClientThrottleRateLimit"},
        "BurstLimit": {"Ref": "ApiClientThrottleBurstLimit"},
    }
    assert plan["Quota"] == {"Limit": {"Ref": "ApiQuotaPerDay"}, "Period": "DAY"}
    # Every method requires the key the plan meters (or SigV4 with ApiAuthType=AWS_IAM).
    key_or_sigv4 = {"Fn::If": ["UseIamAuth", [{"sigv4": []}], [{"api_key": []}]]}
    for path, methods in api_body()["paths"].items():
        for method, operation in methods.items():
            assert operation["security"] == key_or_sigv4, (path, method)


def local_overrides() -> dict[str, str]:
    """samconfig `local`'s parameter overrides, as `make up` and the integration tests deploy them."""
    return dict(override.partition("=")[::2] for override in stack.local_parameter_overrides())


@pytest.mark.parametrize("limit", ["RateLimit", "BurstLimit"])
def test_one_key_gets_a_share_of_the_stage_not_all_of_it(limit: str) -> None:
    stage = resource("EnrollmentApi")["Properties"]["MethodSettings"][0][f"Throttling{limit}"]
    assert stage == {"Ref": f"ApiThrottle{limit}"}
    client, whole = parameter(f"ApiClientThrottle{limit}"), parameter(f"ApiThrottle{limit}")
    assert client["Type"] == whole["Type"] == "Number"
    assert 0 < client["Default"] < whole["Default"]  # on AWS one key cannot take the whole stage
    # Locally a key may use the stage's whole (small) capacity: the tests' clients are held by the stage alone.
    local = local_overrides()
    assert local[f"ApiClientThrottle{limit}"] == local[f"ApiThrottle{limit}"]


# ---------------------------------------------------------------- queues: TLS only


@pytest.mark.parametrize("queue", ["HookDeadLetterQueue", "RejectedRecordsQueue"])
def test_queue_denies_every_request_without_tls(queue: str) -> None:
    policies = [
        body
        for body in template()["Resources"].values()
        if body["Type"] == "AWS::SQS::QueuePolicy" and {"Ref": queue} in body["Properties"]["Queues"]
    ]
    assert len(policies) == 1, queue
    [policy] = policies
    # On AWS only: the emulator's endpoint is plain HTTP, where this policy would refuse every call.
    assert policy["Condition"] == "OnAws"
    assert condition("OnAws") == {"Fn::Equals": [{"Ref": "EmulatorEndpoint"}, ""]}
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # Deny only: the writers and readers are allowed by their own roles' policies.
    assert {statement["Effect"] for statement in statements} == {"Deny"}
    [deny] = statements
    assert deny["Principal"] == "*"
    assert deny["Action"] == "sqs:*"
    assert deny["Resource"] == {"Fn::GetAtt": f"{queue}.Arn"}
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
