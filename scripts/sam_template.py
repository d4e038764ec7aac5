"""Read template.yaml as data (CloudFormation short tags kept as plain values): for the scripts and the tests.

`template()` is the template as CloudFormation hands it to SAM: every `AWS::Include` of a local file (the
API's definition) inserted, as `sam deploy` uploads it and CloudFormation inserts it first, then every
`Fn::ForEach` expanded into the resources it declares (`AWS::LanguageExtensions`), so
`template()["Resources"]` lists every concrete resource under its logical id. `python scripts/sam_template.py
--expand OUT` writes that expansion (the file `make checkov` scans: checkov reads neither the include nor the
loops, and would not see the API's definition or the looped resources)."""

from __future__ import annotations

import argparse
import copy
import functools
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
LANGUAGE_EXTENSIONS = "AWS::LanguageExtensions"
FOR_EACH = "Fn::ForEach::"
# The transform's placeholders: ${Id} (the item) and &{Id} (its alphanumeric characters); ${!x} is literal.
_PLACEHOLDER = re.compile(r"([$&])\{([^!}][^}]*)\}")


class _TemplateLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {f"Fn::{suffix}" if suffix != "Ref" else "Ref": value}


_TemplateLoader.add_multi_constructor("!", _tag)


class _ExpandedDumper(yaml.SafeDumper):
    # Written out in full: CloudFormation refuses YAML aliases, and a reader should see each resource whole.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def _substitute(text: str, bindings: dict[str, str], forms: str = "$&") -> str:
    def replace(match: re.Match[str]) -> str:
        form, name = match.group(1), match.group(2)
        if form not in forms or name not in bindings:
            return match.group(0)
        return re.sub(r"[^0-9A-Za-z]", "", bindings[name]) if form == "&" else bindings[name]

    return _PLACEHOLDER.sub(replace, text)


def _literal_sub(node: Any) -> str | None:
    """The constant string of an `Fn::Sub` whose placeholders a loop filled in, else None."""
    if isinstance(node, dict) and set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], str):
        return None if "${" in node["Fn::Sub"] else node["Fn::Sub"]
    return None


