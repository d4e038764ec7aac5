"""The benchmark behind `make bench`: a fresh emulator, the stack deployed, and in one run.

First the stack exactly as `make up` deploys it (samconfig `local`: its API throttling, recorded from the
deployed stack in the results):

- the first enrollment's latency right after the deploy;
- `--load-clients` (10) closed-loop clients enrolling distinct contracts for `--load-seconds` (60): the
  count of 429s and of 5xx, p50/p95 latency; a client backs off after a 429 the way
  `scripts/api_client.py` does and sends the same contract again;
- a burst of `--burst` (50) concurrent enrollments, each retrying 429s like `scripts/api_client.py`:
  whether all succeed within `--burst-deadline-seconds` (120) with no 5xx, and the time to all done;
- peak resident memory of the emulator plus every process below it (RSS summed over the process tree,
  sampled every 0.5 s by a thread; PSS summed as well, which counts shared pages once) and the worker
  count, during those two loads.

Then the stack redeployed with the template's (AWS) throttling, so that the emulator, not the stage, is
what is measured:

- the floor of the immediate path's shape inside the emulator: an EXPRESS state machine of as many
  sequential `lambda:invoke` tasks of a no-op Python function as the enrolled path of
  statemachine/enrollment.asl.json has, deployed with boto3 and run warm with StartSyncExecution
  `--floor-runs` times; the immediate path's p50 (StartSyncExecution of EnrollmentStateMachine, and
  through the API) divided by the floor's p50;
- the sum of warm direct invocations of each immediate-path function (what `make cost` bills);
- the immediate enrollment through the API at concurrency 1, 10 and 50 (`--api-loads`);
- the payment workflow end to end, and how late hooks fire after their due time;
- the memory of the emulator and its workers before and after;
- import time and package sizes per function, against bench/budgets.json: each handler module is
  imported as Lambda imports it (see `measure_cold_start`).

Writes bench/results/latest.json and bench/results/latest.md (`--output-name` another name, for a
shortened run: a run with any duration flag changed is labelled a smoke run). Timings are from this run
on this machine; compare ratios, not absolute numbers, across machines.

    python scripts/bench.py                                   # the full run (make bench)
    python scripts/bench.py --load-seconds 10 --floor-runs 10 --api-loads 1:10 --payment-runs 3 \
        --hook-contracts 2 --output-name smoke                      # a smoke run, about 5 minutes
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src/layers/common")]

import api_client  # noqa: E402
import asl_diagram  # noqa: E402
import emulator  # noqa: E402
import stack  # noqa: E402
from sam_template import template  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUILD = ROOT / ".aws-sam" / "build"
SEED = json.loads((ROOT / "events/enrollment/input.json").read_text())
STACK = "bench-stack"
LOADS = ((1, 20), (10, 30), (50, 50))  # (concurrency, requests): one wave at 50
HOOK_CONTRACTS = 5
# Every contract but the hook contracts keeps one same-day action and one far-future action (300 days, 15
# minutes at the local 3 s per day), so hooks do not fire while latency is being measured; hook lateness is
# measured apart, with no other hook falling due at the same time.
LOAD_DRAFT = {"List": [{"name": "action2", "offset": 0}, {"name": "action1", "offset": 300}]}
HOOK_DRAFT = {"List": [{"name": "action100", "offset": 1}]}
FLOOR_ROUNDS = 20
PAYMENT_RUNS = 10
ENROLLMENT_ASL = ROOT / "statemachine/enrollment.asl.json"
ENROLLED_STATE = "Enrolled"  # the enrolled path's last state
LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"  # the no-op machine this script creates on the emulator
# the stack as `make up` deploys it
LOAD_CLIENTS, LOAD_SECONDS = 10, 60.0
BURST, BURST_DEADLINE_SECONDS = 50, 120.0
BENCH_ACCOUNTS = 50  # one UCP account per client / burst request, so that they do not all update one item
CLIENT_TIMEOUT_SECONDS = 60.0
MEMORY_SAMPLE_SECONDS = 0.5


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def process_tree(root: int) -> list[int]:
    """`root` and every process below it (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces and parentheses: the fields after it start at the last ')'.
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def rss_kb(pid: int) -> int:
    try:
        match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    except OSError:  # it ended meanwhile
        return 0
    return int(match.group(1)) if match else 0


def pss_kb(pid: int) -> int:
    """Proportional set size: the process's private pages plus its share of the pages it shares."""
    try:
        match = re.search(r"^Pss:\s+(\d+)", Path(f"/proc/{pid}/smaps_rollup").read_text(), re.MULTILINE)
    except OSError:  # it ended meanwhile
        return 0
    return int(match.group(1)) if match else 0


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of the emulator and of every process below it (its Lambda workers): RSS summed,
    which counts each shared page (the interpreter, shared libraries) once per process, and PSS summed,
    which counts it once in all: the memory the tree takes from the machine."""
    tree = process_tree(pid)
    sizes = {member: rss_kb(member) for member in tree}
    return {
        "emulatorMb": round(sizes.get(pid, 0) / 1024, 1),
        "totalMb": round(sum(sizes.values()) / 1024, 1),
        "pssTotalMb": round(sum(pss_kb(member) for member in tree) / 1024, 1),
        "workers": len(tree) - 1,
    }


class MemorySampler:
    """A thread sampling `memory_mb(pid)` every MEMORY_SAMPLE_SECONDS until stopped: the peaks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(memory_mb(self.pid))
            self._stop.wait(MEMORY_SAMPLE_SECONDS)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(memory_mb(self.pid))

    def summary(self) -> dict[str, Any]:
        peak = max(self.samples, key=lambda sample: sample["totalMb"])
        return {
            "peakTotalMb": peak["totalMb"],
            "peakEmulatorMb": max(sample["emulatorMb"] for sample in self.samples),
            "peakPssTotalMb": max(sample["pssTotalMb"] for sample in self.samples),
            "workersAtPeak": peak["workers"],
            "peakWorkers": max(sample["workers"] for sample in self.samples),
            "end": self.samples[-1],
            "samples": len(self.samples),
            "intervalS": MEMORY_SAMPLE_SECONDS,
        }


def enrollment_request(url: str, key: str, body: dict[str, Any]) -> urllib.request.Request:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")  # noqa: S310 - local
    request.add_header("x-api-key", key)
    request.add_header("Content-Type", "application/json")
    return request


def post(url: str, key: str, body: dict[str, Any]) -> tuple[float, int]:
    """One request, no retry: (latency ms, status; 0 for a client timeout or a dropped connection)."""
    request = enrollment_request(url, key, body)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT_SECONDS) as response:  # noqa: S310
            response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:
        status = 0
    return (time.perf_counter() - started) * 1000, status


