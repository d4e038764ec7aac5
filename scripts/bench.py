"""The benchmark behind `make bench`: a fresh emulator, the stack deployed, and in one run:

- the floor the emulator imposes on one enrollment: warm direct invocations of each function on the
  immediate path (median each, summed) plus one empty EXPRESS sync execution;
- the immediate enrollment through the API at concurrency 1, 10 and 50 (p50/p95/p99, throughput,
  errors) and the ratio p50 / floor;
- the payment workflow end to end, and how late hooks fire after their due time;
- the memory of the emulator and its workers before and after;
- import time and package sizes per function, against bench/budgets.json: each handler module is
  imported as Lambda imports it (see `measure_cold_start`).

Writes bench/results/latest.json and bench/results/latest.md. Timings are medians of this run on this
machine; compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src/layers/common")]

import emulator  # noqa: E402
import stack  # noqa: E402

from tests.support.template import template  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BUILD = ROOT / ".aws-sam" / "build"
SEED = json.loads((ROOT / "events/enrollment/input.json").read_text())
STACK = "bench-stack"
LOADS = ((1, 20), (10, 30), (50, 50))  # (concurrency, requests): one wave at 50
HOOK_CONTRACTS = 5
# Load contracts keep one same-day action and one far-future action (300 days, 15 minutes at the local
# 3 s per day), so hooks do not fire while latency is being measured; hook lateness is measured apart.
LOAD_DRAFT = {"List": [{"name": "action2", "offset": 0}, {"name": "action1", "offset": 300}]}
HOOK_DRAFT = {"List": [{"name": "action100", "offset": 1}]}
FLOOR_ROUNDS = 15
PAYMENT_RUNS = 10


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of the emulator and of every other process in its process group."""
    total, workers, emulator_rss = 0, 0, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pid:
                continue
            rss_kb = int(re.search(r"VmRSS:\s+(\d+)", (entry / "status").read_text()).group(1))
        except (OSError, AttributeError, ProcessLookupError):
            continue
        total += rss_kb
        if int(entry.name) == pid:
            emulator_rss = rss_kb
        else:
            workers += 1
    return {"emulatorMb": round(emulator_rss / 1024, 1), "totalMb": round(total / 1024, 1), "workers": workers}


def post(url: str, key: str, body: dict[str, Any]) -> tuple[float, int]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")  # noqa: S310 - local
    request.add_header("x-api-key", key)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
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
    """The API's throttling at the template's (AWS) defaults, not samconfig `local`'s: the benchmark measures
    what the emulator does at concurrency 10 and 50, where the local limits would answer most requests 429."""
    parameters = template()["Parameters"]
    return [f"{name}={parameters[name]['Default']}" for name in ("ApiThrottleRateLimit", "ApiThrottleBurstLimit")]


def measure_floor(port: int) -> dict[str, Any]:
    """Replay the immediate path's steps as direct invocations, then an empty EXPRESS execution."""
    lambda_client, stepfunctions = stack.local_client("lambda", port), stack.local_client("stepfunctions", port)
    samples: dict[str, list[float]] = {}
    for round_number in range(FLOOR_ROUNDS + 1):  # round 0 starts the workers and is not counted
        contract = f"FLOOR-{round_number}"
        execution = f"arn:aws:states:us-east-1:000000000000:execution:EnrollmentStateMachine:{contract}"
        steps: list[tuple[str, float]] = []
        elapsed, accepted = invoke(
            lambda_client,
            "AcceptOffer",
            {
                "input": {**SEED, "contractId": contract},
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
        timed(lambda: stepfunctions.start_sync_execution(stateMachineArn=empty, input="{}"))[0]
        for _ in range(FLOOR_ROUNDS)
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
    one_at_a_time = next(row for row in result["api"] if row["concurrency"] == 1)["p50Ms"]
    durations["EnrollmentApiFunction"] = durations["EnrollmentStateMachine"] = one_at_a_time
    return durations


def measure_api(url: str, key: str) -> list[dict[str, Any]]:
    results = []
    for concurrency, count in LOADS:
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


def measure_payment(port: int, state_machine_arn: str) -> dict[str, Any]:
    stepfunctions = stack.local_client("stepfunctions", port)
    durations = []
    for index in range(PAYMENT_RUNS):
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
        "runs": PAYMENT_RUNS,
        "p50Ms": round(statistics.median(durations), 1),
        "p95Ms": round(percentile(durations, 0.95), 1),
    }


def measure_hooks(port: int, outputs: dict[str, str], url: str, key: str) -> dict[str, Any]:
    """How late hooks fire: a few contracts with one action due 1 offset day after enrollment."""
    contracts = [f"HOOK-{index}" for index in range(HOOK_CONTRACTS)]
    for contract in contracts:
        post(url, key, {**SEED, "contractId": contract, "contractDraft": HOOK_DRAFT})
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
        "note": "the emulator's scheduler checks every 10 s",
    }


