from __future__ import annotations

from pathlib import Path

import emulator
import pytest


def test_each_emulator_gets_its_own_temp_dir_which_forget_removes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator, "STATE_DIR", tmp_path)
    assert emulator.emulator_environment(4567)["TMPDIR"] == str(tmp_path / "tmp-4567")
    worker_dir = emulator.temp_dir(4567) / "ministack-lambda-Fn-abc"
    worker_dir.mkdir(parents=True)
    emulator.pid_file(4567).write_text("12345")

    emulator.forget(4567)

    assert not emulator.temp_dir(4567).exists()
    assert not emulator.pid_file(4567).exists()


def test_emulator_environment_drops_an_inherited_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://localhost:1")
    env = emulator.emulator_environment(4567)
    assert "AWS_ENDPOINT_URL" not in env
    assert env["GATEWAY_PORT"] == "4567"