def invoke(lambda_client: Any, name: str, payload: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    elapsed, response = timed(lambda: lambda_client.invoke(FunctionName=name, Payload=json.dumps(payload).encode()))
    return elapsed, json.loads(response["Payload"].read())


def aws_throttling() -> list[str]:
    """The stage's throttling at the template's (AWS) defaults, not samconfig `local`'s, and each API key's the
    same: the benchmark measures what the emulator does at concurrency 10 and 50 with one key, where the local
    limits, or one key's default share of the stage, would answer most requests 429."""
    parameters = template()["Parameters"]
    rate, burst = (parameters[name]["Default"] for name in THROTTLING)
    return [
        f"ApiThrottleRateLimit={rate}",
        f"ApiThrottleBurstLimit={burst}",
        f"ApiClientThrottleRateLimit={rate}",
        f"ApiClientThrottleBurstLimit={burst}",
    ]


THROTTLING = ("ApiThrottleRateLimit", "ApiThrottleBurstLimit")
# The emulator's own knobs that shape these figures (read from its process; unset = ministack's default).
EMULATOR_KNOBS = (
    "LAMBDA_ACCOUNT_CONCURRENCY",
    "LAMBDA_WARM_TTL_SECONDS",
    "SCHEDULER_TICK_SECONDS",
    "SFN_WAIT_SCALE",
    "AUTH",
)


def deployed_throttling(port: int) -> dict[str, str]:
    """The deployed stack's API throttling: its parameters, not samconfig's (which may have changed since)."""
    found = stack.local_client("cloudformation", port).describe_stacks(StackName=STACK)["Stacks"][0]
    parameters = {item["ParameterKey"]: item["ParameterValue"] for item in found.get("Parameters", [])}
    return {name: parameters.get(name, "?") for name in THROTTLING}


def emulator_knobs(pid: int) -> dict[str, str]:
    try:
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    variables = dict(entry.decode(errors="replace").split("=", 1) for entry in environment if b"=" in entry)
    return {name: variables.get(name, "(ministack default)") for name in EMULATOR_KNOBS}


def code_version() -> str:
    """The commit measured, and whether the working tree differed from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return f"{commit} + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else commit


def api_endpoint(port: int, outputs: dict[str, str]) -> tuple[str, str]:
    """The enrollments URL and the API key's value (both change when the stack is redeployed)."""
    key = stack.local_client("apigateway", port).get_api_key(apiKey=outputs["EnrollmentApiKeyId"], includeValue=True)
    return f"{outputs['EnrollmentApiUrl']}/enrollments", key["value"]


def summary_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50Ms": None, "p95Ms": None}
    return {"p50Ms": round(percentile(values, 0.5), 1), "p95Ms": round(percentile(values, 0.95), 1)}


# ---------------------------------------------------------------- the floor of the immediate path's shape


def _successors(state: dict[str, Any]) -> list[str]:
    """Where a state goes when it succeeds: Next, or a Choice's branches and Default (never a Catch)."""
    if state["Type"] == "Choice":
        return [choice["Next"] for choice in state["Choices"]] + ([state["Default"]] if "Default" in state else [])
    return [state["Next"]] if "Next" in state else []


def _lambda_tasks_of(name: str, state: dict[str, Any]) -> list[str]:
    if state["Type"] == "Task":
        return [name] if asl_diagram.integration(state["Resource"]) == "lambda:invoke" else []
    if state["Type"] == "Map":  # once: the benchmark's contracts have one same-day action
        return lambda_tasks_on_success_path(state.get("ItemProcessor") or state["Iterator"])
    if state["Type"] == "Parallel":
        return [task for branch in state["Branches"] for task in lambda_tasks_on_success_path(branch)]
    return []


def lambda_tasks_on_success_path(definition: dict[str, Any], end: str | None = None) -> list[str]:
    """The `lambda:invoke` Task states a successful run passes, in order: the most of them over the paths
    from StartAt that follow Next, Choices and Default (no Catch) to `end`, or, without `end`, to any
    state that ends the run without failing."""
    states, best = definition["States"], None

    def walk(name: str, seen: frozenset[str], tasks: list[str]) -> None:
        nonlocal best
        state = states[name]
        tasks = tasks + _lambda_tasks_of(name, state)
        reached = name == end if end else bool(state.get("End")) or state["Type"] == "Succeed"
        if reached and (best is None or len(tasks) > len(best)):
            best = tasks
        for following in _successors(state):
            if following not in seen:
                walk(following, seen | {following}, tasks)

    walk(definition["StartAt"], frozenset({definition["StartAt"]}), [])
    if best is None:
        raise ValueError(f"no successful path to {end or 'an end state'}")
    return best


def enrolled_path_lambda_tasks() -> list[str]:
    return lambda_tasks_on_success_path(json.loads(ENROLLMENT_ASL.read_text()), ENROLLED_STATE)


# The emulator adds about 50 ms to a call whose handler writes nothing to stdout or stderr
# (/work/shared/emulator-notes.md); every real function logs, so the no-op logs one line too.
NOOP_HANDLER = 'def handler(event, context):\n    print("no-op")\n    return event\n'


def noop_zip() -> bytes:
    return stack.code_zip({"noop.py": NOOP_HANDLER})


def create_role(port: int, name: str, service: str) -> str:
    """A role `service` may assume, with no policy: the emulator runs with AUTH=true, so it must exist."""
    return stack.local_client("iam", port).create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }),
    )["Role"]["Arn"]  # fmt: skip


