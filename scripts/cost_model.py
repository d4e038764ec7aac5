"""Cost per million enrollments (4 actions: 1 same day, 3 eventual) and per million payment workflows,
from the template and the request counts and item sizes of this code, at AWS list prices.

    python scripts/cost_model.py [--durations bench/results/latest.json] [--json]

Prices: us-east-1 on-demand list prices (PRICES_AS_OF below), with no free tier applied. They are
stated here, not fetched: check them against the AWS pricing pages before you rely on a number.
Lambda durations come from a benchmark result file when one is given (warm durations measured on
the local emulator, a stand-in for AWS), otherwise from the defaults below.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src/layers/common"), str(ROOT / "src/enrollment")]

from sam_template import template  # noqa: E402

from commonlib.validation import parse  # noqa: E402
from enrollment import model, store  # noqa: E402
from enrollment.eventual import hooks  # noqa: E402
from enrollment.immediate import offers, publisher  # noqa: E402

PRICES_AS_OF = "2025-01 list prices, us-east-1, not re-verified on 2026-11-22"
PRICES = {
    "apigateway_rest_per_million": 3.50,
    "apigateway_http_per_million": 1.00,
    "lambda_request_per_million": 0.20,
    "lambda_gb_second": {"x86_64": 0.0000166667, "arm64": 0.0000133334},
    "sfn_express_request_per_million": 1.00,
    "sfn_express_gb_second": 0.00001667,  # billed at the state machine's memory, 64 MB minimum
    "sfn_standard_per_1000_transitions": 0.025,
    "dynamodb_write_request_unit_per_million": 0.625,
    "dynamodb_read_request_unit_per_million": 0.125,
    "kinesis_on_demand_gb_in": 0.08,
    "kinesis_on_demand_gb_out": 0.04,
    "scheduler_invocation_per_million": 1.00,
    "cloudwatch_logs_ingest_per_gb": 0.50,
    "sqs_per_million": 0.40,
    "xray_traces_recorded_per_million": 5.00,
}
DEFAULT_WARM_DURATION_MS = 40  # per Lambda invocation when no measurement is given
EXPRESS_MEMORY_GB = 0.0625
# CloudWatch Logs bytes per invocation, as the functions write them (JSON log format).
SYSTEM_LOG_BYTES = 750  # START, END and REPORT, sent at a system log level of INFO or below
APPLICATION_LOG_BYTES = 650  # the one structured INFO line each handler writes (Powertools Logger)
EMF_LOG_BYTES = 450  # one Powertools Metrics (EMF) line, written whatever the log level
METRIC_FUNCTIONS = ("EnrollmentApiFunction", "CommitEnrollmentFunction")  # the ones that add a metric
# X-Ray: the immediate run (API, Lambda, EXPRESS and its steps share one trace), the stream consumer
# with the eventual run, and each hook's invocation.
TRACES_PER_ENROLLMENT = 5
XRAY_SAMPLED = 0.05  # the default sampling rule beyond its first request each second


@dataclass
class Line:
    service: str
    what: str
    usd_per_million: float


@dataclass
class Model:
    lines: list[Line] = field(default_factory=list)

    def add(self, service: str, what: str, usd_per_million: float) -> None:
        self.lines.append(Line(service, what, usd_per_million))

    def by_service(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for line in self.lines:
            totals[line.service] = totals.get(line.service, 0.0) + line.usd_per_million
        return dict(sorted(totals.items(), key=lambda item: -item[1]))

    @property
    def total(self) -> float:
        return sum(line.usd_per_million for line in self.lines)


def attribute_bytes(value: Any) -> int:
    """Size of one attribute value by DynamoDB's rules: strings by UTF-8 length, numbers about one byte
    per two significant digits plus one, maps and lists 3 bytes plus 1 per element (and map keys)."""
    if isinstance(value, str):
        return len(value.encode())
    if value is None or isinstance(value, bool):
        return 1
    if isinstance(value, int | float | Decimal):
        digits = str(abs(Decimal(str(value)))).replace(".", "").strip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if isinstance(value, dict):
        return 3 + sum(len(key.encode()) + attribute_bytes(item) + 1 for key, item in value.items())
    if isinstance(value, list | tuple):
        return 3 + sum(attribute_bytes(item) + 1 for item in value)
    raise TypeError(f"no DynamoDB size for {type(value).__name__}")


def item_bytes(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + attribute_bytes(value) for name, value in item.items())


def write_units(item: dict[str, Any]) -> int:
    """Write request units of one write of `item`: 1 per KB, rounded up."""
    return max(1, math.ceil(item_bytes(item) / 1024))


def function_settings() -> dict[str, tuple[float, str]]:
    """(memory GB, architecture) of each function, from template.yaml."""
    document = template()
    globals_ = document["Globals"]["Function"]
    settings = {}
    for logical_id, body in document["Resources"].items():
        if body["Type"] != "AWS::Serverless::Function":
            continue
        properties = body["Properties"]
        memory = properties.get("MemorySize", globals_["MemorySize"])
        architecture = properties.get("Architectures", globals_["Architectures"])[0]
        settings[logical_id] = (memory / 1024, architecture)
    return settings


def sample_items() -> dict[str, int]:
    """Write units of the items one enrollment of the seed's offer writes, built by the domain code
    itself, each at its largest (an update is billed on the larger of the item before and after)."""
    request = parse(model.EnrollmentRequest, json.loads((ROOT / "events/enrollment/input.json").read_text()))
    now = datetime(2026, 11, 22, tzinfo=UTC)
    stamp = now.isoformat()
    immediate, eventual = model.split_actions(request, now)
    payments = store.storable(model.payment_schedule(request, now))
    correlation_id = "0" * 36
    offer = {
        **request.model_dump(),
        "correlationId": correlation_id,
        "enrollmentDate": stamp,
        "immediateActions": immediate,
        "eventualActions": eventual,
        "payments": payments,
    }
    execution_arn = f"arn:aws:states:us-east-1:123456789012:express:EnrollmentStateMachine:{'0' * 36}:{'0' * 36}"
    offer_item = {
        **offers.offer_item(offer, execution_arn, now),
        "status": "enrolled",
        "enrolledAt": stamp,
        "updatedAt": stamp,
        "rulesVersion": "2026-11-01.1",
        "eventualWorkflow": {"executionName": f"{request.contractId}-{'0' * 16}", "startedAt": stamp},
    }
    # The UCP: the account's item (checked by the commit) and the contract's (created by it).
    account_item = {"accountId": request.accountId, "recordId": "account", "status": "active", "flags": []}
    contract_item = {
        "accountId": request.accountId,
        "recordId": f"contract#{request.contractId}",
        "status": "enrolled",
        "enrolledAt": stamp,
        "payments": payments,
        "correlationId": correlation_id,
    }
    action = eventual[-1]
    action_item = {
        "contractId": request.contractId,
        "actionName": action["name"],
        "offset": action["offset"],
        "dueAt": action["dueAt"],
        "data": store.storable(action["data"]),
        "state": "fulfilled",
        "correlationId": correlation_id,
        "scheduledAt": stamp,
        "scheduleName": hooks.schedule_name(request.contractId, action["name"]),
        "enrollmentDate": stamp,
        "claimToken": "0" * 32,  # uuid4().hex
        "claimedAt": stamp,
        "attempts": 1,
        "completedAt": stamp,
        "trigger": "hook",
        "result": {"effect": "interest rate changed", "newRate": Decimal("0.0499")},
    }
    # The largest audit items: the commit's, carrying the run's earlier steps, and the eventual run's,
    # listing its hooks.
    steps = [
        store.step("receive-offer", stamp, "received"),
        store.step("verify-customer", stamp, "verified"),
        store.step("rules-lab", stamp, "eligible", "2026-11-01.1"),
    ]
    audit_item = store.audit_entry(
        request.contractId, "enroll", "enrolled: UCP updated, payments set", correlation_id, now, "2026-11-01.1",
        {"payments": len(payments), "actions": len(immediate) + len(eventual), "steps": steps},
    )  # fmt: skip
    planned = [{"action": a["name"], "dueAt": a["dueAt"], "fireAt": f"at({a['dueAt'][:19]})"} for a in eventual]
    eventual_audit_item = store.audit_entry(
        request.contractId, "eventual-workflow", f"started: {len(eventual)} hooks to schedule", correlation_id, now,
        details={"hooks": planned},
    )  # fmt: skip
    record = publisher.stream_record(offer, stamp)
    return {
        "offer": write_units(offer_item),
        "account": write_units(account_item),
        "contract": write_units(contract_item),
        "action": write_units(action_item),
        "audit": max(write_units(audit_item), write_units(eventual_audit_item)),
        "stream_record_bytes": len(json.dumps(record)),
        "same_day_actions": len(immediate),
        "eventual_actions": len(eventual),
    }


def measured_durations(path: Path | None) -> dict[str, float]:
    if path is None or not path.exists():
        return {}
    return json.loads(path.read_text()).get("warmDurationsMs", {})


@dataclass(frozen=True)
class Design:
    """What an enrollment is billed for. The defaults are this template and code; each other value is
    a lever (see LEVERS) or a dropped requirement (see REQUIREMENT_DROPS), priced by the same model."""

    memory_mb: int | None = None  # every function at this memory instead of the template's
    http_api: bool = False  # an HTTP API instead of the REST API
    api_starts_execution: bool = False  # API Gateway starts the EXPRESS run: no EnrollmentApiFunction
    scheduler_sdk: bool = False  # the async workflow creates hooks itself: no ScheduleHookFunction
    kinesis_sdk: bool = False  # the immediate workflow puts the stream record itself: no PublishEnrollmentFunction
    eventual_audit: bool = True  # audit entries for the eventual workflow, its hooks and its actions
    scheduled_records: bool = True  # each eventual action recorded `scheduled` before its hook exists


CURRENT = Design()
# (what, design, whether the emulator runs it and why not)
LEVERS: list[tuple[str, Design, str]] = [
    ("128 MB functions (they wait on AWS calls; slower cold starts)", Design(memory_mb=128), "yes"),
    (
        "An HTTP API instead of REST (no API keys or usage plans)",
        Design(http_api=True),
        "no: SAM `HttpApi` creates no routes",
    ),
    (
        "API Gateway starting the EXPRESS run itself, no API function",
        Design(api_starts_execution=True),
        "no: no API Gateway to Step Functions integration",
    ),
    (
        "Hooks created by the Scheduler SDK integration, no ScheduleHook function",
        Design(scheduler_sdk=True),
        "no: no `aws-sdk:scheduler`",
    ),
    (
        "The stream record put by the Kinesis SDK integration, no PublishEnrollment function",
        Design(kinesis_sdk=True),
        "yes, but no fault can be injected after its write there",
    ),
]
ALL_LEVERS = Design(memory_mb=128, http_api=True, api_starts_execution=True, scheduler_sdk=True, kinesis_sdk=True)
# Requirements, dropped on top of every lever.
REQUIREMENT_DROPS: list[tuple[str, Design]] = [
    (
        "No audit entries for the eventual workflow, its hooks and actions (the action items are their record)",
        replace(ALL_LEVERS, eventual_audit=False),
    ),
    (
        "No `scheduled` record per eventual action either",
        replace(ALL_LEVERS, eventual_audit=False, scheduled_records=False),
    ),
]


def enrollment_model(durations: dict[str, float], design: Design = CURRENT) -> Model:
    costs, sizes, functions = Model(), sample_items(), function_settings()
    per_million = 1_000_000

    if design.http_api:
        costs.add("API Gateway", "1 HTTP API request", PRICES["apigateway_http_per_million"])
    else:
        costs.add("API Gateway", "1 REST request", PRICES["apigateway_rest_per_million"])

    # Lambda: the immediate path and the eventual path, one invocation each unless noted.
    invocations = {
        "EnrollmentApiFunction": 1, "AcceptOfferFunction": 1, "VerifyCustomerFunction": 1, "RulesLabFunction": 1,
        "CommitEnrollmentFunction": 1, "PublishEnrollmentFunction": 1, "FulfillActionFunction": 4,
        "DataLambdaFunction": 1, "ScheduleHookFunction": 3,
    }  # fmt: skip
    if design.api_starts_execution:
        del invocations["EnrollmentApiFunction"]
    if design.scheduler_sdk:
        del invocations["ScheduleHookFunction"]
    if design.kinesis_sdk:
        del invocations["PublishEnrollmentFunction"]
    for logical_id, count in invocations.items():
        memory_gb, architecture = functions[logical_id]
        if design.memory_mb is not None:
            memory_gb = design.memory_mb / 1024
        seconds = durations.get(logical_id, DEFAULT_WARM_DURATION_MS) / 1000
        billed = math.ceil(seconds * 1000) / 1000
        costs.add("Lambda", f"{logical_id} x{count} requests", count * PRICES["lambda_request_per_million"])
        gb_seconds = count * memory_gb * billed
        costs.add(
            "Lambda",
            f"{logical_id} x{count} duration",
            gb_seconds * PRICES["lambda_gb_second"][architecture] * per_million,
        )

    express_seconds = durations.get("EnrollmentStateMachine", 0.3 * 1000) / 1000
    costs.add("Step Functions", "EnrollmentStateMachine (EXPRESS) request", PRICES["sfn_express_request_per_million"])
    costs.add(
        "Step Functions",
        "EnrollmentStateMachine duration",
        math.ceil(express_seconds * 10) / 10 * EXPRESS_MEMORY_GB * PRICES["sfn_express_gb_second"] * per_million,
    )
    costs.add(
        "Step Functions", "EnrollmentAsyncStateMachine (EXPRESS) request", PRICES["sfn_express_request_per_million"]
    )
    costs.add(
        "Step Functions",
        "EnrollmentAsyncStateMachine duration",
        0.2 * EXPRESS_MEMORY_GB * PRICES["sfn_express_gb_second"] * per_million,
    )

    offer, account, contract = sizes["offer"], sizes["account"], sizes["contract"]
    action, audit = sizes["action"], sizes["audit"]
    same_day, eventual = sizes["same_day_actions"], sizes["eventual_actions"]
    actions = same_day + eventual
    # One audit item per run: the commit's carries received, verified and eligible; the eventual run's
    # carries the publication it consumed and lists its hooks; each action's fulfilment is a run of its own.
    committed_audit = 1
    audit_outside = (1 + actions) if design.eventual_audit else 0
    audit_what = f"the eventual run (with the publication), {actions} fulfilments" if design.eventual_audit else "none"
    scheduled = eventual if design.scheduled_records else 0
    writes = {
        "Offers put (received)": offer,
        "Offers update (verified)": offer,
        # The eventual actions' items are created when their hooks are scheduled, outside the transaction.
        f"commit transaction: offer + UCP account check + UCP contract + {same_day} same-day action"
        f" + {committed_audit} audit, x2 for a transaction": 2
        * (offer + account + contract + same_day * action + committed_audit * audit),
        "Offers update (eventual workflow started)": offer,
        f"actions: {scheduled} x created scheduled + {actions} x fulfilled": (scheduled + actions) * action,
        f"audit appends outside the commit ({audit_what})": audit_outside * audit,
        # The reconciler's indexes. An index entry under 1 KB is 1 WRU; an update that changes its key
        # (`state`) deletes one entry and puts another: 2.
        f"Actions index by state and due time: {actions} actions x (1 created + 2 claimed + 2 fulfilled)": 5 * actions,
        "Offers index of the offers marked for the reconciler: the commit's mark, its removal": 2,
        "Offers update (the reconciler unmarks the settled offer)": offer,
    }
    for what, units in writes.items():
        costs.add("DynamoDB", f"{what}: {units} WRU", units * PRICES["dynamodb_write_request_unit_per_million"])
    costs.add("DynamoDB", "UCP read (verify, consistent): 1 RRU", PRICES["dynamodb_read_request_unit_per_million"])
    costs.add(
        "DynamoDB",
        "Offers read (commit: when the run's earlier steps were done, consistent): 1 RRU",
        PRICES["dynamodb_read_request_unit_per_million"],
    )
    # Each performance reads the action's item, then the offer (the action's data and the account, which
    # hooks do not carry), both consistent: 1 RRU each for items under 4 KB.
    costs.add(
        "DynamoDB",
        f"fulfilment reads, {actions} performances x (action item + offer): {2 * actions} RRU",
        2 * actions * PRICES["dynamodb_read_request_unit_per_million"],
    )
    # The reconciler reads the marked offer once, and each eventual action once or twice as it comes due
    # (its index entry, at most 1 RRU, and its offer, consistent): an upper bound.
    reconciler_reads = 1 + 2 * 2 * eventual
    costs.add(
        "DynamoDB",
        f"reconciler reads: the marked offer, {eventual} eventual actions coming due x 2 runs x (entry + offer):"
        f" {reconciler_reads} RRU",
        reconciler_reads * PRICES["dynamodb_read_request_unit_per_million"],
    )

    record_gb = sizes["stream_record_bytes"] / 1024**3
    kinesis_per_gb = PRICES["kinesis_on_demand_gb_in"] + PRICES["kinesis_on_demand_gb_out"]
    what = f"1 record of {sizes['stream_record_bytes']} B in and out (stream-hours not included)"
    costs.add("Kinesis", what, record_gb * kinesis_per_gb * per_million)
    costs.add("Scheduler", "3 hook invocations", 3 * PRICES["scheduler_invocation_per_million"])
    log_level = template()["Parameters"]["LogLevel"]["Default"]
    system_level = template()["Mappings"]["LambdaLogLevels"][log_level]["System"]
    per_invocation = (SYSTEM_LOG_BYTES if system_level in ("DEBUG", "INFO") else 0) + (
        APPLICATION_LOG_BYTES if log_level in ("DEBUG", "INFO") else 0
    )
    metric_lines = sum(name in invocations for name in METRIC_FUNCTIONS)
    log_bytes = sum(invocations.values()) * per_invocation + metric_lines * EMF_LOG_BYTES
    costs.add(
        "CloudWatch Logs",
        f"{sum(invocations.values())} invocations at LogLevel {log_level} (system logs {system_level}),"
        f" {metric_lines} metric lines: {log_bytes} B",
        log_bytes / 1024**3 * PRICES["cloudwatch_logs_ingest_per_gb"] * per_million,
    )
    costs.add(
        "X-Ray",
        f"{TRACES_PER_ENROLLMENT} traces, {XRAY_SAMPLED:.0%} sampled",
        TRACES_PER_ENROLLMENT * XRAY_SAMPLED * PRICES["xray_traces_recorded_per_million"],
    )
    return costs


def payment_model(durations: dict[str, float]) -> Model:
    costs, functions = Model(), function_settings()
    transitions = 6  # start, NormalizeInput, 3 tasks, PaymentAccepted (as billed: state entries)
    costs.add(
        "Step Functions",
        f"mock-payment-workflow (STANDARD): {transitions} transitions",
        transitions * PRICES["sfn_standard_per_1000_transitions"] * 1000,
    )
    for logical_id in ("CreateOrderFunction", "HoldPaymentFunction", "AcceptPaymentFunction"):
        memory_gb, architecture = functions[logical_id]
        seconds = durations.get(logical_id, DEFAULT_WARM_DURATION_MS) / 1000
        costs.add(
            "Lambda",
            f"{logical_id} request + duration",
            PRICES["lambda_request_per_million"]
            + memory_gb * seconds * PRICES["lambda_gb_second"][architecture] * 1_000_000,
        )
    costs.add(
        "DynamoDB", "1 put + 2 updates of a <1 KB order: 3 WRU", 3 * PRICES["dynamodb_write_request_unit_per_million"]
    )
    return costs


def report(title: str, costs: Model) -> str:
    lines = [f"{title}: ${costs.total:,.2f} per million", "", "| Service | USD per million |", "| --- | ---: |"]
    lines += [f"| {service} | {usd:,.2f} |" for service, usd in costs.by_service().items()]
    lines += ["", "| Line item | USD per million |", "| --- | ---: |"]
    lines += [f"| {line.service}: {line.what} | {line.usd_per_million:,.2f} |" for line in costs.lines]
    return "\n".join(lines)


LEVERS_DOCUMENT = "docs/performance-and-cost.md"  # where `make cost-readme` writes the levers block
LEVERS_START, LEVERS_END = "<!-- cost-levers -->\n", "\n<!-- /cost-levers -->"


def levers_report(durations: dict[str, float]) -> str:
    """The levers left and the requirements below them, each priced by this model: the tables the
    docs/performance-and-cost.md shows (tests/unit/test_cost_model.py compares them)."""
    current = enrollment_model(durations).total
    lines = [
        f"Levers left, from ${current:,.2f}:",
        "",
        "| Lever | Saves (USD per million) | Runs on the emulator |",
        "| --- | ---: | --- |",
    ]
    for what, design, emulator in LEVERS:
        lines.append(f"| {what} | {current - enrollment_model(durations, design).total:,.2f} | {emulator} |")
    lines.append(
        f"| **All {len(LEVERS)} together** | **{current - enrollment_model(durations, ALL_LEVERS).total:,.2f}** | no |"
    )
    lines += [
        "",
        "| Then also dropping a requirement | USD per million |",
        "| --- | ---: |",
        f"| Nothing dropped (every lever above) | {enrollment_model(durations, ALL_LEVERS).total:,.2f} |",
    ]
    lines += [f"| {what} | {enrollment_model(durations, design).total:,.2f} |" for what, design in REQUIREMENT_DROPS]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=Path, default=ROOT / "bench/results/latest.json")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--readme", action="store_true", help=f"rewrite {LEVERS_DOCUMENT}'s levers block and stop")
    args = parser.parse_args()
    durations = measured_durations(args.durations)
    if args.readme:
        document = ROOT / LEVERS_DOCUMENT
        head, rest = document.read_text().split(LEVERS_START, 1)
        _, tail = rest.split(LEVERS_END, 1)
        document.write_text(f"{head}{LEVERS_START}{levers_report(durations)}{LEVERS_END}{tail}")
        return
    enrollments, payments = enrollment_model(durations), payment_model(durations)
    if args.json:
        summary = {
            "pricesAsOf": PRICES_AS_OF,
            "enrollmentPerMillion": round(enrollments.total, 2),
            "enrollmentByService": {service: round(usd, 2) for service, usd in enrollments.by_service().items()},
            "paymentWorkflowPerMillion": round(payments.total, 2),
            "leversSaving": {
                what: round(enrollments.total - enrollment_model(durations, design).total, 2)
                for what, design, _ in LEVERS
            },
            "withEveryLever": round(enrollment_model(durations, ALL_LEVERS).total, 2),
            "withRequirementsDropped": {
                what: round(enrollment_model(durations, design).total, 2) for what, design in REQUIREMENT_DROPS
            },
        }
        print(json.dumps(summary, indent=2))
        return
    source = (
        f"measured durations from {args.durations}"
        if durations
        else f"{DEFAULT_WARM_DURATION_MS} ms per invocation (no measurement given)"
    )
    print(f"Prices: {PRICES_AS_OF}; Lambda durations: {source}.\n")
    print(report("Enrollment with 4 actions (1 same day, 3 hooks), PaymentDestination=none", enrollments))
    print()
    print()
    print(levers_report(durations))
    print()
    print(report("Mock payment workflow", payments))


if __name__ == "__main__":
    main()
