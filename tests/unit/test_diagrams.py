from __future__ import annotations

import asl_diagram

from tests.support.template import ROOT


def test_architecture_page_embeds_the_diagram_of_every_state_machine() -> None:
    document = asl_diagram.DOCUMENT.read_text()
    for path in sorted((ROOT / "statemachine").glob("*.asl.json")):
        assert f"<!-- asl-diagram: statemachine/{path.name} -->" in document, path.name


def test_architecture_page_diagrams_match_the_asl() -> None:
    document = asl_diagram.DOCUMENT.read_text()
    assert asl_diagram.updated_document(document) == document, "docs diagrams are stale: run `make diagrams`"


def test_every_state_appears_in_its_diagram() -> None:
    import json

    for path in sorted((ROOT / "statemachine").glob("*.asl.json")):
        diagram = asl_diagram.render(path)
        definition = json.loads(path.read_text())
        names = list(definition["States"])
        for state in definition["States"].values():
            if state["Type"] == "Map":
                names += list(state["ItemProcessor"]["States"])
        for name in names:
            assert name in diagram, (path.name, name)
