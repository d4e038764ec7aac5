"""Dependencies run one way: the tests may import the product and the scripts; the product and the
scripts never import the tests."""

from __future__ import annotations

import ast

import pytest

from tests.support.template import ROOT


def imported_modules(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(), filename=path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize(
    "path",
    sorted(str(p.relative_to(ROOT)) for folder in ("src", "scripts") for p in (ROOT / folder).rglob("*.py")),
)
def test_product_and_scripts_never_import_the_tests(path: str) -> None:
    assert not {name for name in imported_modules(path) if name == "tests" or name.startswith("tests.")}
