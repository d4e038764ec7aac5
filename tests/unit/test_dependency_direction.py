"""Dependencies run one way: the tests may import the product and the scripts; the scripts may import
the product; the product never imports the tests or the scripts, and the scripts never import the tests.

Inside the enrollment, data access is a layer of its own: only `enrollment.store` builds DynamoDB
requests (keys, expressions, transactions, queries, scans) or imports boto3's DynamoDB helpers; the
domain and the entry points call its functions with plain values.
"""

from __future__ import annotations

import ast

import pytest

from tests.support.template import ROOT

SCRIPT_MODULES = {path.stem for path in (ROOT / "scripts").glob("*.py")}
ENROLLMENT = ROOT / "src" / "enrollment" / "enrollment"
STORE = ENROLLMENT / "store"
# What a DynamoDB request is made of: as a keyword argument or as a key of a request dict.
REQUEST_PARTS = {
    "Key",
    "KeyConditionExpression",
    "ConditionExpression",
    "UpdateExpression",
    "FilterExpression",
    "ProjectionExpression",
    "ExpressionAttributeNames",
    "ExpressionAttributeValues",
    "TransactItems",
    "ExclusiveStartKey",
}
# Calls that send a request to a table (a resource's or a client's).
TABLE_CALLS = {
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "batch_get_item",
    "batch_write_item",
    "transact_get_items",
    "transact_write_items",
}


def python_files(*folders: str) -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for folder in folders for p in (ROOT / folder).rglob("*.py"))


def imported_modules(path: str) -> set[str]:
    tree = ast.parse((ROOT / path).read_text(), filename=path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def is_tests(name: str) -> bool:
    return name == "tests" or name.startswith("tests.")


def dynamodb_requests(source: str, filename: str = "<source>") -> list[str]:
    """Where `source` builds or sends a DynamoDB request, as `line: what`."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Call):
            found += [f"{node.lineno}: {kw.arg}=" for kw in node.keywords if kw.arg in REQUEST_PARTS]
            if isinstance(node.func, ast.Attribute) and node.func.attr in TABLE_CALLS:
                found.append(f"{node.lineno}: .{node.func.attr}(...)")
        elif isinstance(node, ast.Dict):
            found += [
                f"{key.lineno}: {key.value!r}"
                for key in node.keys
                if isinstance(key, ast.Constant) and key.value in REQUEST_PARTS
            ]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("boto3.dynamodb"):
            found.append(f"{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.startswith("boto3.dynamodb")]
    return found


@pytest.mark.parametrize("path", python_files("src", "scripts"))
def test_product_and_scripts_never_import_the_tests(path: str) -> None:
    assert not {name for name in imported_modules(path) if is_tests(name)}


@pytest.mark.parametrize("path", python_files("src"))
def test_the_product_never_imports_the_scripts(path: str) -> None:
    imported = imported_modules(path)
    assert not {name for name in imported if name.split(".")[0] in SCRIPT_MODULES or name.startswith("scripts")}


@pytest.mark.parametrize("path", [p for p in python_files("src/enrollment") if not (ROOT / p).is_relative_to(STORE)])
def test_only_the_store_builds_dynamodb_requests(path: str) -> None:
    assert dynamodb_requests((ROOT / path).read_text(), path) == [], (
        f"{path} builds a DynamoDB request: move it to store/"
    )


def test_the_store_check_finds_a_request_built_in_a_domain_module() -> None:
    domain_code = (
        "from boto3.dynamodb.conditions import Key\n"
        "def mark(tables, contract_id):\n"
        "    tables.offers.update_item(\n"
        '        Key={"OfferId": contract_id}, UpdateExpression="SET x = :x", ExpressionAttributeValues={":x": 1}\n'
        "    )\n"
        '    return {"Update": {"ConditionExpression": "attribute_exists(OfferId)"}, "TransactItems": []}\n'
    )

    assert sorted(dynamodb_requests(domain_code)) == sorted(
        [
            "1: from boto3.dynamodb.conditions import",
            "3: Key=",
            "3: UpdateExpression=",
            "3: ExpressionAttributeValues=",
            "3: .update_item(...)",
            "6: 'TransactItems'",
            "6: 'ConditionExpression'",
        ]
    )


def test_the_store_is_where_the_requests_are() -> None:
    """The check above is not vacuous: the store does build them."""
    assert all(dynamodb_requests(path.read_text(), str(path)) for path in STORE.glob("*.py") if path.stem != "__init__")