def _sub_variable_text(value: Any) -> str | None:
    """How a variable of `Fn::Sub`'s map form reads inside its string: a literal, `${X}` for `Ref X`,
    `${X.Attr}` for `GetAtt X.Attr`; None for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"} and isinstance(value["Ref"], str):
        return "${" + value["Ref"] + "}"
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        return "${" + (target if isinstance(target, str) else ".".join(target)) + "}"
    return None


def _expand_value(node: Any, bindings: dict[str, str], mappings: dict[str, Any]) -> Any:
    """A value of a loop's fragment with the loop's identifiers put in, as the transform does: in an
    `Fn::Sub` string and through a `Ref` to the identifier. What the transform then resolves to a name
    (`Ref`/`Fn::GetAtt` of a filled-in `Fn::Sub`, `Fn::FindInMap` on literal keys) is written as the plain
    form, and `Fn::Sub`'s map form as the one string it stands for, so an expanded resource reads like a
    hand-written one."""
    if isinstance(node, list):
        return [_expand_value(item, bindings, mappings) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Ref" and isinstance(argument, str) and argument in bindings:
            return bindings[argument]
        if function == "Ref":
            argument = _expand_value(argument, bindings, mappings)
            return {"Ref": _literal_sub(argument) or argument}
        if function == "Fn::GetAtt":
            argument = _expand_value(argument, bindings, mappings)
            if isinstance(argument, list):
                parts = [part if isinstance(part, str) else _literal_sub(part) for part in argument]
                if all(parts):
                    return {"Fn::GetAtt": ".".join(parts)}  # type: ignore[arg-type]
            return {"Fn::GetAtt": argument}
        if function == "Fn::FindInMap":
            argument = _expand_value(argument, bindings, mappings)
            if all(isinstance(key, str) for key in argument):
                return mappings[argument[0]][argument[1]][argument[2]]
            return {"Fn::FindInMap": argument}
        if function == "Fn::Sub":
            if isinstance(argument, str):
                return {"Fn::Sub": _substitute(argument, bindings, "$")}
            text, variables = argument
            text = _substitute(text, bindings, "$")
            variables = {name: _expand_value(value, bindings, mappings) for name, value in variables.items()}
            inlined = {name: _sub_variable_text(value) for name, value in variables.items()}
            if all(value is not None for value in inlined.values()):
                for name, value in inlined.items():
                    text = text.replace("${" + name + "}", value)  # type: ignore[arg-type]
                return {"Fn::Sub": text}
            return {"Fn::Sub": [text, variables]}
    return {key: _expand_value(value, bindings, mappings) for key, value in node.items()}


def _expand_section(section: dict[str, Any], bindings: dict[str, str], mappings: dict[str, Any]) -> dict[str, Any]:
    expanded: dict[str, Any] = {}
    for key, value in section.items():
        if key.startswith(FOR_EACH):
            identifier, collection, fragment = value
            for item in collection:
                scoped = {**bindings, identifier: item}
                for produced_key, produced in _expand_section(fragment, scoped, mappings).items():
                    if produced_key in expanded:
                        raise ValueError(f"{key} declares {produced_key} twice")
                    expanded[produced_key] = produced
        else:
            new_key = _substitute(key, bindings)
            if new_key in expanded:
                raise ValueError(f"{new_key} is declared twice")
            expanded[new_key] = _expand_value(value, bindings, mappings) if bindings else value
    return expanded


def expand(document: dict[str, Any]) -> dict[str, Any]:
    """The template after `AWS::LanguageExtensions` (its `Fn::ForEach` loops; the template uses no other
    function of the transform), with the transform taken off the list."""
    result = copy.deepcopy(document)
    transforms = result.get("Transform", [])
    transforms = transforms if isinstance(transforms, list) else [transforms]
    if LANGUAGE_EXTENSIONS not in transforms:
        return result
    rest = [name for name in transforms if name != LANGUAGE_EXTENSIONS]
    result["Transform"] = rest[0] if len(rest) == 1 else rest
    mappings = result.get("Mappings", {})
    for section in ("Conditions", "Resources", "Outputs"):
        if section in result:
            result[section] = _expand_section(result[section], {}, mappings)
    return result


def load(path: Path) -> dict[str, Any]:
    """The template at `path` as written (loops unexpanded, includes not inserted)."""
    return yaml.load(path.read_text(), Loader=_TemplateLoader)  # noqa: S506 - SafeLoader subclass


def include(node: Any, directory: Path) -> Any:
    """`node` with every `Fn::Transform` of `AWS::Include` replaced by the file its Location names (relative
    to `directory`). A snippet is plain YAML: CloudFormation refuses short forms there, so no tags are read."""
    if isinstance(node, list):
        return [include(value, directory) for value in node]
    if not isinstance(node, dict):
        return node
    transform = node.get("Fn::Transform")
    if isinstance(transform, dict) and transform.get("Name") == "AWS::Include":
        location = transform["Parameters"]["Location"]
        return yaml.safe_load((directory / location).read_text())
    return {key: include(value, directory) for key, value in node.items()}


@functools.cache
def template() -> dict[str, Any]:
    return expand(include(load(ROOT / "template.yaml"), ROOT))


def resource(logical_id: str) -> dict[str, Any]:
    return template()["Resources"][logical_id]


def table_definition(logical_id: str) -> dict[str, Any]:
    """The key schema of a table resource, in the shape `create_table` takes."""
    properties = resource(logical_id)["Properties"]
    definition = {
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if "GlobalSecondaryIndexes" in properties:
        definition["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
    return definition


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--expand", metavar="OUT", type=Path, required=True, help="write the expanded template here")
    arguments = parser.parse_args()
    arguments.expand.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.dump(template(), Dumper=_ExpandedDumper, sort_keys=False, width=120)
    header = "# Generated from template.yaml by scripts/sam_template.py --expand; do not edit.\n"
    arguments.expand.write_text(header + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
