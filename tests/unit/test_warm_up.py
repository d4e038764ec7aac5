"""The warm-up invocation: `make up` invokes every function with `{"warmUp": true}`.

Every handler of the template answers it outermost, at once, with no AWS call and no raise; every other
event reaches the handler; and no event a real source sends (API Gateway proxy event, Kinesis batch,
scheduled event, hook payload, Step Functions task input) can be the warm-up event.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import stack
from asl_diagram import integration
from botocore.client import BaseClient

from commonlib import warm_up
from tests.support.events import kinesis_event
from tests.support.template import template

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(
    {
        body["Properties"]["Handler"]
        for body in template()["Resources"].values()
        if body["Type"] == "AWS::Serverless::Function"
    }
)
WARM_UP_KEY = warm_up.WARM_UP_KEY
MODULE_FILES = {"payment": ROOT / "src/payment", "enrollment": ROOT / "src/enrollment"}


# ------------------------------------------------------------------------------------------ the event
def test_the_warm_up_event_is_exactly_one_key_whose_value_is_true() -> None:
    assert warm_up.warm_up_event() == {"warmUp": True}
    assert warm_up.is_warm_up(warm_up.warm_up_event())
    assert warm_up.is_warm_up(json.loads('{"warmUp": true}'))  # as the Lambda runtime decodes it


@pytest.mark.parametrize(
    "event",
    [
        {"warmUp": 1},  # == True in Python, but not JSON true
        {"warmUp": "true"},
        {"warmUp": False},
        {"warmUp": None},
        {"warmUp": True, "orderId": "1"},
        {"WarmUp": True},
        {"warmup": True},
        [{"warmUp": True}],
        '{"warmUp": true}',
        {},
        None,
        True,
    ],
)
def test_anything_else_is_not_the_warm_up_event(event: Any) -> None:
    assert not warm_up.is_warm_up(event)


def test_the_decorator_answers_the_warm_up_event_without_running_the_handler() -> None:
    calls: list[Any] = []

    @warm_up.answers_warm_up
    def handler(event: Any, context: Any) -> dict[str, Any]:
        calls.append(event)
        raise AssertionError("the handler ran")

    assert handler({"warmUp": True}, None) == {"warmUp": "ready"}
    assert handler.__name__ == "handler"
    assert calls == []


def test_the_decorator_hands_every_other_event_to_the_handler_unchanged() -> None:
    @warm_up.answers_warm_up
    def handler(event: Any, context: Any) -> Any:
        return event, context

    for event in ({"warmUp": 1}, {"warmUp": True, "x": 1}, {"Records": []}, [], "text"):
        assert handler(event, "ctx") == (event, "ctx")


def test_the_deploy_script_sends_the_event_and_expects_the_answer_of_the_layer() -> None:
    sent, expected = stack.WARM_UP_EVENT, stack.WARM_UP_ANSWER
    assert sent == warm_up.warm_up_event()
    assert expected == warm_up.WARM_UP_ANSWER


# --------------------------------------------------------------------------------- the real handlers
def test_every_handler_of_the_template_has_the_decorator_outermost() -> None:
    assert len(HANDLERS) == 16
    for handler in HANDLERS:
        module, function = handler.rsplit(".", 1)
        path = MODULE_FILES[module.split(".")[0]] / (module.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text())
        definition = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function)
        first = definition.decorator_list[0]
        assert isinstance(first, ast.Name), handler
        assert first.id == "answers_warm_up", f"{handler}: answers_warm_up must be the first (outermost) decorator"


@pytest.mark.parametrize("handler", HANDLERS)
def test_every_handler_answers_the_warm_up_event_with_no_aws_call(
    handler: str, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No table, no environment, no moto: any AWS call, log line or fault injection would fail here."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{handler} made an AWS call on the warm-up event")

    monkeypatch.setattr(BaseClient, "_make_api_call", refuse)
    module, function = handler.rsplit(".", 1)

    answer = getattr(importlib.import_module(module), function)(warm_up.warm_up_event(), lambda_context)

    assert answer == {"warmUp": "ready"}


# ------------------------------------------------------------------- what real sources send instead
def _api_gateway_samples() -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((ROOT / "events").glob("*/api-*.json"))]


def test_no_sample_event_of_the_repository_is_the_warm_up_event() -> None:
    samples = sorted((ROOT / "events").glob("*/*.json"))
    assert len(samples) > 10
    for path in samples:
        assert not warm_up.is_warm_up(json.loads(path.read_text())), path


def test_an_api_gateway_proxy_event_always_carries_its_request_fields() -> None:
    samples = _api_gateway_samples()
    assert samples
    for event in samples:
        assert {"httpMethod", "path", "headers", "requestContext"} <= event.keys()
        assert not warm_up.is_warm_up(event)
    # Whatever the client sends is inside `body`, a string: `{"warmUp": true}` posted to the API stays there.
    posted = {**samples[0], "body": json.dumps(warm_up.warm_up_event())}
    assert not warm_up.is_warm_up(posted)


def test_a_kinesis_batch_is_records() -> None:
    batch = kinesis_event(json.dumps(warm_up.warm_up_event()).encode())
    assert batch.keys() == {"Records"}
    assert not warm_up.is_warm_up(batch)
    assert not warm_up.is_warm_up(kinesis_event())


def test_a_scheduled_event_carries_its_source() -> None:
    scheduled = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-30T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweep"],
        "detail": {},
    }
    assert not warm_up.is_warm_up(scheduled)


def test_no_event_source_of_the_template_sets_an_input_that_could_be_it() -> None:
    sources = {
        f"{resource}.{name}": source
        for resource, body in template()["Resources"].items()
        for name, source in (body.get("Properties", {}).get("Events") or {}).items()
    }
    assert sources, "the template's functions have no event source: this test would check nothing"
    inputs = {
        name: json.loads(given) if isinstance(given, str) else given
        for name, source in sources.items()
        if (given := source.get("Properties", {}).get("Input")) is not None
    }
    assert [name for name, given in inputs.items() if warm_up.is_warm_up(given)] == []


def test_a_hook_payload_is_a_fulfillment_event() -> None:
    from enrollment.eventual import stream

    now = datetime(2026, 11, 30, tzinfo=UTC)
    action = {"name": "action1", "offset": 3, "dueAt": "2026-12-03T00:00:00Z", "data": {}}
    payload = json.loads(stream.hook("C-1", "corr-1", action, now)["targetInput"])

    assert {"contractId", "correlationId", "trigger", "action"} <= payload.keys()
    assert not warm_up.is_warm_up(payload)


def _lambda_tasks(states: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, state in states.items():
        if state.get("Type") == "Task" and (
            ":lambda:" in state["Resource"] or state["Resource"].startswith("${")  # an invoke, or a bare ARN
        ):
            found.append((name, state))
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                found += _lambda_tasks(state[key]["States"])
        for branch in state.get("Branches", []):
            found += _lambda_tasks(branch["States"])
    return found


ASL_FILES = sorted(path.name for path in (ROOT / "statemachine").glob("*.asl.json"))


def test_the_state_machine_definitions_are_found() -> None:
    """An empty glob would leave the parametrized test below with nothing to run (skipped, not failed)."""
    assert ASL_FILES, "no statemachine/*.asl.json"


@pytest.mark.parametrize("asl", ASL_FILES)
def test_every_step_functions_task_sends_a_payload_of_its_own_keys(asl: str) -> None:
    """Each Lambda task builds its payload from fixed keys (never the state input as it is), so a
    state machine cannot hand a function the warm-up event, whatever input an execution was given."""
    definition = json.loads((ROOT / "statemachine" / asl).read_text())
    for name, state in _lambda_tasks(definition["States"]):
        assert integration(state["Resource"]) == "lambda:invoke", f"{asl} {name}: the state input would be the event"
        payload = (state.get("Arguments") or state["Parameters"])["Payload"]  # JSONata or JSONPath
        assert isinstance(payload, dict), f"{asl} {name}: Payload.$ would pass a path of the input through"
        keys = {key.removesuffix(".$") for key in payload}
        assert WARM_UP_KEY not in keys
        assert keys - {WARM_UP_KEY}


# -------------------------------------------------------------------------- the deploy script's side
class FakeLambda:
    """Answers like the emulator: one call per function, `FunctionError` when the handler raised."""

    def __init__(self, answers: dict[str, tuple[str | None, bytes]], delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.calls: list[tuple[str, Any]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803 - boto3's names
        with self.lock:
            self.calls.append((FunctionName, json.loads(Payload)))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        error, payload = self.answers[FunctionName]
        answer: dict[str, Any] = {"StatusCode": 200, "Payload": io.BytesIO(payload)}
        if error:
            answer["FunctionError"] = error
        return answer


def test_warm_up_invokes_every_function_at_once_with_the_event() -> None:
    names = [f"fn-{index}" for index in range(6)]
    fake = FakeLambda({name: (None, b'{"warmUp": "ready"}') for name in names}, delay=0.2)

    results = stack.warm_up_all(fake, names)

    assert sorted(name for name, _ in fake.calls) == names
    assert {json.dumps(event) for _, event in fake.calls} == {'{"warmUp": true}'}
    assert fake.most_in_flight == len(names)  # in parallel, one thread per function
    assert all(result.ok for result in results)


def test_a_warm_up_the_emulator_failed_once_is_tried_again_alone() -> None:
    """ministack sometimes fails a call while it starts many workers at once, before any handler runs."""

    class FailsFirst(FakeLambda):
        def invoke(self, FunctionName: str, Payload: bytes) -> dict[str, Any]:  # noqa: N803 - boto3's names
            answer = super().invoke(FunctionName, Payload)
            if FunctionName == "flaky" and [name for name, _ in self.calls].count("flaky") == 1:
                body = b'{"errorMessage": "dictionary changed size during iteration", "errorType": "RuntimeError"}'
                return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": io.BytesIO(body)}
            return answer

    fake = FailsFirst({name: (None, b'{"warmUp": "ready"}') for name in ("flaky", "steady")})

    results = {result.function: result for result in stack.warm_up_all(fake, fake.answers)}

    assert results["flaky"].ok
    assert results["steady"].ok
    assert sorted(name for name, _ in fake.calls) == ["flaky", "flaky", "steady"]


def test_warm_up_reports_a_function_that_raised_or_answered_otherwise() -> None:
    fake = FakeLambda(
        {
            "ok": (None, b'{"warmUp": "ready"}'),
            "raised": ("Unhandled", b'{"errorType": "Runtime.HandlerError"}'),
            "not-decorated": (None, b'{"statusCode": 500}'),
        }
    )

    results = {result.function: result for result in stack.warm_up_all(fake, fake.answers)}

    assert results["ok"].ok
    assert [name for name, _ in fake.calls].count("raised") == 2, "a failed warm-up is tried once more"
    assert not results["raised"].ok
    assert "Unhandled" in results["raised"].detail
    assert not results["not-decorated"].ok
    assert "unexpected answer" in results["not-decorated"].detail
