"""50 concurrent clients over distinct contracts for a bounded time: no 5xx, and an audit trail whose
counts match the answers.

All 50 clients start at once and each sends its next request as soon as it has the answer to the
last, for the window. The local stack runs at most 10 enrollments at once (EnrollmentApi's reserved
concurrency, scripts/stack.py) and most steps at most 2 calls at once, so many attempts are answered 429
and retried by the client the way an AWS SDK retries them (scripts/api_client.py), and throttled steps
are retried by the state machine; a request still throttled when the window closes counts as a 429.
Every answer must be a 201 or a 429: a 201 is one enrollment, audited once at each step and published
once; a 429 wrote nothing anywhere.

Why the bounds: the emulator runs each concurrent call of a function in a worker process it starts on
demand, about 0.8 CPU-seconds each. Unbounded, 50 clients start workers faster than 2 cores run
them, and answers turn into 500s and timeouts (docs/reliability.md, "Local capacity"). The same
cascade follows when another heavy job shares the 2 cores, which is why this test, marked `load`, runs
while no other test does.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import stack

from enrollment.store import expand
from tests.integration.conftest import EnrollmentApi, LocalStack
from tests.support.enrollment import HttpAnswer, post, scan, stream_records
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.load]
SEED = json.loads((Path(__file__).resolve().parents[2] / "events/enrollment/input.json").read_text())
CLIENTS = 50
WINDOW_SECONDS = 30  # about 130 enrollments on a quiet 2-core machine, with all 50 clients in flight
CLIENT_TIMEOUT_SECONDS = 60  # longer than the API's own 29 s: a slow answer shows as the API's, not ours
# Same-day actions only: the load is the immediate path plus the stream consumer, no hooks.
DRAFT = {"List": [{"name": "action2", "offset": 0}]}


def offer(contract_id: str, account_id: str) -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    body.update(contractId=contract_id, accountId=account_id, contractDraft=copy.deepcopy(DRAFT))
    return body


def add_customers(local_stack: LocalStack) -> list[str]:
    """One active customer per client, so that the clients do not all update one UCP item."""
    return stack.add_active_accounts(
        local_stack.client("dynamodb"), local_stack.outputs["UcpTableName"], "LOAD-ACCOUNT", CLIENTS
    )


class Clients:
    """Closed-loop clients: each sends its next request as soon as it has the answer to the last one."""

    def __init__(self, url: str, api_key: str, accounts: list[str]) -> None:
        self.url, self.api_key, self.accounts = url, api_key, accounts
        self.answers: dict[str, HttpAnswer | BaseException] = {}
        self.lock = threading.Lock()
        self.in_flight = self.peak_in_flight = 0

    def run(self, number: int, window_ends: float) -> None:
        sent = 0
        while time.monotonic() < window_ends:
            contract_id = f"LOAD-{number:02d}-{sent}"
            with self.lock:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                answer: HttpAnswer | BaseException = post(
                    self.url,
                    offer(contract_id, self.accounts[number]),
                    self.api_key,
                    timeout=CLIENT_TIMEOUT_SECONDS,
                    retry_throttled_for=max(0.0, window_ends - time.monotonic()),
                )
            except Exception as error:  # a client timeout or a dropped connection is a failure too
                answer = error
            with self.lock:
                self.in_flight -= 1
                self.answers[contract_id] = answer
            sent += 1


def test_fifty_concurrent_clients_get_no_5xx_and_every_answer_is_audited(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    accounts = add_customers(local_stack)
    # Not counted: one enrollment first, so that the clients do not start on functions that have never run
    # (this test may be the session's first, and every cold step then starts inside the first burst).
    warmup = post(enrollment_api.url, offer("LOAD-WARMUP", accounts[0]), enrollment_api.api_key)
    assert warmup.status == 201, warmup
    clients = Clients(enrollment_api.url, enrollment_api.api_key, accounts)
    window_ends = time.monotonic() + WINDOW_SECONDS
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        for running in [pool.submit(clients.run, number, window_ends) for number in range(CLIENTS)]:
            running.result()

    answers = clients.answers
    statuses = Counter(a.status if isinstance(a, HttpAnswer) else type(a).__name__ for a in answers.values())
    retried = sum(a.throttled for a in answers.values() if isinstance(a, HttpAnswer))
    print(
        f"{len(answers)} requests, {retried} answers of 429 retried, peak {clients.peak_in_flight} in flight: {statuses}"
    )
    failures = {c: a for c, a in answers.items() if isinstance(a, BaseException) or a.status >= 500}
    assert not failures, f"{len(failures)} of {len(answers)} requests failed: {list(failures.items())[:5]}"
    assert set(statuses) <= {201, 429}, statuses
    assert statuses[201] > 0, statuses
    assert clients.peak_in_flight == CLIENTS, clients.peak_in_flight

    # Every 201 is one enrollment, audited once at each step, published once, picked up once.
    enrolled = {c for c, a in answers.items() if a.status == 201}
    throttled = set(answers) - enrolled
    offers = {o["OfferId"]: o for o in scan(local_stack.client("dynamodb"), local_stack.outputs["OffersTableName"])}
    assert {c for c in enrolled if offers.get(c, {}).get("status") == "enrolled"} == enrolled
    published = Counter(
        r["contractId"]
        for r in stream_records(local_stack.client("kinesis"), local_stack.outputs["EnrollmentStreamName"])
        if r.get("contractId") in enrolled
    )
    assert published == dict.fromkeys(enrolled, 1)

    def audit_counts() -> Counter[str]:
        items = scan(local_stack.client("dynamodb"), local_stack.outputs["AuditTableName"])
        return Counter(entry["step"] for item in items if item["contractId"] in enrolled for entry in expand(item))

    expected = {"receive-offer", "verify-customer", "rules-lab", "enroll", "publish", "action:action2"}
    counts = wait_until(
        lambda: (c := audit_counts()) and c["eventual-workflow"] == len(enrolled) and c,
        120,
        "the stream consumer to start every enrollment's eventual workflow",
        interval=2,
    )
    for step in expected | {"eventual-workflow"}:
        assert counts[step] == len(enrolled), (step, counts[step], len(enrolled))
    # Counted on the effects, not on the audit entries written after them: the mock downstream (ActionEffects,
    # one item per idempotency key) holds one action2 effect per enrolled contract (action2 records an effect:
    # fulfillment.py), and received exactly one call for each.
    all_effects = scan(local_stack.client("dynamodb"), local_stack.outputs["ActionEffectsTableName"])
    performed = [e for e in all_effects if e["contractId"] in enrolled]
    assert Counter((e["contractId"], e["actionName"]) for e in performed) == {(c, "action2"): 1 for c in enrolled}
    assert [e for e in performed if e["calls"] != 1] == []

    # A 429 was refused by API Gateway before anything ran: no table and no stream record names its contract.
    audited = {e["contractId"] for e in scan(local_stack.client("dynamodb"), local_stack.outputs["AuditTableName"])}
    streamed = {
        r.get("contractId")
        for r in stream_records(local_stack.client("kinesis"), local_stack.outputs["EnrollmentStreamName"])
    }
    assert not throttled & (set(offers) | audited | streamed | {e["contractId"] for e in all_effects})
