"""The rules lab: eligibility rules are data (a versioned JSON file shipped with the function).

Each rule reads one field of the facts (`contractInfo.*`, `contractDraft.*`, `account.*`), compares it
with its operator and value, and contributes its reason when it does not hold.

Every rule also has a public `code` and `message`: what a client is told. A rule marked `sensitive`
(it reads what the client must not learn, such as an account's bankruptcy or dispute flag) answers the
one neutral reason instead; its full reason goes to the audit trail only.
"""

from __future__ import annotations

import functools
import json
import operator
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enrollment.steps import Eligibility

DEFAULT_RULES_FILE = Path(__file__).resolve().parent / "rules" / "eligibility-rules.json"

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda field, allowed: field in allowed,
    "not_in": lambda field, denied: field not in denied,
    "contains": lambda field, item: item in (field or []),
    "not_contains": lambda field, item: item not in (field or []),
}


# What a sensitive rule (or one without a public code) answers.
NEUTRAL_REASON = {"code": "NotEligibleThroughThisChannel", "message": "not eligible through this channel"}


class RulesFileError(ValueError):
    """The rules file is malformed: a deployment error, never an eligibility answer."""


@functools.cache
def load_rules(path: str | None = None) -> dict[str, Any]:
    rules_path = Path(path or os.environ.get("RULES_FILE") or DEFAULT_RULES_FILE)
    document = json.loads(rules_path.read_text())
    if not isinstance(document.get("version"), str) or not isinstance(document.get("rules"), list):
        raise RulesFileError(f"{rules_path}: needs a string 'version' and a list 'rules'")
    for rule in document["rules"]:
        missing = {"id", "field", "operator", "value", "reason"} - set(rule)
        if missing or rule["operator"] not in _OPERATORS:
            raise RulesFileError(f"{rules_path}: rule {rule.get('id')!r} is malformed (missing {sorted(missing)})")
    return document


def facts(contract_info: dict[str, Any], contract_draft: dict[str, Any], account: dict[str, Any]) -> dict[str, Any]:
    actions = contract_draft.get("List", [])
    draft = {**contract_draft, "maxOffset": max((a.get("offset", 0) for a in actions), default=0)}
    return {"contractInfo": contract_info, "contractDraft": draft, "account": account}


def evaluate(known_facts: dict[str, Any], rules: dict[str, Any]) -> Eligibility:
    """`{"eligible": bool, "reasons": [...], "failedRules": [...], "rulesVersion": str}`."""
    failed = [rule for rule in rules["rules"] if not _holds(rule, known_facts)]
    return {
        "eligible": not failed,
        "reasons": [rule["reason"] for rule in failed],
        "failedRules": [rule["id"] for rule in failed],
        "rulesVersion": rules["version"],
    }


def _holds(rule: dict[str, Any], known_facts: dict[str, Any]) -> bool:
    value: Any = known_facts
    for part in rule["field"].split("."):
        value = value.get(part) if isinstance(value, dict) else None
    try:
        return bool(_OPERATORS[rule["operator"]](value, rule["value"]))
    except TypeError:
        return False  # a missing or mistyped fact never makes an offer eligible


def public_reason(rule: dict[str, Any] | None) -> dict[str, str]:
    """The reason a client may see for a failed rule: its code and message, or the neutral one for a
    sensitive rule, an unknown rule or one without a public code."""
    if not rule or rule.get("sensitive", False) is not False or not rule.get("code") or not rule.get("message"):
        return dict(NEUTRAL_REASON)
    return {"code": str(rule["code"]), "message": str(rule["message"])}


def public_reasons(rule_ids: list[str], rules: dict[str, Any]) -> list[dict[str, str]]:
    """The public reasons of the failed rules `rule_ids`, each once, in order."""
    by_id = {rule["id"]: rule for rule in rules["rules"]}
    return _unique([public_reason(by_id.get(rule_id)) for rule_id in rule_ids])


def public_reasons_for(reasons: list[str], rules: dict[str, Any]) -> list[dict[str, str]]:
    """The public reasons of the full `reasons` the rules lab gave (each rule's `reason` text)."""
    by_reason = {rule["reason"]: rule for rule in rules["rules"]}
    return _unique([public_reason(by_reason.get(reason)) for reason in reasons])


def _unique(reasons: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each reason once, in order; the neutral one only when no public reason is given. Beside a public
    reason it would tell whoever chooses the offer (a product not offered, say) whether the account
    carries a sensitive flag, for any account id, without enrolling anything."""
    seen: list[dict[str, str]] = []
    for reason in reasons:
        if reason not in seen:
            seen.append(reason)
    public = [reason for reason in seen if reason != NEUTRAL_REASON]
    return public or seen
