"""Test-only settings cannot reach AWS: the template's Rules refuse FaultInjection=enabled and a compressed
day (OffsetUnitSeconds other than 86400) unless EmulatorEndpoint is set, which scripts/stack.py passes only
for a local emulator. Deployed here as AWS would see it, without EmulatorEndpoint, under other stack names
and a NamePrefix of their own, so nothing of the session's stack is touched even if a guard failed."""

from __future__ import annotations

import subprocess

import pytest
import stack

from tests.support.stacks import stack_status

pytestmark = pytest.mark.integration
PREFIX = "guard-"
# Whatever one case does not test is set to its production value, so each case trips one assertion.
CASES = {
    "fault-injection": (["FaultInjection=enabled", "OffsetUnitSeconds=86400"], "FaultInjection=enabled is for"),
    "offset-unit": (["FaultInjection=disabled", "OffsetUnitSeconds=3"], "OffsetUnitSeconds other than 86400 is for"),
}
# A stack the refused deploy may leave behind: none at all, or one that holds nothing.
NOTHING_CREATED = {"REVIEW_IN_PROGRESS", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_COMPLETE"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_test_only_settings_are_refused_without_the_emulator_endpoint(
    case: str, built: None, fresh_emulator: int, capfd: pytest.CaptureFixture[str]
) -> None:
    overrides, message = CASES[case]
    stack_name = f"deploy-guard-{case}"
    env = stack.local_environment(fresh_emulator)

    with pytest.raises(subprocess.CalledProcessError):
        stack.deploy(env, stack_name, [f"NamePrefix={PREFIX}", *overrides], with_emulator_endpoint=False)

    output = capfd.readouterr()
    assert message in output.out + output.err, "the deploy failed, but not on the template's rule"
    cloudformation = stack.local_client("cloudformation", fresh_emulator)
    status = stack_status(cloudformation, stack_name)
    assert status is None or status in NOTHING_CREATED, status
    if status is not None:
        resources = cloudformation.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
        assert [
            r for r in resources if r["ResourceStatus"].endswith("_COMPLETE") and "DELETE" not in r["ResourceStatus"]
        ] == []
    tables = stack.local_client("dynamodb", fresh_emulator).list_tables()["TableNames"]
    assert [t for t in tables if t.startswith(PREFIX)] == []
