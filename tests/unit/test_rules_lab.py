from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enrollment.immediate import rules
from tests.unit.enrollment_fixtures import seed_offer

ACTIVE = {"status": "active", "flags": []}


def decide(offer: dict[str, Any], account: dict[str, Any] = ACTIVE) -> dict[str, Any]:
    return rules.evaluate(rules.facts(offer["contractInfo"], offer["contractDraft"], account), rules.load_rules())


def test_seed_offer_is_eligible_with_version() -> None:
    decision = decide(seed_offer())
    assert decision == {"eligible": True, "reasons": [], "failedRules": [], "rulesVersion": "2026-11-01.1"}


@pytest.mark.parametrize(
    ("contract_info", "account", "failed"),
    [
        ({"product": "car-loan"}, ACTIVE, ["supported-product"]),
        ({"monthlyPayment": 10}, ACTIVE, ["minimum-payment"]),
        ({"monthlyPayment": 6000}, ACTIVE, ["maximum-payment"]),
        ({"termMonths": 61}, ACTIVE, ["maximum-term"]),
        ({"currency": "EUR"}, ACTIVE, ["usd-only"]),
        ({}, {"status": "active", "flags": ["bankruptcy"]}, ["no-bankruptcy-flag"]),
        ({}, {"status": "active", "flags": ["dispute", "bankruptcy"]}, ["no-bankruptcy-flag", "no-open-dispute"]),
    ],
)
def test_each_rule_contributes_its_reason(
    contract_info: dict[str, Any], account: dict[str, Any], failed: list[str]
) -> None:
    offer = seed_offer()
    offer["contractInfo"].update(contract_info)
    decision = decide(offer, account)
    assert decision["eligible"] is False
    assert decision["failedRules"] == failed
    reasons = {rule["id"]: rule["reason"] for rule in rules.load_rules()["rules"]}
    assert decision["reasons"] == [reasons[rule_id] for rule_id in failed]


def test_far_future_action_is_ineligible() -> None:
    offer = seed_offer()
    offer["contractDraft"]["List"].append({"name": "late", "offset": 366})
    assert decide(offer)["failedRules"] == ["latest-action-within-a-year"]


def test_missing_fact_never_makes_eligible() -> None:
    offer = seed_offer()
    del offer["contractInfo"]["monthlyPayment"]
    assert decide(offer)["eligible"] is False


def test_changing_a_rule_is_a_data_change(tmp_path: Path) -> None:
    document = json.loads(rules.DEFAULT_RULES_FILE.read_text())
    document["version"] = "test-2"
    document["rules"] = [
        {"id": "tiny", "field": "contractInfo.monthlyPayment", "operator": "<", "value": 50, "reason": "too big"}
    ]
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(document))
    decision = rules.evaluate(rules.facts(seed_offer()["contractInfo"], {}, ACTIVE), rules.load_rules(str(path)))
    assert decision == {"eligible": False, "reasons": ["too big"], "failedRules": ["tiny"], "rulesVersion": "test-2"}


def test_malformed_rules_file_is_a_deployment_error(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps({"version": "x", "rules": [{"id": "r", "field": "a", "operator": "~", "value": 1, "reason": "r"}]})
    )
    with pytest.raises(rules.RulesFileError):
        rules.load_rules(str(path))