def function_directories() -> dict[str, tuple[str, Path]]:
    from tests.support.template import template

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


def markdown(result: dict[str, Any]) -> str:
    floor = result["floor"]
    lines = [
        f"Benchmark of {result['startedAt']} ({result['machine']}), one run, medians:",
        "",
        f"- Floor (warm direct invocations of the {len(floor['perStepMedianMs']) - 1} immediate-path functions + one empty EXPRESS sync execution): **{floor['floorMs']} ms**",
        f"- Payment workflow end to end: p50 {result['payment']['p50Ms']} ms, p95 {result['payment']['p95Ms']} ms ({result['payment']['runs']} runs)",
        f"- Hooks: {result['hooks']['fulfilled']}/{result['hooks']['hooks']} fired; lateness after due time p50 {result['hooks']['latenessP50S']} s, max {result['hooks']['latenessMaxS']} s",
        f"- Memory: before {result['memoryBefore']['totalMb']} MB ({result['memoryBefore']['workers']} workers), after {result['memoryAfter']['totalMb']} MB ({result['memoryAfter']['workers']} workers)",
        "",
        "| Concurrency | Requests | Errors | p50 ms | p95 ms | p99 ms | Throughput /s | p50 / floor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["api"]:
        ratio = round(row["p50Ms"] / floor["floorMs"], 2) if row["p50Ms"] else "-"
        lines.append(
            f"| {row['concurrency']} | {row['requests']} | {row['errors']} | {row['p50Ms']} | {row['p95Ms']} | {row['p99Ms']} | {row['throughputPerS']} | {ratio} |"
        )
    lines += [
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


def main() -> None:
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
        }
        result["memoryBefore"] = memory_mb(process.pid)
        progress("building and deploying the stack")
        outputs = stack.up(port, STACK, aws_throttling())
        key = stack.local_client("apigateway", port).get_api_key(
            apiKey=outputs["EnrollmentApiKeyId"], includeValue=True
        )["value"]
        url = f"{outputs['EnrollmentApiUrl']}/enrollments"
        progress("warm-up: one enrollment through the API (not counted)")
        post(url, key, {**SEED, "contractId": "WARMUP-1"})
        progress(f"floor: {FLOOR_ROUNDS} rounds of direct invocations")
        result["floor"] = measure_floor(port)
        progress(f"floor = {result['floor']['floorMs']} ms {result['floor']['perStepMedianMs']}")
        progress(f"payment workflow: {PAYMENT_RUNS} runs")
        result["payment"] = measure_payment(port, outputs["PaymentStateMachineArn"])
        progress(f"hooks: {HOOK_CONTRACTS} contracts with one action due 1 offset day later")
        result["hooks"] = measure_hooks(port, outputs, url, key)
        # Load last: what the emulator still has queued after the heaviest level cannot skew the rest.
        result["api"] = measure_api(url, key)
        result["memoryAfter"] = memory_mb(process.pid)
        progress("import times and package sizes")
        result["coldStart"] = measure_cold_start()
        result["warmDurationsMs"] = warm_durations(result)
        result["seconds"] = round(time.monotonic() - started, 1)
    finally:
        emulator.stop_pid(process.pid)
        emulator.forget(port)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "latest.md").write_text(markdown(result))
    print("\n" + markdown(result))
    progress(f"done in {result['seconds']} s: bench/results/latest.json, bench/results/latest.md")


if __name__ == "__main__":
    main()