def deploy_shape_floor(port: int, task_count: int) -> str:
    """With boto3, not SAM: a no-op Python 3.13 function and an EXPRESS state machine of `task_count`
    sequential `lambda:invoke` tasks of it, each passing its input on. Returns the state machine's ARN."""
    lambda_client = stack.local_client("lambda", port)
    function_arn = lambda_client.create_function(
        FunctionName="bench-floor-noop",
        Runtime="python3.13",
        Role=create_role(port, "bench-floor-noop", "lambda.amazonaws.com"),
        Handler="noop.handler",
        Code={"ZipFile": noop_zip()},
        MemorySize=256,  # as the template's functions
        Timeout=10,
    )["FunctionArn"]
    deadline = time.monotonic() + 30
    while lambda_client.get_function_configuration(FunctionName=function_arn).get("State", "Active") != "Active":
        if time.monotonic() > deadline:
            raise TimeoutError("bench-floor-noop did not become Active")
        time.sleep(0.2)
    names = [f"NoOp{number}" for number in range(1, task_count + 1)]
    states = {
        name: {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
            "OutputPath": "$.Payload",
            **({"Next": following} if following else {"End": True}),
        }
        for name, following in zip(names, [*names[1:], None], strict=True)
    }
    definition = {
        "Comment": f"{task_count} sequential no-op lambda:invoke tasks",
        "StartAt": names[0],
        "States": states,
    }
    return stack.local_client("stepfunctions", port).create_state_machine(
        name="bench-floor",
        type="EXPRESS",
        roleArn=create_role(port, "bench-floor-states", "states.amazonaws.com"),
        definition=json.dumps(definition),
    )["stateMachineArn"]


def sync_runs(stepfunctions: Any, arn: str, inputs: list[dict[str, Any]], expect: str | None = None) -> list[float]:
    """StartSyncExecution of each input in turn: the durations (ms). A run that does not succeed (or whose
    output's `status` is not `expect`) stops the benchmark rather than being timed."""
    durations = []
    for text in map(json.dumps, inputs):
        elapsed, run = timed(lambda text=text: stepfunctions.start_sync_execution(stateMachineArn=arn, input=text))
        if run["status"] != "SUCCEEDED" or (expect and json.loads(run["output"]).get("status") != expect):
            raise RuntimeError(f"{arn}: {run['status']} {run.get('error')} {run.get('cause')} {run.get('output')}")
        durations.append(elapsed)
    return durations


def measure_shape_floor(port: int, outputs: dict[str, str], runs: int) -> dict[str, Any]:
    """The floor the emulator imposes on an execution of the immediate path's shape, and the immediate
    workflow itself measured the same way (warm, one at a time, StartSyncExecution)."""
    tasks = enrolled_path_lambda_tasks()
    stepfunctions = stack.local_client("stepfunctions", port)
    floor_arn = deploy_shape_floor(port, len(tasks))
    sync_runs(stepfunctions, floor_arn, [{}] * 3)  # warm-up: starts the no-op's worker; not counted
    floor = sync_runs(stepfunctions, floor_arn, [{}] * runs)
    offers = [{**SEED, "contractId": f"DIRECT-{number}", "contractDraft": LOAD_DRAFT} for number in range(runs + 2)]
    sync_runs(stepfunctions, outputs["EnrollmentStateMachineArn"], offers[:2], expect="enrolled")  # warm-up
    immediate = sync_runs(stepfunctions, outputs["EnrollmentStateMachineArn"], offers[2:], expect="enrolled")
    floor_summary, immediate_summary = summary_ms(floor), summary_ms(immediate)
    return {
        "lambdaTasks": tasks,
        "runs": runs,
        "floor": floor_summary,
        "immediateWorkflow": immediate_summary,
        "immediateOverFloor": round(immediate_summary["p50Ms"] / floor_summary["p50Ms"], 2),
        "noOpFunction": "python3.13, 256 MB, prints one line and returns its event",
    }


# ---------------------------------------------------------------- the stack as `make up` deploys it


def add_bench_accounts(port: int, outputs: dict[str, str], count: int) -> list[str]:
    """Active UCP accounts, one per client or burst request, so that they do not all update one item."""
    return stack.add_active_accounts(
        stack.local_client("dynamodb", port), outputs["UcpTableName"], "BENCH-ACCOUNT", count
    )


def backoff_seconds(throttled: int) -> float:
    """The pause after the `throttled`-th 429 in a row: scripts/api_client.py's full jitter."""
    ceiling = min(api_client.LONGEST_PAUSE_SECONDS, api_client.FIRST_PAUSE_SECONDS * 2**throttled)
    return random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret


def first_enrollment(url: str, key: str) -> dict[str, Any]:
    latency, status = post(url, key, {**SEED, "contractId": "FIRST-1", "contractDraft": LOAD_DRAFT})
    return {"status": status, "latencyMs": round(latency, 1)}


