"""The async workflow's MarkActionScheduled, as its ASL writes it, applied by moto: which existing action
item a run may replace. Enrollments of one contract are ordered by their enrollmentDate, and a run never
replaces an item of a later enrollment than its own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.support.state_machines import state_at

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "enrollment-async.asl.json"
EARLIER, CURRENT, LATER = "2026-01-31T12:00:00.000Z", "2026-01-31T12:05:00.000Z", "2026-01-31T12:10:00.000Z"


def due(enrollment: str) -> str:
    return enrollment.replace("2026-01-31", "2026-02-10")  # ten days after, whatever the enrollment


def mark_action_scheduled() -> dict[str, Any]:
    definition = json.loads(ASL.read_text())
    return state_at(definition, "ScheduleHooks/MarkActionScheduled")["Parameters"]


def resolve(value: Any, document: dict[str, Any]) -> Any:
    """The state's Parameters with their `.$` paths taken from `document` (the forms this state uses)."""
    if isinstance(value, dict):
        resolved = {}
        for key, item in value.items():
            if key.endswith(".$"):
                resolved[key[:-2]] = _path(item, document)
            else:
                resolved[key] = resolve(item, document)
        return resolved
    return value


def _path(expression: str, document: dict[str, Any]) -> str:
    formatted = re.fullmatch(r"States\.Format\('\{\}', (\$\.[\w.]+)\)", expression)
    if formatted:
        return str(_path(formatted.group(1), document))
    node: Any = document["$"] if expression.startswith("$$.") else document  # the context object
    for part in expression.lstrip("$").strip(".").split("."):
        node = node[part]
    return node


def run_state(enrollment: str) -> None:
    """MarkActionScheduled for action1 of the run of the enrollment of `enrollment`."""
    document = {
        "contractId": "C-1001",
        "enrollmentDate": enrollment,
        "correlationId": "corr",
        "hook": {"actionName": "action1", "offset": 10, "dueAt": due(enrollment), "scheduleName": "C-1001.x"},
        "$": {"State": {"EnteredTime": "2026-01-31T12:20:00.000Z"}},
    }
    parameters = resolve(mark_action_scheduled(), document)
    parameters["TableName"] = "EnrollmentActions"
    boto3.client("dynamodb", region_name="us-east-1").update_item(**parameters)


@pytest.fixture
def actions(enrollment_tables: Any) -> Any:
    return enrollment_tables.actions


def put(actions: Any, **item: Any) -> None:
    actions.put_item(Item={"contractId": "C-1001", "actionName": "action1", "offset": 10, **item})


def stored(actions: Any) -> dict[str, Any]:
    return actions.get_item(Key={"contractId": "C-1001", "actionName": "action1"})["Item"]


def test_the_state_resolves_every_path_it_uses() -> None:
    parameters = json.dumps(mark_action_scheduled())
    assert set(re.findall(r'"([\w$.]+\.\$)"', parameters)) <= {"S.$", "N.$"}


@pytest.mark.parametrize(
    ("existing", "why"),
    [
        (None, "no item yet"),
        ({"state": "scheduled", "enrollmentDate": EARLIER, "dueAt": due(EARLIER)}, "an earlier enrollment's"),
        ({"state": "fulfilled", "enrollmentDate": EARLIER, "dueAt": due(EARLIER)}, "an earlier enrollment's, done"),
        ({"state": "cancelled", "dueAt": due(EARLIER)}, "the revert's cancelled item of an earlier enrollment"),
        ({"state": "failed", "enrollmentDate": CURRENT, "dueAt": due(CURRENT)}, "this one's, never attempted"),
    ],
)
def test_a_run_schedules_its_action_over(actions: Any, existing: dict[str, Any] | None, why: str) -> None:
    if existing:
        put(actions, **existing)

    run_state(CURRENT)

    item = stored(actions)
    assert (item["state"], item["enrollmentDate"], item["dueAt"]) == ("scheduled", CURRENT, due(CURRENT)), why


@pytest.mark.parametrize(
    ("existing", "why"),
    [
        ({"state": "scheduled", "enrollmentDate": CURRENT, "dueAt": due(CURRENT)}, "already scheduled"),
        ({"state": "cancelled", "enrollmentDate": CURRENT, "dueAt": due(CURRENT)}, "cancelled"),
        ({"state": "cancelled", "dueAt": due(CURRENT)}, "cancelled by the revert"),
        ({"state": "failed", "enrollmentDate": CURRENT, "dueAt": due(CURRENT), "attempts": 3}, "failed, attempted"),
        ({"state": "scheduled", "enrollmentDate": LATER, "dueAt": due(LATER)}, "a later enrollment's"),
        ({"state": "failed", "enrollmentDate": LATER, "dueAt": due(LATER)}, "a later one's, never attempted"),
        ({"state": "running", "enrollmentDate": LATER, "dueAt": due(LATER)}, "a later one's, running"),
    ],
)
def test_a_run_leaves_alone(actions: Any, existing: dict[str, Any], why: str) -> None:
    put(actions, **existing)

    with pytest.raises(ClientError, match="ConditionalCheckFailed"):
        run_state(CURRENT)

    assert stored(actions) == {"contractId": "C-1001", "actionName": "action1", "offset": 10, **existing}, why
