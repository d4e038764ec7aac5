"""Read the IAM policies of template.yaml as data: statements, grants and the text around them."""

from __future__ import annotations

from typing import Any

from tests.support.template import ROOT, template

NO_VALUE = {"Ref": "AWS::NoValue"}
# Actions AWS offers no resource-level permissions for: a statement granting them must use "*".
XRAY_ACTIONS = frozenset(
    {"xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets"}
)
LOG_DELIVERY_ACTIONS = frozenset(
    {
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    }
)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def conditional_items(items: list[Any]) -> list[Any]:
    """The items of a list, with `!If [condition, a, b]` items replaced by both branches (NoValue dropped)."""
    found = []
    for item in items:
        if isinstance(item, dict) and set(item) == {"Fn::If"}:
            found += [branch for branch in item["Fn::If"][1:] if branch != NO_VALUE]
        else:
            found.append(item)
    return found


def document_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    return conditional_items(as_list(document["Statement"]))


def inline_documents(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """The policy documents of a role's `Policies` (IAM form, or SAM's bare statements)."""
    documents = []
    for policy in properties.get("Policies", []):
        if isinstance(policy, dict) and "PolicyDocument" in policy:
            documents.append(policy["PolicyDocument"])
        elif isinstance(policy, dict) and "Statement" in policy:
            documents.append(policy)
    return documents


def logical_id(reference: Any) -> str | None:
    """`X` for `!Ref X`, `!GetAtt X.Arn` or `!GetAtt [X, Arn]`; None for anything else."""
    if isinstance(reference, dict) and set(reference) == {"Ref"}:
        return reference["Ref"]
    if isinstance(reference, dict) and set(reference) == {"Fn::GetAtt"}:
        target = reference["Fn::GetAtt"]
        return target.split(".", 1)[0] if isinstance(target, str) else target[0]
    return None


def attached_policies(role_id: str) -> list[str]:
    """The logical ids of this template's managed policies a role attaches (`ManagedPolicyArns`)."""
    arns = conditional_items(template()["Resources"][role_id]["Properties"].get("ManagedPolicyArns", []))
    return [name for name in map(logical_id, arns) if name is not None]


def role_statements(role_id: str) -> list[dict[str, Any]]:
    """Every statement a role holds: inline, and from the managed policies of this template it attaches."""
    resources = template()["Resources"]
    statements = []
    for document in inline_documents(resources[role_id]["Properties"]):
        statements += document_statements(document)
    for policy_id in attached_policies(role_id):
        statements += document_statements(resources[policy_id]["Properties"]["PolicyDocument"])
    return statements


def all_statements() -> list[dict[str, Any]]:
    """Every IAM statement written in the template: roles' inline policies, managed policies, SAM `Policies`."""
    found = []
    for body in template()["Resources"].values():
        properties = body.get("Properties", {})
        for document in inline_documents(properties):
            found += document_statements(document)
        if body["Type"] == "AWS::IAM::ManagedPolicy":
            found += document_statements(properties["PolicyDocument"])
    return found


def resource_text(resource_id: str) -> list[str]:
    """The lines of template.yaml that declare one resource (its key line to the next resource)."""
    lines = (ROOT / "template.yaml").read_text().splitlines()
    start = lines.index(f"  {resource_id}:")
    end = next(
        (n for n in range(start + 1, len(lines)) if lines[n][:3].strip() and not lines[n].startswith("    ")),
        len(lines),
    )
    return lines[start:end]


def uncommented_wildcards(lines: list[str]) -> list[str]:
    """The `Resource: "*"` lines whose statement is not preceded by a comment line giving the reason."""
    missing = []
    for number, line in enumerate(lines):
        if line.strip() != 'Resource: "*"':
            continue
        start = next(n for n in range(number, -1, -1) if lines[n].strip().startswith("- Effect"))
        if not lines[start - 1].strip().startswith("#"):
            missing.append(line)
    return missing
