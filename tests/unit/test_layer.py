"""The `common` layer's requirements: complete, pinned as in the dev lock, and nothing the runtime has.

The layer Makefile installs src/layers/common/requirements.txt with `pip --no-deps`, and the emulator
runs the functions with the dev environment's interpreter, which has every package: a dependency
missing from the layer would only fail on AWS. These checks catch it offline.
"""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path

from packaging.requirements import Requirement

from tests.support.locks import normalized, pins
from tests.support.template import template

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "src" / "layers" / "common"
# boto3 and its dependencies: in the Lambda Python runtimes, so never in the layer.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
# Extras the layer uses: Powertools' Tracer needs aws-xray-sdk.
EXTRAS = {"aws-lambda-powertools": {"tracer"}}


def test_layer_pins_equal_the_dev_lock_and_leave_out_what_the_runtime_provides() -> None:
    layer, lock = pins(LAYER / "requirements.txt"), pins(ROOT / "requirements-dev.lock")

    assert not RUNTIME_PROVIDED & layer.keys()
    # The same versions, so the same files and hashes: the layer installs exactly what the tests ran with.
    assert {name: lock.get(name) for name in layer} == layer


def test_layer_lists_every_dependency_it_needs() -> None:
    layer = pins(LAYER / "requirements.txt")
    missing = set()
    for name in layer:
        for text in distribution(name).requires or []:
            requirement = Requirement(text)
            needed = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in EXTRAS.get(name, {""})
            )
            if needed and normalized(requirement.name) not in layer.keys() | RUNTIME_PROVIDED:
                missing.add(f"{requirement.name} (for {name})")

    assert not missing


def test_layer_wheels_are_built_for_the_functions_architecture() -> None:
    (architecture,) = template()["Globals"]["Function"]["Architectures"]
    platform = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}[architecture]

    assert f"PLATFORM := {platform}" in (LAYER / "Makefile").read_text()
    assert template()["Resources"]["CommonLayer"]["Properties"]["CompatibleArchitectures"] == [architecture]