@dataclass
class SustainedLoad:
    """Closed-loop clients: each sends a new contract as soon as the last one is answered (after a 429 it
    backs off as scripts/api_client.py does and sends the same contract again), until the window closes."""

    url: str
    key: str
    accounts: list[str]
    seconds: float
    answers: list[tuple[int, float]] = field(default_factory=list)  # every HTTP answer: (status, ms)
    enrollments: list[tuple[int, float, int]] = field(default_factory=list)  # (last status, ms incl. retries, 429s)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, number: int, window_ends: float) -> None:
        sent = 0
        while time.monotonic() < window_ends:
            body = {
                **SEED,
                "contractId": f"SUSTAIN-{number:02d}-{sent}",
                "accountId": self.accounts[number],
                "contractDraft": LOAD_DRAFT,
            }
            sent += 1
            started, throttled = time.perf_counter(), 0
            while True:
                latency, status = post(self.url, self.key, body)
                with self.lock:
                    self.answers.append((status, latency))
                if status != api_client.THROTTLED or time.monotonic() >= window_ends:
                    break
                throttled += 1
                time.sleep(min(backoff_seconds(throttled), max(0.0, window_ends - time.monotonic())))
            with self.lock:
                self.enrollments.append((status, (time.perf_counter() - started) * 1000, throttled))

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        window_ends = started + self.seconds
        with ThreadPoolExecutor(max_workers=len(self.accounts)) as pool:
            list(pool.map(lambda number: self.client(number, window_ends), range(len(self.accounts))))
        wall = time.monotonic() - started
        statuses = Counter(status for status, _ in self.answers)
        enrolled = [ms for status, ms, _ in self.enrollments if status == 201]
        return {
            "clients": len(self.accounts),
            "windowS": self.seconds,
            "wallS": round(wall, 1),
            "requests": len(self.answers),
            "statuses": {str(code): n for code, n in sorted(statuses.items())},
            "answers429": statuses[429],
            "answers5xx": sum(n for code, n in statuses.items() if 500 <= code <= 599),
            "clientTimeouts": statuses[0],
            "enrolled": len(enrolled),
            "enrolledPerS": round(len(enrolled) / wall, 2),
            "stillThrottledAtClose": sum(1 for status, _, _ in self.enrollments if status == api_client.THROTTLED),
            # The latency of each answer 201 (one request), and of each enrollment as its client saw it:
            # from its first request to its 201, 429s and back-off included.
            "answer201": summary_ms([ms for status, ms in self.answers if status == 201]),
            "enrollmentIncludingRetries": summary_ms(enrolled),
        }


def burst(url: str, key: str, accounts: list[str], deadline_seconds: float) -> dict[str, Any]:
    """len(accounts) enrollments sent at once; each retries 429s with scripts/api_client.py until the deadline."""
    started = time.monotonic()  # set again by the barrier's action, once every request is ready
    deadline = started + deadline_seconds

    def at_once() -> None:
        nonlocal started, deadline
        started = time.monotonic()
        deadline = started + deadline_seconds

    barrier = threading.Barrier(len(accounts), action=at_once)

    def one(number: int) -> tuple[int, int, float]:
        body = {**SEED, "contractId": f"BURST-{number:02d}", "accountId": accounts[number], "contractDraft": LOAD_DRAFT}
        request = enrollment_request(url, key, body)
        barrier.wait()
        try:
            answer = api_client.send(request, CLIENT_TIMEOUT_SECONDS, max(0.0, deadline - time.monotonic()))
            status, throttled = answer.status, answer.throttled
        except OSError:  # a client timeout or a dropped connection
            status, throttled = 0, 0
        return status, throttled, time.monotonic()

    with ThreadPoolExecutor(max_workers=len(accounts)) as pool:
        answers = list(pool.map(one, range(len(accounts))))
    statuses = Counter(status for status, _, _ in answers)
    all_done = round(max(finished for _, _, finished in answers) - started, 1)
    succeeded = statuses[201] == len(accounts) and all_done <= deadline_seconds
    return {
        "requests": len(accounts),
        "deadlineS": deadline_seconds,
        "statuses": {str(code): n for code, n in sorted(statuses.items())},
        "answers5xx": sum(n for code, n in statuses.items() if 500 <= code <= 599),
        "retried429": sum(throttled for _, throttled, _ in answers),
        "timeToAllDoneS": all_done,
        "allSucceededWithinDeadline": succeeded,
    }


def measure_floor(port: int, rounds: int = FLOOR_ROUNDS) -> dict[str, Any]:
    """Replay the immediate path's steps as direct invocations, then an empty EXPRESS execution: the sum
    of separate round trips (what `make cost` bills per function), not a floor of one execution."""
    lambda_client, stepfunctions = stack.local_client("lambda", port), stack.local_client("stepfunctions", port)
    samples: dict[str, list[float]] = {}
    for round_number in range(rounds + 1):  # round 0 starts the workers and is not counted
        contract = f"FLOOR-{round_number}"
        execution = f"arn:aws:states:us-east-1:000000000000:execution:EnrollmentStateMachine:{contract}"
        steps: list[tuple[str, float]] = []
        elapsed, accepted = invoke(
            lambda_client,
            "AcceptOffer",
            {
                "input": {**SEED, "contractId": contract, "contractDraft": LOAD_DRAFT},
                "executionId": execution,
                "startedAt": "2026-11-22T10:00:00.000Z",
            },
        )
        steps.append(("AcceptOffer", elapsed))
        offer = accepted["offer"]
        elapsed, verified = invoke(lambda_client, "VerifyCustomer", {"offer": offer, "executionId": execution})
        steps.append(("VerifyCustomer", elapsed))
        elapsed, decision = invoke(lambda_client, "RulesLab", {"offer": offer, "account": verified["account"]})
        steps.append(("RulesLab", elapsed))
        steps.append(
            (
                "CommitEnrollment",
                invoke(
                    lambda_client,
                    "CommitEnrollment",
                    {"offer": offer, "executionId": execution, "eligibility": decision},
                )[0],
            )
        )
        steps.append(
            (
                "PublishEnrollment",
                invoke(lambda_client, "PublishEnrollment", {"offer": offer, "executionId": execution})[0],
            )
        )
        hook = {
            "contractId": contract,
            "correlationId": contract,
            "trigger": "same-day",
            "action": offer["immediateActions"][0],
        }
        steps.append(("FulfillAction", invoke(lambda_client, "FulfillAction", hook)[0]))
        if round_number:
            for name, value in steps:
                samples.setdefault(name, []).append(value)
    # The emulator runs with AUTH=true, so the role must exist (a Pass state needs no permission).
    role_arn = stack.local_client("iam", port).create_role(
        RoleName="bench-empty-express",
        AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}],
        }),
    )["Role"]["Arn"]  # fmt: skip
    empty = stepfunctions.create_state_machine(
        name="bench-empty-express", type="EXPRESS", roleArn=role_arn,
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}),
    )["stateMachineArn"]  # fmt: skip
    empty_samples = [
        timed(lambda: stepfunctions.start_sync_execution(stateMachineArn=empty, input="{}"))[0] for _ in range(rounds)
    ]
    medians = {name: round(statistics.median(values), 1) for name, values in samples.items()}
    medians["EmptyExpressSyncExecution"] = round(statistics.median(empty_samples), 1)
    return {"perStepMedianMs": medians, "floorMs": round(sum(medians.values()), 1)}


