"""scripts/cost_model.py: DynamoDB's item-size rules and what the template's settings bill."""

from __future__ import annotations

from decimal import Decimal

import cost_model


def test_item_size_follows_dynamodb_rules() -> None:
    assert cost_model.attribute_bytes("abc") == 3
    assert cost_model.attribute_bytes("é") == 2  # UTF-8 bytes, not characters
    assert cost_model.attribute_bytes(Decimal("125.00")) == 3  # significant digits 125: ceil(3 / 2) + 1
    assert cost_model.attribute_bytes(True) == 1
    assert cost_model.attribute_bytes({"a": "bc"}) == 3 + 1 + 2 + 1
    assert cost_model.attribute_bytes(["x", 1]) == 3 + (1 + 1) + (2 + 1)
    assert cost_model.item_bytes({"id": "1234"}) == 2 + 4
    assert cost_model.write_units({"id": "x" * 1018}) == 1  # 2 + 1018 = 1020 bytes
    assert cost_model.write_units({"id": "x" * 1030}) == 2


def test_every_service_an_enrollment_touches_is_billed() -> None:
    services = set(cost_model.enrollment_model({}).by_service())

    assert services == {
        "API Gateway", "Step Functions", "Lambda", "DynamoDB", "Kinesis", "Scheduler", "CloudWatch Logs", "X-Ray"
    }  # fmt: skip


def test_at_the_template_default_log_level_only_metric_lines_are_billed() -> None:
    logs = [line for line in cost_model.enrollment_model({}).lines if line.service == "CloudWatch Logs"]

    assert len(logs) == 1
    assert "LogLevel WARNING (system logs WARN)" in logs[0].what
    assert f"{len(cost_model.METRIC_FUNCTIONS) * cost_model.EMF_LOG_BYTES} B" in logs[0].what


def test_the_commit_transaction_bills_the_same_day_actions_only() -> None:
    """Eventual actions' items are created when their hooks are scheduled, outside the transaction."""
    [commit] = [line for line in cost_model.enrollment_model({}).lines if "commit transaction" in line.what]

    assert "1 same-day action + 1 audit" in commit.what
    # 2 x (offer + the UCP's account check and contract item + 1 action + the run's audit item), 1 unit each
    assert "10 WRU" in commit.what


def test_the_cost_page_shows_the_levers_as_the_model_prices_them() -> None:
    document = (cost_model.ROOT / cost_model.LEVERS_DOCUMENT).read_text()
    block = document.split(cost_model.LEVERS_START, 1)[1].split(cost_model.LEVERS_END, 1)[0]
    durations = cost_model.measured_durations(cost_model.ROOT / "bench/results/latest.json")

    assert block == cost_model.levers_report(durations), "the levers are stale: run `make cost-readme`"


def test_the_cost_page_total_is_the_models() -> None:
    document = (cost_model.ROOT / cost_model.LEVERS_DOCUMENT).read_text()
    durations = cost_model.measured_durations(cost_model.ROOT / "bench/results/latest.json")

    assert f"| **Total** | **{cost_model.enrollment_model(durations).total:,.2f}** |" in document


def test_every_lever_and_dropped_requirement_lowers_the_cost() -> None:
    current = cost_model.enrollment_model({}).total
    for _, design, _ in cost_model.LEVERS:
        assert cost_model.enrollment_model({}, design).total < current
    every_lever = cost_model.enrollment_model({}, cost_model.ALL_LEVERS).total
    totals = [cost_model.enrollment_model({}, design).total for _, design in cost_model.REQUIREMENT_DROPS]
    assert every_lever > totals[0] > totals[1]
