"""What a function loads at cold start: its handler module imports no SDK, no pydantic and no other
step's domain code at module scope (each handler imports its own step's module in its body).

Each check imports one handler module in a fresh interpreter, since this test process has already
imported everything. `make bench` reports the import times themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.template import template

ROOT = Path(__file__).resolve().parents[2]
STEP_MODULES = {
    "enrollment.model",
    *(f"enrollment.immediate.{name}" for name in ("offers", "publisher", "rules")),
    *(f"enrollment.eventual.{name}" for name in ("stream", "fulfillment", "hooks", "manage", "reconcile")),
}
NOT_AT_COLD_START = {
    "payment.handlers": {"boto3", "pydantic", "payment.request"},
    "enrollment.immediate.handlers": {"boto3", "pydantic", *STEP_MODULES},
    "enrollment.eventual.handlers": {"boto3", "pydantic", *STEP_MODULES},
    "enrollment.api.manage_handler": {"boto3", "pydantic", "enrollment.eventual.stream"},
}


def loaded_by(module: str) -> set[str]:
    source_roots = [ROOT / "src" / "layers" / "common", ROOT / "src" / "payment", ROOT / "src" / "enrollment"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, source_roots)), "AWS_DEFAULT_REGION": "us-east-1"}
    listing = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print(*sys.modules)"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listing.stdout.split())


def test_every_handler_module_of_the_template_is_checked() -> None:
    handler_modules = {
        body["Properties"]["Handler"].rsplit(".", 1)[0]
        for body in template()["Resources"].values()
        if body["Type"] == "AWS::Serverless::Function"
    }

    assert handler_modules - {"enrollment.api.enroll_handler"} == NOT_AT_COLD_START.keys()


@pytest.mark.parametrize("module", sorted(NOT_AT_COLD_START))
def test_handler_module_leaves_the_sdk_pydantic_and_other_steps_for_later(module: str) -> None:
    assert not NOT_AT_COLD_START[module] & loaded_by(module)