def warm_durations(result: dict[str, Any]) -> dict[str, float]:
    """What `scripts/cost_model.py` bills: each immediate-path step's warm direct invocation, and, for
    the API function and the EXPRESS run it waits for, one enrollment's API latency at concurrency 1."""
    durations = {
        f"{name}Function": value
        for name, value in result["floor"]["perStepMedianMs"].items()
        if name != "EmptyExpressSyncExecution"
    }
    one_at_a_time = next((row["p50Ms"] for row in result["api"] if row["concurrency"] == 1 and row["p50Ms"]), None)
    if one_at_a_time is not None:  # absent when --api-loads has no concurrency 1
        durations["EnrollmentApiFunction"] = durations["EnrollmentStateMachine"] = one_at_a_time
    return durations


def measure_api(url: str, key: str, loads: tuple[tuple[int, int], ...] = LOADS) -> list[dict[str, Any]]:
    results = []
    for concurrency, count in loads:
        bodies = [
            {**SEED, "contractId": f"LOAD-{concurrency}-{index}", "contractDraft": LOAD_DRAFT} for index in range(count)
        ]
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            answers = list(pool.map(lambda body: post(url, key, body), bodies))
        wall = time.perf_counter() - started
        latencies = [latency for latency, status in answers if status == 201]
        errors = sum(1 for _, status in answers if status != 201)
        row = {
            "concurrency": concurrency,
            "requests": count,
            "errors": errors,
            "p50Ms": round(percentile(latencies, 0.5), 1) if latencies else None,
            "p95Ms": round(percentile(latencies, 0.95), 1) if latencies else None,
            "p99Ms": round(percentile(latencies, 0.99), 1) if latencies else None,
            "throughputPerS": round(count / wall, 1),
            "statuses": {str(code): n for code, n in sorted(Counter(status for _, status in answers).items())},
        }
        progress(f"API at concurrency {concurrency}: {row}")
        results.append(row)
    return results


def measure_payment(port: int, state_machine_arn: str, runs: int = PAYMENT_RUNS) -> dict[str, Any]:
    stepfunctions = stack.local_client("stepfunctions", port)
    durations = []
    for index in range(runs):
        started = time.perf_counter()
        arn = stepfunctions.start_execution(
            stateMachineArn=state_machine_arn, input=json.dumps({"orderId": f"bench-{index}"})
        )["executionArn"]
        deadline = time.monotonic() + 60
        while stepfunctions.describe_execution(executionArn=arn)["status"] == "RUNNING":
            if time.monotonic() > deadline:
                raise TimeoutError(arn)
            time.sleep(0.02)
        durations.append((time.perf_counter() - started) * 1000)
    return {
        "runs": runs,
        "p50Ms": round(statistics.median(durations), 1),
        "p95Ms": round(percentile(durations, 0.95), 1),
    }


def measure_hooks(
    port: int, outputs: dict[str, str], url: str, key: str, count: int = HOOK_CONTRACTS
) -> dict[str, Any]:
    """How late hooks fire: a few contracts with one action due 1 offset day after enrollment."""
    contracts = [f"HOOK-{index}" for index in range(count)]
    answers = [
        post(url, key, {**SEED, "contractId": contract, "contractDraft": HOOK_DRAFT})[1] for contract in contracts
    ]
    dynamodb = stack.local_client("dynamodb", port)
    deadline = time.monotonic() + 45
    while True:
        items = []
        for contract in contracts:
            found = dynamodb.get_item(
                TableName=outputs["ActionsTableName"],
                Key={"contractId": {"S": contract}, "actionName": {"S": "action100"}},
            )
            items.append(found.get("Item", {}))
        done = [item for item in items if item.get("state", {}).get("S") == "fulfilled"]
        if len(done) == len(items) or time.monotonic() > deadline:
            break
        time.sleep(1)
    from commonlib.clock import parse_isoformat

    lateness = [
        (parse_isoformat(i["completedAt"]["S"]) - parse_isoformat(i["dueAt"]["S"])).total_seconds() for i in done
    ]
    return {
        "hooks": len(items),
        "fulfilled": len(done),
        "latenessP50S": round(statistics.median(lateness), 2) if lateness else None,
        "latenessMaxS": round(max(lateness), 2) if lateness else None,
        "enrollmentStatuses": dict(Counter(str(status) for status in answers)),
        "notFulfilled": {
            contract: item.get("state", {}).get("S", "absent")
            for contract, item in zip(contracts, items, strict=True)
            if item.get("state", {}).get("S") != "fulfilled"
        },
        "note": "the emulator's scheduler checks every SCHEDULER_TICK_SECONDS (emulator settings above)",
    }


def function_directories() -> dict[str, tuple[str, Path]]:
    functions = {}
    for logical_id, body in template()["Resources"].items():
        if body["Type"] == "AWS::Serverless::Function":
            functions[logical_id] = (body["Properties"]["Handler"].rsplit(".", 1)[0], BUILD / logical_id)
    return functions


def directory_kb(path: Path) -> int:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024)


# What the Lambda Python runtimes provide besides the standard library: boto3 and its dependencies.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")


def runtime_site(directory: Path) -> Path:
    """A directory holding only the runtime's packages (links to this environment's copies)."""
    for name in RUNTIME_PACKAGES:
        spec = importlib.util.find_spec(name)
        source = Path(spec.origin).parent if spec.submodule_search_locations else Path(spec.origin)
        (directory / source.name).symlink_to(source)
    return directory


def measure_cold_start() -> dict[str, Any]:
    """`python -X importtime` of each handler module as Lambda imports it: `-S` (no site-packages),
    so only the function's code, the built layer and the runtime's packages are importable (a package
    missing from the layer fails here, as it would on AWS), and `LAMBDA_TASK_ROOT` set, so the X-Ray
    SDK and Powertools take their Lambda code paths (off Lambda the X-Ray SDK builds a sampler with
    its own botocore client, which Lambda never does)."""
    budgets = json.loads((ROOT / "bench/budgets.json").read_text())
    layer = BUILD / "CommonLayer" / "python"
    rows = {}
    with tempfile.TemporaryDirectory() as runtime:
        runtime_packages = runtime_site(Path(runtime))
        for logical_id, (module, directory) in sorted(function_directories().items()):
            rows[logical_id] = cold_start_row(
                budgets, logical_id, module, directory, [directory, layer, runtime_packages]
            )
    layer_kb = directory_kb(BUILD / "CommonLayer")
    return {"functions": rows, "layerKb": layer_kb, "layerBudgetKb": budgets["layerKb"]}


