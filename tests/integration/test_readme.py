"""Every bash block of README.md and docs/*.md that targets the emulator runs, in order, on a fresh emulator.

The blocks start with `make demo` (README command 1) and end with the cleanup block of
docs/deploy-to-aws.md, so this is also the end-to-end test of the first command, of each seed step
as docs/seeds-step-by-step.md maps it, and of seed 001's CLI path (`aws cloudformation package` and
`deploy`, start-execution, validation, delete-stack).
"""

from __future__ import annotations

import os
import subprocess
import time

import emulator
import pytest

from enrollment.eventual.hooks import schedule_name
from tests.support.readme import bash_blocks
from tests.support.template import ROOT

pytestmark = pytest.mark.integration
BLOCK_DEADLINE_SECONDS = 300


def test_only_the_test_command_is_exempt() -> None:
    skipped = [block.body.strip() for block in bash_blocks() if block.skip_reason]
    assert skipped == ["make test"]


@pytest.mark.long(minutes=3)
def test_readme_bash_blocks_run_against_a_fresh_emulator(built: None) -> None:
    port = emulator.free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update({"EMULATOR_PORT": str(port), "SAM_CLI_TELEMETRY": "0"})
    transcript: list[str] = []
    runnable = [block for block in bash_blocks() if not block.skip_reason]
    try:
        for block in runnable:
            started = time.monotonic()
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.body],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_DEADLINE_SECONDS,
                check=False,
            )
            seconds = time.monotonic() - started
            transcript.append(f"$ [{block.page}, {seconds:.1f} s]\n{block.body}\n{result.stdout}\n{result.stderr}")
            assert result.returncode == 0, "\n".join(transcript)
        outputs = {block.body: output for block, output in zip(runnable, transcript, strict=True)}

        def output_of(marker: str) -> str:
            return next(output for body, output in outputs.items() if marker in body)

        demo = output_of("make demo")
        assert "execution SUCCEEDED" in demo
        assert "Confirmation: Payment for order 1234 accepted at" in demo
        assert "status now: paid" in demo
        assert "HTTP 201" in demo
        assert "first payment -> mock-payment-workflow" in demo
        payment = output_of("5678")
        assert '"orderId": {\n            "S": "5678"' in payment
        assert '"S": "paid"' in payment
        assert '"Payment for order invoke-1001 accepted at' in output_of("sam remote invoke")
        api = output_of("C-README-1")
        assert [line for line in api.splitlines() if line.startswith("HTTP ")] == [
            "HTTP 201", "HTTP 201", "HTTP 400", "HTTP 403"
        ]  # fmt: skip
        assert "enroll\tenrolled: UCP updated, payments set" in api
        lifecycle = output_of("C-README-2")
        assert [line for line in lifecycle.splitlines() if line.startswith(("POST HTTP ", "HTTP "))] == [
            "POST HTTP 201", "HTTP 200", "HTTP 200", "HTTP 200"
        ]  # fmt: skip
        assert schedule_name("C-README-2", "rateChange") in lifecycle
        assert '"status": "cancelled"' in lifecycle
        # the cancel comes before either hook is due: both eventual actions are cancelled, none performed
        assert '"cancelledActions": ["action1", "rateChange"]' in lifecycle
        seed_steps = output_of("list-attached-role-policies")
        assert '"PolicyName": "lambda-policy"' in seed_steps
        assert "FunctionTracingPolicy" in seed_steps
        assert "FaultInjectionPolicy" in seed_steps
        assert "3" in seed_steps.splitlines()  # the attached policies are three
        assert '"python3.13"' in seed_steps
        assert "lambda-role" in seed_steps
        assert '"AttributeName": "OfferId"' in seed_steps
        deployed_from_source = output_of("list-event-source-mappings")
        assert "stream/EnrollmentStream" in deployed_from_source
        assert '"EXPRESS"' in deployed_from_source
        assert "drift: none" in deployed_from_source
        second_start = output_of("start-sync-execution")
        assert "C-1001: enrolled" in second_start
        assert "receive-offer\trejected: ContractAlreadyEnrolled" in second_start
        assert '"FAILED",\n    "ContractAlreadyEnrolled"' in second_start
        assert '"dryRun": true' in output_of("describe-alarms")
        assert "emulator (pid" in transcript[-1]
        assert "stopped" in transcript[-1]
    finally:
        emulator.stop(port)
    assert not emulator.is_healthy(port)
