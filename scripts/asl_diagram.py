"""Render each state machine's ASL as a Mermaid flowchart, and keep docs/architecture.md's copies current.

    python scripts/asl_diagram.py            # rewrite the diagrams between the markers of docs/architecture.md
    python scripts/asl_diagram.py --check    # exit 1 when docs/architecture.md differs from the ASL

A block `<!-- asl-diagram: statemachine/X.asl.json -->` ... `<!-- /asl-diagram -->` holds the
diagram of that file. Tasks are boxes, Choices diamonds, Pass states rounded, Fail/Succeed circles;
a dotted edge is a Catch; a Map is a subgraph of its item states. Both query languages are read: a
JSONPath Choice rule (`Variable` + operator) or a JSONata one (`Condition`, shown without its `{% %}`),
a Task's `Parameters` or `Arguments`, a Fail's `Error`/`ErrorPath` or JSONata `Error` expression.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "docs" / "architecture.md"
BLOCK = re.compile(r"(<!-- asl-diagram: (?P<path>[^ ]+) -->\n)(?P<body>.*?)(<!-- /asl-diagram -->)", re.S)
OPERATORS = ("StringEquals", "BooleanEquals", "NumericEquals", "IsPresent", "IsString", "StringMatches")
# A service integration's Resource, whatever partition it names: the ASL writes `arn:${Partition}:states:::…`
# (a DefinitionSubstitution of AWS::Partition), a deployed definition `arn:aws:states:::…`.
INTEGRATION = re.compile(r"^arn:(?:\$\{Partition\}|aws[a-z-]*):states:::(?P<integration>.+)$")


def integration(resource: str) -> str | None:
    """`lambda:invoke` for `arn:${Partition}:states:::lambda:invoke` (or any partition's); None for another ARN."""
    match = INTEGRATION.match(resource)
    return match["integration"] if match else None


def _label(text: str) -> str:
    return text.replace('"', "'")


def _resource(state: dict[str, Any]) -> str:
    resource = state.get("Resource", "")
    if integration(resource) == "lambda:invoke":
        arguments = state.get("Arguments") or state.get("Parameters") or {}  # JSONata or JSONPath
        target = arguments.get("FunctionName", "")
        return "lambda: " + re.sub(r"^\$\{(\w+?)(FunctionArn)?\}$", r"\1", target)
    return integration(resource) or resource


def _node(name: str, state: dict[str, Any], prefix: str) -> str:
    node_id = f"{prefix}{name}"
    kind = state["Type"]
    if kind == "Task":
        return f'    {node_id}["{name}<br/><small>{_label(_resource(state))}</small>"]'
    if kind == "Choice":
        return f"    {node_id}{{{name}}}"
    if kind in ("Fail", "Succeed"):
        error = _expression(state.get("Error") or state.get("ErrorPath") or kind)
        return f'    {node_id}(("{name}<br/><small>{_label(error)}</small>"))'
    return f"    {node_id}([{name}])"


def _expression(value: str) -> str:
    """A JSONata field (`{% $states.input.outcome = 'accepted' %}`) as its expression; other text as it is."""
    match = re.fullmatch(r"\{%\s*(.*?)\s*%\}", value, re.S)
    return match.group(1) if match else value


def _condition(rule: dict[str, Any]) -> str:
    if "Condition" in rule:  # JSONata: one boolean expression
        return _expression(rule["Condition"])
    if "And" in rule or "Or" in rule:
        joiner = " and " if "And" in rule else " or "
        return joiner.join(_condition(part) for part in rule.get("And") or rule.get("Or"))
    operator = next((op for op in OPERATORS if op in rule), next(k for k in rule if k not in ("Variable", "Next")))
    return f"{rule.get('Variable', '')} {operator} {json.dumps(rule[operator])}"


def _edges(name: str, state: dict[str, Any], prefix: str) -> list[str]:
    source, lines = f"{prefix}{name}", []
    if "Next" in state:
        lines.append(f"    {source} --> {prefix}{state['Next']}")
    for rule in state.get("Choices", []):
        lines.append(f'    {source} -- "{_label(_condition(rule))}" --> {prefix}{rule["Next"]}')
    if "Default" in state:
        lines.append(f"    {source} -- default --> {prefix}{state['Default']}")
    for catcher in state.get("Catch", []):
        lines.append(f'    {source} -. "{_label(", ".join(catcher["ErrorEquals"]))}" .-> {prefix}{catcher["Next"]}')
    return lines


def _states(states: dict[str, Any], start: str, prefix: str) -> list[str]:
    lines = [f"    {prefix}start(( )) --> {prefix}{start}"] if not prefix else []
    for name, state in states.items():
        if state["Type"] == "Map":
            inner = state.get("ItemProcessor") or state["Iterator"]
            lines.append(
                f'    subgraph {prefix}{name}["{name} (Map, MaxConcurrency {state.get("MaxConcurrency", 0)})"]'
            )
            lines.append("    direction TB")
            lines += _states(inner["States"], inner["StartAt"], f"{prefix}{name}_")
            lines.append("    end")
        else:
            lines.append(_node(name, state, prefix))
        lines += _edges(name, state, prefix)
    return lines


def render(asl_path: Path) -> str:
    definition = json.loads(asl_path.read_text())
    body = "\n".join(["flowchart TD", *_states(definition["States"], definition["StartAt"], "")])
    return f"```mermaid\n{body}\n```\n"


def updated_document(text: str) -> str:
    return BLOCK.sub(lambda m: f"{m.group(1)}{render(ROOT / m['path'])}{m.group(4)}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    current = DOCUMENT.read_text()
    wanted = updated_document(current)
    if args.check:
        if current != wanted:
            print("docs/architecture.md diagrams differ from the ASL: run `make diagrams`", file=sys.stderr)
            sys.exit(1)
        return
    DOCUMENT.write_text(wanted)
    print(f"{len(BLOCK.findall(current))} diagrams written")


if __name__ == "__main__":
    main()