def cold_start_row(
    budgets: dict[str, Any], logical_id: str, module: str, directory: Path, path: list[Path]
) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(entry) for entry in path),
        "LAMBDA_TASK_ROOT": str(directory),
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    samples = []
    for _ in range(3):
        result = subprocess.run(
            [sys.executable, "-S", "-X", "importtime", "-c", f"import {module}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode:
            raise RuntimeError(f"{logical_id}: import {module} failed\n{result.stderr[-3000:]}")
        cumulative = [
            int(line.split("|")[1]) for line in result.stderr.splitlines() if line.rstrip().endswith(f" {module}")
        ]
        samples.append(cumulative[-1] / 1000)
    import_ms = round(statistics.median(samples))
    import_budget = budgets["importMs"].get(logical_id, budgets["importMs"]["default"])
    package_kb = directory_kb(directory)
    return {
        "importMs": import_ms,
        "importBudgetMs": import_budget,
        "packageKb": package_kb,
        "packageBudgetKb": budgets["packageKb"]["default"],
        "withinBudget": import_ms <= import_budget and package_kb <= budgets["packageKb"]["default"],
    }


def statuses(counts: dict[str, int]) -> str:
    return ", ".join(f"{code}: {count}" for code, count in counts.items())


def as_deployed_lines(result: dict[str, Any]) -> list[str]:
    as_deployed = result["asDeployed"]
    throttling = as_deployed["throttling"]
    first, sustained, burst_run = as_deployed["firstEnrollment"], as_deployed["sustained"], as_deployed["burst"]
    memory = as_deployed["memoryDuringLoads"]
    answer, client_view = sustained["answer201"], sustained["enrollmentIncludingRetries"]
    return [
        f"## The stack as `make up` deploys it (API {throttling['ApiThrottleRateLimit']} request/s, burst {throttling['ApiThrottleBurstLimit']})",
        "",
        f"- **First enrollment right after the deploy**: HTTP {first['status']} in **{first['latencyMs']} ms** (build and deploy took {as_deployed['deploySeconds']} s).",
        f"- **{sustained['clients']} clients enrolling distinct contracts for {sustained['windowS']:g} s** (closed loop, a 429 is backed off and sent again): "
        f"{sustained['requests']} answers: **{sustained['answers429']} were 429, {sustained['answers5xx']} were 5xx**, {sustained['clientTimeouts']} client timeouts, "
        f"{sustained['enrolled']} enrolled ({sustained['enrolledPerS']}/s). Latency of a 201 answer: **p50 {answer['p50Ms']} ms, p95 {answer['p95Ms']} ms**; "
        f"of an enrollment from its first request, back-offs included: p50 {client_view['p50Ms']} ms, p95 {client_view['p95Ms']} ms.",
        f"- **Burst of {burst_run['requests']} concurrent enrollments** (each retries 429s like `scripts/api_client.py`): "
        f"{'**all succeeded**' if burst_run['allSucceededWithinDeadline'] else '**not all succeeded**'} within {burst_run['deadlineS']:g} s, "
        f"**{burst_run['answers5xx']} answers 5xx**, answers by status {statuses(burst_run['statuses'])}, {burst_run['retried429']} 429s retried; **all done after {burst_run['timeToAllDoneS']} s**.",
        f"- **Memory during those two loads** (RSS summed over the emulator's process tree every {memory['intervalS']} s): "
        f"peak **{memory['peakTotalMb']} MB** with {memory['workersAtPeak']} worker processes (at most {memory['peakWorkers']}); the emulator's own process at most {memory['peakEmulatorMb']} MB; "
        f"PSS summed (shared pages counted once) peaked at {memory['peakPssTotalMb']} MB.",
        "",
    ]


def floor_lines(result: dict[str, Any]) -> list[str]:
    shape = result["shapeFloor"]
    one_at_a_time = next((row for row in result["api"] if row["concurrency"] == 1 and row["p50Ms"]), None)
    api_line = (
        f"- Through the API at concurrency 1: p50 {one_at_a_time['p50Ms']} ms, **{round(one_at_a_time['p50Ms'] / shape['floor']['p50Ms'], 2)} times the floor**."
        if one_at_a_time
        else "- Through the API at concurrency 1: not measured in this run."
    )
    return [
        "## The floor of the immediate path's shape, measured inside the emulator",
        "",
        f"- The enrolled path of `statemachine/enrollment.asl.json` has {len(shape['lambdaTasks'])} `lambda:invoke` tasks ({', '.join(shape['lambdaTasks'])}).",
        f"- Floor: an EXPRESS state machine of {len(shape['lambdaTasks'])} sequential `lambda:invoke` tasks of a no-op function ({shape['noOpFunction']}), deployed with boto3, "
        f"StartSyncExecution warm, one at a time, {shape['runs']} runs: **p50 {shape['floor']['p50Ms']} ms**, p95 {shape['floor']['p95Ms']} ms.",
        f"- The immediate workflow (`EnrollmentStateMachine`), measured the same way: p50 {shape['immediateWorkflow']['p50Ms']} ms, p95 {shape['immediateWorkflow']['p95Ms']} ms: "
        f"**{shape['immediateOverFloor']} times the floor**.",
        api_line,
        "",
    ]


def markdown(result: dict[str, Any]) -> str:
    floor, shape_floor = result["floor"], result["shapeFloor"]["floor"]["p50Ms"]
    smoke = result["run"]["smoke"]
    lines = [
        f"Benchmark of {result['startedAt']} ({result['machine']}, code {result['code']}), one run"
        + (f"; **a SMOKE RUN, shortened ({smoke}): not the figures of a full `make bench`**" if smoke else "")
        + ".",
        "",
        "Emulator settings: "
        + ", ".join(f"{name}={value}" for name, value in result["emulator"].items())
        + "; each function's reserved concurrency "
        + stack.describe_limits(result.get("reservedConcurrency", {}))
        + ".",
        "",
        *as_deployed_lines(result),
        *floor_lines(result),
        f"## The rest, on the stack redeployed with the template's (AWS) API throttling ({result['throttling']['ApiThrottleRateLimit']} requests/s, burst {result['throttling']['ApiThrottleBurstLimit']})",
        "",
        f"- Before it, the work those loads set off (eventual workflows, payments) took {result['settle']['seconds']} s to finish"
        + ("" if result["settle"]["settled"] else " and **had not finished**: what follows ran beside it")
        + ".",
        f"- Sum of warm direct invocations of the {len(floor['perStepMedianMs']) - 1} immediate-path functions + one empty EXPRESS sync execution (medians; what `make cost` bills): {floor['floorMs']} ms",
        f"- Payment workflow end to end: p50 {result['payment']['p50Ms']} ms, p95 {result['payment']['p95Ms']} ms ({result['payment']['runs']} runs)",
        f"- Hooks: {result['hooks']['fulfilled']}/{result['hooks']['hooks']} fulfilled within 45 s; lateness after due time p50 {result['hooks']['latenessP50S']} s, max {result['hooks']['latenessMaxS']} s"
        + "".join(f"; {contract} still {state}" for contract, state in result["hooks"].get("notFulfilled", {}).items()),
        f"- Memory: before {result['memoryBefore']['totalMb']} MB ({result['memoryBefore']['workers']} workers), peak during the API loads below {result['memoryDuringApiLoads']['peakTotalMb']} MB, "
        f"after {result['memoryAfter']['totalMb']} MB ({result['memoryAfter']['workers']} workers)",
        "",
        "| Concurrency | Requests | Errors | p50 ms | p95 ms | p99 ms | Throughput /s | p50 / floor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["api"]:
        ratio = round(row["p50Ms"] / shape_floor, 2) if row["p50Ms"] else "-"
        lines.append(
            f"| {row['concurrency']} | {row['requests']} | {row['errors']} | {row['p50Ms']} | {row['p95Ms']} | {row['p99Ms']} | {row['throughputPerS']} | {ratio} |"
        )
    lines += [
        "",
        "The floor in the last column is the one of the immediate path's shape above.",
        "",
        "| Function | Import ms (budget) | Package KB (budget) | Within budget |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, row in result["coldStart"]["functions"].items():
        lines.append(
            f"| {name} | {row['importMs']} ({row['importBudgetMs']}) | {row['packageKb']} ({row['packageBudgetKb']}) | {'yes' if row['withinBudget'] else '**no**'} |"
        )
    lines.append(f"\nLayer: {result['coldStart']['layerKb']} KB (budget {result['coldStart']['layerBudgetKb']} KB).")
    lines.append(
        "Import ms: `python -S -X importtime` of the handler module with `LAMBDA_TASK_ROOT` set; only the"
        " function's code, the built layer and boto3 with its dependencies on the path (what Lambda has)."
    )
    return "\n".join(lines) + "\n"


def api_loads(text: str) -> tuple[tuple[int, int], ...]:
    """`1:20,10:30,50:50` -> ((1, 20), (10, 30), (50, 50)): concurrency:requests, one wave each."""
    try:
        loads = tuple((int(c), int(n)) for c, n in (part.split(":") for part in text.split(",") if part.strip()))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected concurrency:requests[,...], got {text!r}") from error
    if not loads or any(c < 1 or n < 1 for c, n in loads):
        raise argparse.ArgumentTypeError(f"expected positive concurrency:requests pairs, got {text!r}")
    return loads


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load-seconds", type=float, default=LOAD_SECONDS, help="the window of the clients' load")
    parser.add_argument("--load-clients", type=int, default=LOAD_CLIENTS, help="concurrent clients")
    parser.add_argument("--burst", type=int, default=BURST, help="enrollments sent at once")
    parser.add_argument(
        "--burst-deadline-seconds",
        type=float,
        default=BURST_DEADLINE_SECONDS,
        help="all must succeed within it",
    )
    parser.add_argument(
        "--floor-runs", type=int, default=FLOOR_ROUNDS, help="timed runs of each floor and of the immediate workflow"
    )
    parser.add_argument(
        "--api-loads",
        type=api_loads,
        default=LOADS,
        help="concurrency:requests waves through the API (default 1:20,10:30,50:50)",
    )
    parser.add_argument("--payment-runs", type=int, default=PAYMENT_RUNS)
    parser.add_argument("--hook-contracts", type=int, default=HOOK_CONTRACTS)
    parser.add_argument("--output-name", default="latest", help="writes bench/results/NAME.json and NAME.md")
    options = parser.parse_args(argv)
    if min(options.load_clients, options.burst, options.floor_runs, options.payment_runs, options.hook_contracts) < 1:
        parser.error("counts must be at least 1")
    return options


def shown(value: Any) -> str:
    """An option's value as it is typed on the command line."""
    if isinstance(value, tuple):
        return ",".join(f"{concurrency}:{count}" for concurrency, count in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_parameters(options: argparse.Namespace) -> dict[str, Any]:
    """The options of this run; `smoke` names those shortened from the defaults (empty for a full run)."""
    defaults = vars(parse_args([]))
    chosen = {name: value for name, value in vars(options).items() if name != "output_name"}
    changed = [
        f"--{name.replace('_', '-')} {shown(value)}" for name, value in chosen.items() if value != defaults[name]
    ]
    return {
        **{name: list(value) if isinstance(value, tuple) else value for name, value in chosen.items()},
        "smoke": ", ".join(changed),
    }


def settle(port: int, outputs: dict[str, str], enrolled: int, seconds: float = 300) -> dict[str, Any]:
    """Wait (at most `seconds`) until what the loads set off has run: every enrolled contract's eventual
    action scheduled by the eventual workflow, and no payment workflow running. Otherwise that backlog
    runs beside the measurements that follow (it kept the hooks below from firing within their wait)."""
    dynamodb, stepfunctions = stack.local_client("dynamodb", port), stack.local_client("stepfunctions", port)
    started = time.monotonic()
    while True:
        scheduled = sum(
            1
            for item in scan_items(dynamodb, outputs["ActionsTableName"])
            if item["actionName"]["S"] == "action1" and item.get("state", {}).get("S") == "scheduled"
        )
        running = stepfunctions.list_executions(
            stateMachineArn=outputs["PaymentStateMachineArn"], statusFilter="RUNNING", maxResults=1
        )["executions"]
        done = scheduled >= enrolled and not running
        if done or time.monotonic() - started > seconds:
            break
        time.sleep(2)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "settled": done,
        "eventualActionsScheduled": scheduled,
        "enrolled": enrolled,
    }


def scan_items(dynamodb: Any, table_name: str) -> list[dict[str, Any]]:
    pages = dynamodb.get_paginator("scan").paginate(TableName=table_name, ConsistentRead=True)
    return [item for page in pages for item in page["Items"]]


def measure_as_deployed(port: int, pid: int, options: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The load figures, on the stack as `make up` deploys it. Returns them and the stack outputs."""
    progress("building and deploying the stack as `make up` does (samconfig local)")
    deploy_started = time.monotonic()
    outputs = stack.up(port, STACK)
    as_deployed: dict[str, Any] = {"deploySeconds": round(time.monotonic() - deploy_started, 1)}
    url, key = api_endpoint(port, outputs)
    as_deployed["firstEnrollment"] = first_enrollment(url, key)
    as_deployed["throttling"] = deployed_throttling(port)
    progress(
        f"first enrollment right after the deploy: {as_deployed['firstEnrollment']}; API throttling {as_deployed['throttling']}"
    )
    accounts = add_bench_accounts(port, outputs, max(BENCH_ACCOUNTS, options.load_clients, options.burst))
    progress(f"{options.load_clients} clients enrolling distinct contracts for {options.load_seconds:g} s")
    with MemorySampler(pid) as during_load:
        load = SustainedLoad(url, key, accounts[: options.load_clients], options.load_seconds)
        as_deployed["sustained"] = load.run()
        progress(f"sustained load: {as_deployed['sustained']}")
        progress(f"a burst of {options.burst} concurrent enrollments (deadline {options.burst_deadline_seconds:g} s)")
        as_deployed["burst"] = burst(url, key, accounts[: options.burst], options.burst_deadline_seconds)
        progress(f"burst: {as_deployed['burst']}")
    as_deployed["memoryDuringLoads"] = during_load.summary()
    progress(f"memory during the loads: {as_deployed['memoryDuringLoads']}")
    return as_deployed, outputs


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    # An interrupted benchmark still stops its emulator (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    port = emulator.free_port()
    progress(f"starting a fresh emulator on port {port}")
    process = emulator.start(port)
    try:
        result: dict[str, Any] = {
            "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{os.cpu_count()} cores",
            "run": run_parameters(options),
            "code": code_version(),
            "emulator": emulator_knobs(process.pid),
            "reservedConcurrency": {
                **stack.LOCAL_RESERVED_CONCURRENCY,
                "every other function": stack.LOCAL_RESERVED_CONCURRENCY_DEFAULT,
            },
        }
        result["memoryBefore"] = memory_mb(process.pid)
        result["asDeployed"], outputs = measure_as_deployed(port, process.pid, options)
        as_deployed = result["asDeployed"]
        enrolled = as_deployed["sustained"]["enrolled"] + as_deployed["burst"]["statuses"].get("201", 0)
        enrolled += as_deployed["firstEnrollment"]["status"] == 201
        progress(f"waiting for the eventual workflows and payments of the {enrolled} enrollments to finish")
        result["settle"] = settle(port, outputs, enrolled)
        progress(f"settled: {result['settle']}")
        progress("redeploying with the template's (AWS) API throttling: the emulator, not the stage, is measured")
        stack.deploy(stack.local_environment(port), STACK, aws_throttling())
        outputs = stack.outputs(stack.local_client("cloudformation", port), STACK)
        result["throttling"] = deployed_throttling(port)
        url, key = api_endpoint(port, outputs)
        progress("warm-up: one enrollment through the API (not counted)")
        post(url, key, {**SEED, "contractId": "WARMUP-1", "contractDraft": LOAD_DRAFT})
        progress(f"floor of the immediate path's shape: {options.floor_runs} runs")
        result["shapeFloor"] = measure_shape_floor(port, outputs, options.floor_runs)
        progress(f"shape floor: {result['shapeFloor']}")
        progress(f"sum of direct invocations: {options.floor_runs} rounds")
        result["floor"] = measure_floor(port, options.floor_runs)
        progress(f"sum of direct invocations = {result['floor']['floorMs']} ms {result['floor']['perStepMedianMs']}")
        progress(f"payment workflow: {options.payment_runs} runs")
        result["payment"] = measure_payment(port, outputs["PaymentStateMachineArn"], options.payment_runs)
        progress(f"hooks: {options.hook_contracts} contracts with one action due 1 offset day later")
        result["hooks"] = measure_hooks(port, outputs, url, key, options.hook_contracts)
        # Load last: what the emulator still has queued after the heaviest level cannot skew the rest.
        with MemorySampler(process.pid) as during_api_loads:
            result["api"] = measure_api(url, key, options.api_loads)
        result["memoryDuringApiLoads"] = during_api_loads.summary()
        result["memoryAfter"] = memory_mb(process.pid)
        progress("import times and package sizes")
        result["coldStart"] = measure_cold_start()
        result["warmDurationsMs"] = warm_durations(result)
        result["seconds"] = round(time.monotonic() - started, 1)
    finally:
        emulator.stop_pid(process.pid)
        emulator.forget(port)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{options.output_name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{options.output_name}.md").write_text(markdown(result))
    print("\n" + markdown(result))
    progress(f"done in {result['seconds']} s: bench/results/{options.output_name}.json, .md")


if __name__ == "__main__":
    main()
