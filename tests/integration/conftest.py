"""Integration fixtures: a fresh emulator on a free port, the real template deployed with SAM.

Every emulator started here is stopped by its PID when the session ends, pass or fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import emulator
import pytest
import stack
from filelock import FileLock

from tests.support.invariants import assert_invariants
from tests.support.template import ROOT

STACK_NAME = "mock-payment-workflow-stack"
BUILD_LOCK_SECONDS = 900  # a first build installs the layer's packages; another worker's waits for it


@dataclass
class LocalStack:
    port: int
    env: dict[str, str]
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return emulator.endpoint(self.port)

    def client(self, service_name: str, **kwargs: Any) -> Any:
        return stack.local_client(service_name, self.port, **kwargs)


def start_emulator(extra_env: dict[str, str] | None = None) -> tuple[int, Any]:
    port = emulator.free_port()
    process = emulator.start(port, extra_env)
    assert process is not None, f"port {port} was expected to be free"
    return port, process


@pytest.fixture(scope="session")
def built() -> None:
    """`sam build`, once per test run. Under pytest-xdist each worker deploys from a copy of its own
    (STACK_BUILD_DIR, read by stack.build and stack.deploy, and inherited by the `make` commands the
    README test runs): the first worker builds under a lock, the others copy what it built."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        stack.build(stack.local_environment(emulator.DEFAULT_PORT))
        return
    shared = ROOT / ".aws-sam" / "build"
    own = ROOT / ".aws-sam" / f"build-{worker}"
    marker = ROOT / ".aws-sam" / "build.testrun"
    shared.parent.mkdir(exist_ok=True)
    with FileLock(str(ROOT / ".aws-sam" / "build.lock"), timeout=BUILD_LOCK_SECONDS):
        run = os.environ["PYTEST_XDIST_TESTRUNUID"]
        if not (marker.exists() and marker.read_text() == run):
            stack.build(stack.local_environment(emulator.DEFAULT_PORT))
            marker.write_text(run)
        shutil.rmtree(own, ignore_errors=True)
        shutil.copytree(shared, own, symlinks=True)
    os.environ["STACK_BUILD_DIR"] = str(own)


@pytest.fixture(scope="session")
def fresh_emulator() -> Iterator[int]:
    port, process = start_emulator()
    try:
        yield port
    finally:
        emulator.stop_pid(process.pid)
        emulator.forget(port)


@pytest.fixture(scope="session")
def local_stack(built: None, fresh_emulator: int) -> LocalStack:
    env = stack.local_environment(fresh_emulator)
    stack.deploy(env, STACK_NAME)
    # As `make up` leaves it: every function's concurrency bounded, and a ready worker before the first
    # test's request.
    stack.limit_concurrency(fresh_emulator, STACK_NAME)
    assert all(result.ok for result in stack.warm_up(fresh_emulator, STACK_NAME))
    deployed = LocalStack(port=fresh_emulator, env=env)
    deployed.outputs = stack.outputs(deployed.client("cloudformation"), STACK_NAME)
    stack.seed_sample_accounts(fresh_emulator, deployed.outputs)
    return deployed


@dataclass
class EnrollmentApi:
    url: str
    api_key: str


@pytest.fixture(scope="session")
def enrollment_api(local_stack: LocalStack) -> EnrollmentApi:
    key = local_stack.client("apigateway").get_api_key(
        apiKey=local_stack.outputs["EnrollmentApiKeyId"], includeValue=True
    )["value"]
    return EnrollmentApi(url=f"{local_stack.outputs['EnrollmentApiUrl']}/enrollments", api_key=key)


@pytest.fixture(autouse=True)
def invariants_hold(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that touched the deployed stack ends by checking the invariants across all of it."""
    yield
    if "local_stack" in request.fixturenames:
        deployed: LocalStack = request.getfixturevalue("local_stack")
        assert_invariants(deployed.client, deployed.outputs)
