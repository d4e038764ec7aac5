from __future__ import annotations

import json
from pathlib import Path

import asl_diagram

from tests.support.template import ROOT


def test_architecture_page_embeds_the_diagram_of_every_state_machine() -> None:
    document = asl_diagram.DOCUMENT.read_text()
    paths = sorted((ROOT / "statemachine").glob("*.asl.json"))
    assert paths, "no statemachine/*.asl.json"
    for path in paths:
        assert f"<!-- asl-diagram: statemachine/{path.name} -->" in document, path.name


def test_architecture_page_diagrams_match_the_asl() -> None:
    document = asl_diagram.DOCUMENT.read_text()
    assert asl_diagram.updated_document(document) == document, "docs diagrams are stale: run `make diagrams`"


def test_every_state_appears_in_its_diagram() -> None:
    paths = sorted((ROOT / "statemachine").glob("*.asl.json"))
    assert paths, "no statemachine/*.asl.json"
    for path in paths:
        diagram = asl_diagram.render(path)
        definition = json.loads(path.read_text())
        names = list(definition["States"])
        for state in definition["States"].values():
            if state["Type"] == "Map":
                names += list(state["ItemProcessor"]["States"])
        for name in names:
            assert name in diagram, (path.name, name)


def test_a_jsonata_definition_is_drawn_from_its_conditions_arguments_and_error_expressions(tmp_path: Path) -> None:
    definition = {
        "QueryLanguage": "JSONata",
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": "arn:${Partition}:states:::lambda:invoke",
                "Arguments": {"FunctionName": "${AskFunctionArn}", "Payload": {"offer": "{% $offer %}"}},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Rejected"}],
                "Next": "Accepted?",
            },
            "Accepted?": {
                "Type": "Choice",
                "Choices": [{"Condition": "{% $states.input.outcome = 'accepted' %}", "Next": "Store"}],
                "Default": "Rejected",
            },
            "Store": {"Type": "Task", "Resource": "arn:aws-us-gov:states:::dynamodb:putItem", "End": True},
            "Rejected": {"Type": "Fail", "Error": "{% $states.input.rejection.error %}"},
        },
    }
    path = tmp_path / "x.asl.json"
    path.write_text(json.dumps(definition))
    diagram = asl_diagram.render(path)
    assert "lambda: Ask</small>" in diagram
    assert "Accepted? -- \"$states.input.outcome = 'accepted'\" --> Store" in diagram
    assert "<small>dynamodb:putItem</small>" in diagram
    assert "<small>$states.input.rejection.error</small>" in diagram
    assert "{%" not in diagram
