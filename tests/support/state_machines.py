"""The three state machines as data: their ASL with fake-but-well-formed DefinitionSubstitutions, every
Choice/Catch/Retry branch they contain, and helpers to drive them on the emulator without any Lambda
worker (the Step Functions `TestState` API for one state, mocked service integrations for whole paths).

Mocked service integrations use the AWS Step Functions Local mock-config format that ministack reads:

    {"StateMachines": {NAME: {"TestCases": {CASE: {STATE: RESPONSE}}}},
     "MockedResponses": {RESPONSE: {"0": {"Return": ...}, "1-999": {"Throw": {"Error": ..., "Cause": ...}}}}}

and a run selects its case with `arn:…:stateMachine:NAME#CASE`. A mocked `Return` is the raw service
result: the state's ResultSelector and ResultPath (JSONata: Output and Assign) still apply. Mocks are
written here as the value the ResultSelector should produce (`Returns`) and turned into the raw result by
reading the selector backwards, so a mock keeps up when a state's integration changes shape; a JSONata
Lambda task's mock is the function's answer (the Payload).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import stack

from tests.support.template import resource, template

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "000000000000"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/state-machine-branch-tests"
PSEUDO = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
# Every mocked failure carries a cause starting with this: any other failure in a history was a real call.
INJECTED = "injected"


# ------------------------------------------------------------------------------------------ machines
@dataclass(frozen=True)
class Machine:
    """One state machine to create: a template resource, optionally with some substitutions overridden."""

    key: str
    logical_id: str
    overrides: tuple[tuple[str, str], ...] = ()
    name_suffix: str = ""

    @property
    def properties(self) -> dict[str, Any]:
        return resource(self.logical_id)["Properties"]

    @property
    def asl(self) -> str:
        """The ASL file's stem, e.g. `enrollment-async`: branches are counted per file."""
        return Path(self.properties["DefinitionUri"]).name.removesuffix(".asl.json")

    @property
    def name(self) -> str:
        return template_value(self.properties["Name"], {}) + self.name_suffix

    @property
    def type(self) -> str:
        return self.properties.get("Type", "STANDARD")

    @property
    def arn(self) -> str:
        return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{self.name}"

    def substitutions(self) -> dict[str, str]:
        overrides = dict(self.overrides)
        return {
            key: overrides.get(key, template_value(value, overrides))
            for key, value in self.properties.get("DefinitionSubstitutions", {}).items()
        }

    def definition_text(self) -> str:
        text = (ROOT / self.properties["DefinitionUri"]).read_text()
        for key, value in self.substitutions().items():
            text = text.replace("${" + key + "}", value)
        left = sorted(set(re.findall(r"\$\{(\w+)\}", text)))
        assert not left, f"{self.logical_id}: no DefinitionSubstitutions for {left}"
        return text

    def definition(self) -> dict[str, Any]:
        return json.loads(self.definition_text())


def template_value(value: Any, overrides: dict[str, str]) -> str:
    """A fake-but-well-formed value for a template expression (Ref, GetAtt, Sub) in this account."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return _ref(value["Ref"], overrides)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        logical_id, attribute = target.split(".", 1) if isinstance(target, str) else target
        return _get_att(logical_id, attribute)
    if isinstance(value, dict) and "Fn::Sub" in value:
        text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            return _get_att(*name.split(".", 1)) if "." in name else _ref(name, overrides)

        return re.sub(r"\$\{([\w:.]+)\}", replace, text)
    if isinstance(value, dict) and "Fn::If" in value:
        condition, when_true, when_false = value["Fn::If"]
        return template_value(when_true if condition_holds(condition, overrides) else when_false, overrides)
    raise ValueError(f"no fake value for the template expression {value!r}: teach template_value about it")


def condition_holds(name: str, overrides: dict[str, str]) -> bool:
    """A template condition, evaluated as scripts/stack.py evaluates a live stack's, with the parameters
    at their defaults unless overridden (EmulatorEndpoint empty: the machine as AWS runs it)."""
    parameters = {key: str(value.get("Default", "")) for key, value in template().get("Parameters", {}).items()}
    return stack.condition_holds(name, {**PSEUDO, **parameters, **overrides}, template()["Conditions"])


def _ref(name: str, overrides: dict[str, str]) -> str:
    if name in PSEUDO:
        return PSEUDO[name]
    if name in overrides:
        return overrides[name]
    parameter = template().get("Parameters", {}).get(name)
    if parameter is not None:
        return str(parameter.get("Default", name))
    return name  # a resource: its logical id stands in for its physical name


def _get_att(logical_id: str, attribute: str) -> str:
    if attribute != "Arn":
        return logical_id
    kind = resource(logical_id)["Type"]
    if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
    if kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
        return Machine(logical_id, logical_id).arn
    if kind == "AWS::DynamoDB::Table":
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logical_id}"
    if kind == "AWS::Kinesis::Stream":
        return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{logical_id}"
    service = kind.split("::")[1].lower()
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{logical_id}"


# ------------------------------------------------------------------------------------------ branches
@dataclass(frozen=True, order=True)
class Branch:
    """One way out of a state: a Choice rule or its Default, a Catch, a Retry."""

    asl: str
    state: str  # a Map's inner states are named `Map/Inner`
    kind: str  # "Choices", "Default", "Catch" or "Retry"
    index: int = 0
    target: str | None = None  # the Next state (none for a Retry: it goes back to the same state)

    def __str__(self) -> str:
        where = f"{self.kind}[{self.index}]" if self.kind != "Default" else "Default"
        return f"{self.asl}: {self.state} {where}" + (f" -> {self.target}" if self.target else "")


def walk(definition: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state with its path, descending into Map item processors and Parallel branches. Each state
    names the QueryLanguage it runs in (its own, else the machine's): TestState runs a state alone, and
    reads a state without one as JSONPath."""
    yield from _walk(definition["States"], "", definition.get("QueryLanguage", "JSONPath"))


