"""Local fault injection: a function armed with N faults fails exactly its next N invocations."""

from __future__ import annotations

import tomllib
from typing import Any

import boto3
import pytest

from commonlib import aws as aws_clients
from commonlib import faults
from tests.support.template import ROOT, resource, template
from tests.unit.conftest import FakeLambdaContext, create_table


@pytest.fixture
def fault_table(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    aws_clients.client.cache_clear()
    monkeypatch.setenv(faults.FAULT_TABLE_VARIABLE, "FaultInjection")
    create_table("FaultInjectionTable", "FaultInjection")
    return "FaultInjection"


def handler_counting_calls() -> tuple[Any, list[Any]]:
    calls: list[Any] = []

    @faults.injectable
    def handler(event: Any, context: Any) -> dict[str, Any]:
        calls.append(event)
        return {"ok": True}

    return handler, calls


def test_an_armed_function_fails_its_next_n_invocations_then_runs(fault_table: str) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    handler, calls = handler_counting_calls()
    faults.arm(dynamodb, fault_table, "AcceptOffer", 2)
    context = FakeLambdaContext(function_name="AcceptOffer")

    for attempt in (1, 2):
        with pytest.raises(faults.InjectedFaultError, match=f"injected fault {attempt} in AcceptOffer"):
            handler({"n": attempt}, context)
    assert handler({"n": 3}, context) == {"ok": True}

    assert calls == [{"n": 3}], "the handler never runs while a fault is armed"
    assert faults.injected_count(dynamodb, fault_table, "AcceptOffer") == 2


def test_faults_are_per_function(fault_table: str) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    handler, _ = handler_counting_calls()
    faults.arm(dynamodb, fault_table, "RulesLab", 1)

    assert handler({}, FakeLambdaContext(function_name="VerifyCustomer")) == {"ok": True}
    assert faults.injected_count(dynamodb, fault_table, "VerifyCustomer") == 0
    with pytest.raises(faults.InjectedFaultError):
        handler({}, FakeLambdaContext(function_name="RulesLab"))


def handler_writing_twice(writes: list[str]) -> Any:
    @faults.injectable
    def handler(event: Any, context: Any) -> dict[str, Any]:
        writes.append("claim")
        faults.checkpoint("after-claim")
        writes.append("effect")
        return {"ok": True}

    return handler


def test_an_after_fault_fails_the_invocation_once_every_write_is_done(fault_table: str) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    writes: list[str] = []
    handler = handler_writing_twice(writes)
    faults.arm(dynamodb, fault_table, "FulfillAction", 1, at=faults.AFTER)
    context = FakeLambdaContext(function_name="FulfillAction")

    with pytest.raises(faults.InjectedFaultError, match=r"FulfillAction \(after\)"):
        handler({}, context)
    assert writes == ["claim", "effect"], "the crash comes after the handler's writes"
    assert handler({}, context) == {"ok": True}
    assert faults.injected_count(dynamodb, fault_table, "FulfillAction", at=faults.AFTER) == 1
    assert faults.injected_count(dynamodb, fault_table, "FulfillAction") == 0


def test_a_checkpoint_fault_fails_between_two_writes(fault_table: str) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    writes: list[str] = []
    handler = handler_writing_twice(writes)
    faults.arm(dynamodb, fault_table, "FulfillAction", 1, at="after-claim")
    context = FakeLambdaContext(function_name="FulfillAction")

    with pytest.raises(faults.InjectedFaultError, match="after-claim"):
        handler({}, context)
    assert writes == ["claim"]
    handler({}, context)
    assert writes == ["claim", "claim", "effect"]
    assert faults.injected_count(dynamodb, fault_table, "FulfillAction", at="after-claim") == 1


def test_a_checkpoint_outside_an_injectable_handler_does_nothing(fault_table: str) -> None:
    faults.checkpoint("after-claim")


def test_without_the_variable_nothing_is_read_and_the_handler_runs(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.FAULT_TABLE_VARIABLE, raising=False)
    aws_clients.client.cache_clear()
    handler, calls = handler_counting_calls()

    # No table exists: any read would raise ResourceNotFoundException.
    assert handler({"n": 1}, FakeLambdaContext(function_name="AcceptOffer")) == {"ok": True}
    assert calls == [{"n": 1}]


def test_fault_injection_is_off_unless_the_local_config_enables_it() -> None:
    assert template()["Parameters"]["FaultInjection"]["Default"] == "disabled"
    assert resource("FaultInjectionTable")["Condition"] == "FaultInjectionEnabled"
    variable = template()["Globals"]["Function"]["Environment"]["Variables"][faults.FAULT_TABLE_VARIABLE]
    assert variable == {"Fn::If": ["FaultInjectionEnabled", {"Ref": "FaultInjectionTable"}, {"Ref": "AWS::NoValue"}]}
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert "FaultInjection=enabled" not in config["default"]["deploy"]["parameters"]["parameter_overrides"]
    assert "FaultInjection=enabled" in config["local"]["deploy"]["parameters"]["parameter_overrides"].split()


def test_a_fault_armed_for_a_contract_fires_only_in_an_invocation_of_that_contract(fault_table: str) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    handler, calls = handler_counting_calls()
    faults.arm(dynamodb, fault_table, "FulfillAction", 1, contract_id="C-MINE")
    context = FakeLambdaContext(function_name="FulfillAction")

    # Another contract's hook, a step's event of another contract, and an event naming none: all run.
    assert handler({"contractId": "C-OTHER", "action": {"name": "action1"}}, context) == {"ok": True}
    assert handler({"offer": {"contractId": "C-OTHER"}}, context) == {"ok": True}
    assert handler({"Records": []}, context) == {"ok": True}
    assert faults.injected_count(dynamodb, fault_table, "FulfillAction") == 0
    with pytest.raises(faults.InjectedFaultError):
        handler({"contractId": "C-MINE", "action": {"name": "action1"}}, context)
    assert handler({"contractId": "C-MINE"}, context) == {"ok": True}  # used up
    assert len(calls) == 4
    assert faults.injected_count(dynamodb, fault_table, "FulfillAction") == 1


def test_a_fault_armed_for_a_contract_matches_the_offer_of_a_steps_event(fault_table: str) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    handler, _ = handler_counting_calls()
    faults.arm(dynamodb, fault_table, "AcceptOffer", 1, contract_id="C-MINE")

    with pytest.raises(faults.InjectedFaultError):
        handler({"offer": {"contractId": "C-MINE"}}, FakeLambdaContext(function_name="AcceptOffer"))


def test_arming_a_point_again_without_a_contract_lifts_its_scope(fault_table: str) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    handler, _ = handler_counting_calls()
    context = FakeLambdaContext(function_name="FulfillAction")
    faults.arm(dynamodb, fault_table, "FulfillAction", 1, contract_id="C-MINE")
    faults.arm(dynamodb, fault_table, "FulfillAction", 1)

    with pytest.raises(faults.InjectedFaultError):
        handler({"contractId": "C-OTHER"}, context)
