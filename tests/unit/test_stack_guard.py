"""scripts/stack.py deploys only to a local emulator: a non-local AWS_ENDPOINT_URL is refused before any `sam` call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import stack

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ["http://localhost:4566", "http://127.0.0.1:45123", "http://[::1]:4566", "https://localhost"]
NOT_LOCAL = [
    "https://cloudformation.us-east-1.amazonaws.com",
    "http://localhost.example.com:4566",
    "http://10.0.0.5:4566",
    "localhost:4566",
    "http://[::1",
    "",
    None,
]


@pytest.mark.parametrize("url", LOCAL)
def test_local_endpoints_are_accepted(url: str) -> None:
    assert stack.require_local_endpoint(url) == url


@pytest.mark.parametrize("url", NOT_LOCAL)
def test_other_endpoints_are_refused(url: str | None) -> None:
    with pytest.raises(stack.NonLocalEndpointError, match="not a local address"):
        stack.require_local_endpoint(url)


@pytest.mark.parametrize("env", [{"AWS_ENDPOINT_URL": "https://cloudformation.us-east-1.amazonaws.com"}, {}])
def test_deploy_refuses_before_calling_sam(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(stack, "sam", lambda args, env, log=None: calls.append(args))

    with pytest.raises(stack.NonLocalEndpointError):
        stack.deploy(env, "any-stack")

    assert calls == []


def test_deploy_to_a_local_endpoint_passes_it_as_emulator_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(stack, "sam", lambda args, env, log=None: calls.append(args))
    monkeypatch.setattr(stack, "local_parameter_overrides", lambda: ["OffsetUnitSeconds=3", "FaultInjection=enabled"])

    stack.deploy({"AWS_ENDPOINT_URL": "http://localhost:4566"}, "s", ["FaultInjection=disabled"])
    stack.deploy({"AWS_ENDPOINT_URL": "http://localhost:4566"}, "s", with_emulator_endpoint=False)

    with_endpoint, without_endpoint = (args[args.index("--parameter-overrides") + 1 :] for args in calls)
    assert "EmulatorEndpoint=http://localhost:4566" in with_endpoint
    # A caller's override replaces samconfig's value of the same key instead of following it.
    assert [o for o in with_endpoint if o.startswith("FaultInjection=")] == ["FaultInjection=disabled"]
    assert not [o for o in without_endpoint if o.startswith("EmulatorEndpoint=")]


def test_up_command_exits_non_zero_for_a_non_local_endpoint() -> None:
    """The command line (`make up` runs it) stops with the reason, before starting an emulator or building."""
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": "https://cloudformation.us-east-1.amazonaws.com"}
    done = subprocess.run(
        [sys.executable, "scripts/stack.py", "up", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert "refusing to deploy" in done.stderr
    assert "not a local address" in done.stderr
    assert "emulator" not in done.stdout


def test_overrides_keep_a_quoted_value_whole_and_refuse_one_cut_in_two() -> None:
    assert stack.split_overrides("""A=1  B="rate(1 minute)" C='x y' D=rate(1)""") == [
        "A=1",
        'B="rate(1 minute)"',
        "C='x y'",
        "D=rate(1)",
    ]
    with pytest.raises(ValueError, match="quote a value that contains spaces"):
        stack.split_overrides("A=1 B=rate(1 minute)")


# ------------------------------------------------------------------ quiet, with progress
@pytest.fixture
def fake_sam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `sam` that prints a changeset-like table and exits with the code in FAKE_SAM_EXIT."""
    script = tmp_path / "sam"
    script.write_text(
        '#!/bin/sh\necho "changeset table for $1"\necho "noise on stderr" >&2\nexit "${FAKE_SAM_EXIT:-0}"\n'
    )
    script.chmod(0o755)
    monkeypatch.setattr(stack, "sam_cli", lambda: script)
    return script


def test_with_a_log_sams_output_goes_there_not_to_the_terminal(
    fake_sam: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "sam.log"

    written = stack.sam(["build"], {"PATH": "/usr/bin:/bin"}, log)

    assert "changeset table for build" in written
    assert "noise on stderr" in written
    assert "$ sam build" in log.read_text()
    terminal = capfd.readouterr()
    assert terminal.out == ""
    assert terminal.err == ""


def test_when_sam_fails_its_whole_log_is_printed_and_the_error_raised(
    fake_sam: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "sam.log"
    stack.sam(["build"], {"PATH": "/usr/bin:/bin"}, log)

    with pytest.raises(subprocess.CalledProcessError):
        stack.sam(["deploy"], {"PATH": "/usr/bin:/bin", "FAKE_SAM_EXIT": "1"}, log)

    printed = capfd.readouterr().err
    assert "sam deploy failed (exit 1)" in printed
    assert "changeset table for build" in printed  # the log in full, earlier steps included
    assert "changeset table for deploy" in printed