def _walk(states: dict[str, Any], prefix: str, language: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield prefix + name, {"QueryLanguage": language, **state}
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from _walk(processor["States"], f"{prefix}{name}/", state.get("QueryLanguage", language))
        for number, branch in enumerate(state.get("Branches", [])):
            yield from _walk(branch["States"], f"{prefix}{name}/{number}/", state.get("QueryLanguage", language))


def state_at(definition: dict[str, Any], path: str) -> dict[str, Any]:
    return dict(walk(definition))[path]


def is_jsonata(state: dict[str, Any]) -> bool:
    """For a state from `walk`, which carries its QueryLanguage."""
    return state["QueryLanguage"] == "JSONata"


def branches(asl: str, definition: dict[str, Any]) -> list[Branch]:
    found = []
    for path, state in walk(definition):
        for index, rule in enumerate(state.get("Choices", [])):
            found.append(Branch(asl, path, "Choices", index, rule["Next"]))
        if state.get("Type") == "Choice" and "Default" in state:
            found.append(Branch(asl, path, "Default", 0, state["Default"]))
        for index, catcher in enumerate(state.get("Catch", [])):
            found.append(Branch(asl, path, "Catch", index, catcher["Next"]))
        for index, _retrier in enumerate(state.get("Retry", [])):
            found.append(Branch(asl, path, "Retry", index))
    return found


# ------------------------------------------------------------------------------------------ errors
def matches(error_equals: list[str], error: str) -> bool:
    """ASL error matching: States.ALL matches all, States.TaskFailed all but States.Timeout."""
    return (
        "States.ALL" in error_equals
        or error in error_equals
        or ("States.TaskFailed" in error_equals and error != "States.Timeout")
    )


def first_match(handlers: list[dict[str, Any]], error: str) -> tuple[int, dict[str, Any]] | None:
    for index, handler in enumerate(handlers):
        if matches(handler["ErrorEquals"], error):
            return index, handler
    return None


def unexpected_error(state: dict[str, Any]) -> str:
    """The name an unexpected failure of this task arrives with locally: a Lambda's exception is
    always `Runtime.HandlerError` on the emulator; a service integration's is a States.TaskFailed."""
    return "Runtime.HandlerError" if "lambda:invoke" in state.get("Resource", "") else "States.TaskFailed"


def error_for(state: dict[str, Any], handlers: list[dict[str, Any]], index: int) -> str:
    """An error that handler `index` (a Retry or Catch entry) matches and no earlier handler does."""
    named = [name for name in handlers[index]["ErrorEquals"] if not name.startswith("States.")]
    for candidate in [*named, unexpected_error(state), "States.Timeout"]:
        found = first_match(handlers, candidate)
        if found and found[0] == index:
            return candidate
    raise AssertionError(f"every error handler {index} matches is matched by an earlier one: {handlers}")


def retries_spent(state: dict[str, Any], error: str) -> int:
    """How many retries the first retrier matching `error` allows (0 when none matches)."""
    found = first_match(state.get("Retry", []), error)
    return found[1].get("MaxAttempts", 3) if found else 0


# ------------------------------------------------------------------------------------------ paths
def get_path(document: Any, path: str) -> Any:
    for part in _parts(path):
        document = document[part]
    return document


def with_path(document: Any, path: str | None, value: Any) -> Any:
    """`document` with `value` at a ResultPath (`None` discards the value, `$` replaces the document)."""
    if path is None:
        return copy.deepcopy(document)
    parts = _parts(path)
    if not parts:
        return copy.deepcopy(value)
    result = copy.deepcopy(document)
    here = result
    for part in parts[:-1]:
        here = here.setdefault(part, {})
    here[parts[-1]] = copy.deepcopy(value)
    return result


def _parts(path: str) -> list[str]:
    assert re.fullmatch(r"\$(\.\w+)*", path), f"only plain $.a.b paths are supported here, not {path!r}"
    return path.split(".")[1:]


# ------------------------------------------------------------------------------------------ mocks
@dataclass(frozen=True)
class Returns:
    """The task answers; `value` is what its ResultSelector yields (or the raw result if it has none); in a
    JSONata state, what a Lambda returned (the invocation's Payload), or any other service's raw result."""

    value: Any


@dataclass(frozen=True)
class Throws:
    """The task fails; with no `error`, as an unexpected failure of its kind does (see `unexpected_error`)."""

    error: str = ""
    cause: str = ""


Response = Returns | Throws


def raw_result(state: dict[str, Any], value: Any) -> Any:
    """The raw service result that the state's ResultSelector turns into `value` (JSONPath); for a JSONata
    `lambda:invoke` task, the invocation result whose Payload is `value`."""
    if is_jsonata(state):
        return {"StatusCode": 200, "Payload": value} if "lambda:invoke" in state.get("Resource", "") else value
    selector = state.get("ResultSelector")
    if not selector:
        return value
    raw: dict[str, Any] = {"StatusCode": 200} if "lambda:invoke" in state.get("Resource", "") else {}
    _unselect(selector, value, raw, state)
    return raw


def _unselect(selector: dict[str, Any], value: dict[str, Any], raw: dict[str, Any], state: dict[str, Any]) -> None:
    for key, expression in selector.items():
        if key.endswith(".$") and isinstance(expression, str) and expression.startswith("$."):
            name = key[:-2]
            if name not in value:
                raise KeyError(f"the mock for {state.get('Resource')} lacks {name!r}, which its ResultSelector reads")
            parts = _parts(expression)
            here = raw
            for part in parts[:-1]:
                here = here.setdefault(part, {})
            here[parts[-1]] = value[name]
        elif isinstance(expression, dict):
            _unselect(expression, value.get(key, {}), raw, state)


def mocked_response(state_name: str, state: dict[str, Any], response: Response) -> dict[str, Any]:
    if isinstance(response, Throws):
        error = response.error or unexpected_error(state)
        cause = response.cause or f"{INJECTED}: {error} in {state_name}"
        return {"Throw": {"Error": error, "Cause": cause}}
    return {"Return": raw_result(state, response.value)}


@dataclass
class MockConfig:
    """Builds one mock config for all machines; each case names every task state it may enter."""

    document: dict[str, Any] = field(default_factory=lambda: {"StateMachines": {}, "MockedResponses": {}})

    def add_case(
        self, machine: Machine, case: str, definition: dict[str, Any], mocks: dict[str, Response | list[Response]]
    ) -> None:
        states = {path.rsplit("/", 1)[-1]: state for path, state in walk(definition)}
        cases = self.document["StateMachines"].setdefault(machine.name, {"TestCases": {}})["TestCases"]
        assert case not in cases, f"{machine.name}: test case {case} defined twice"
        cases[case] = {}
        for state_name, mocked in mocks.items():
            assert states.get(state_name, {}).get("Type") == "Task", f"{machine.key}: no task state {state_name}"
            entries = mocked if isinstance(mocked, list) else [mocked]
            responses = {
                str(number): mocked_response(state_name, states[state_name], e) for number, e in enumerate(entries)
            }
            # The last response answers every later entry into the state (each Map item enters it once).
            responses[f"{len(entries) - 1}-999"] = responses.pop(str(len(entries) - 1))
            name = f"{machine.name}.{case}.{state_name}"
            self.document["MockedResponses"][name] = responses
            cases[case][state_name] = name


# ------------------------------------------------------------------------------------------ history
def history(stepfunctions: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = stepfunctions.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            return events
        kwargs["nextToken"] = page["nextToken"]


def states_entered(events: list[dict[str, Any]]) -> list[str]:
    return [event["stateEnteredEventDetails"]["name"] for event in events if event["type"].endswith("StateEntered")]


def task_failures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [event["taskFailedEventDetails"] for event in events if event["type"] == "TaskFailed"]


@functools.cache
def definition_of(machine: Machine) -> dict[str, Any]:
    return machine.definition()
