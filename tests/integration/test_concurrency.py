"""50 concurrent clients over distinct contracts for a bounded time: no 5xx, and an audit trail whose
counts match the answers.

The clients join the way a load test ramps virtual users: each one only after the one before it got
its first answer. Once the last has joined, all 50 send back to back for the window, and the test
checks that 50 requests were really in flight at once. Every request, in the ramp and in the window,
counts.

Not part of `make test` (`make load` runs it): the emulator cannot serve it on the 2-core machines.
It runs each concurrent call of a function in a worker process of its own and keeps it, and starting
one costs about 0.8 CPU-seconds, half of it inside the emulator's own process (it unpacks the
function and the 16 MB layer for every worker). Measured on 2026-11-22 on a quiet machine:
- warm, one client at a time: 0.28 CPU-seconds per enrollment, all workers included (about 7 per
  second on 2 cores);
- 6 closed-loop clients after a warm-up at 6: 2.5 enrollments per second, the slowest answer 8 s,
  and the workers grew from 16 to 30 (each function's peak concurrency gets a worker of its own);
- this test: after 300 s only 9 of the 50 clients had joined; a 25 s open ramp failed 55 of 55
  requests with 500 (the steps' 10 s timeouts while workers start).
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

from tests.integration.conftest import EnrollmentApi, LocalStack
from tests.support.enrollment import HttpAnswer, post, scan, stream_records
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.load]
SEED = json.loads((Path(__file__).resolve().parents[2] / "events/enrollment/input.json").read_text())
CLIENTS = 50
WINDOW_SECONDS = 30  # all 50 clients sending, once the last one has joined
RAMP_DEADLINE_SECONDS = 300  # for all 50 to have joined
CLIENT_TIMEOUT_SECONDS = 60  # longer than the API's own 29 s: a slow answer shows as the API's, not ours
# Same-day actions only: the load is the immediate path plus the stream consumer, no hooks.
DRAFT = {"List": [{"name": "action2", "offset": 0}]}


def offer(contract_id: str, account_id: str) -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    body.update(contractId=contract_id, accountId=account_id, contractDraft=copy.deepcopy(DRAFT))
    return body


def add_customers(local_stack: LocalStack) -> list[str]:
    """One active customer per client, so that the clients do not all update one UCP item."""
    dynamodb = local_stack.client("dynamodb")
    accounts = [f"LOAD-ACCOUNT-{number:02d}" for number in range(CLIENTS)]
    for account_id in accounts:
        dynamodb.put_item(
            TableName=local_stack.outputs["UcpTableName"],
            Item={
                "accountId": {"S": account_id},
                "status": {"S": "active"},
                "flags": {"L": []},
                "contracts": {"M": {}},
            },
        )
    return accounts


class Clients:
    """Closed-loop clients: each sends its next request as soon as it has the answer to the last one."""

    def __init__(self, url: str, api_key: str, accounts: list[str]) -> None:
        self.url, self.api_key, self.accounts = url, api_key, accounts
        self.answers: dict[str, HttpAnswer | BaseException] = {}
        self.joined = [threading.Event() for _ in accounts]  # set at a client's first answer
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = self.peak_in_flight = 0

    def run(self, number: int) -> None:
        sent = 0
        while sent == 0 or not self.stop.is_set():
            contract_id = f"LOAD-{number:02d}-{sent}"
            with self.lock:
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                answer: HttpAnswer | BaseException = post(
                    self.url, offer(contract_id, self.accounts[number]), self.api_key, timeout=CLIENT_TIMEOUT_SECONDS
                )
            except Exception as error:  # a client timeout or a dropped connection is a failure too
                answer = error
            with self.lock:
                self.in_flight -= 1
                self.answers[contract_id] = answer
            self.joined[number].set()
            sent += 1


def test_fifty_concurrent_clients_get_no_5xx_and_every_answer_is_audited(
    local_stack: LocalStack, enrollment_api: EnrollmentApi
) -> None:
    clients = Clients(enrollment_api.url, enrollment_api.api_key, add_customers(local_stack))
    ramp_deadline = time.monotonic() + RAMP_DEADLINE_SECONDS
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        try:
            running = []
            for number in range(CLIENTS):
                running.append(pool.submit(clients.run, number))
                joined = clients.joined[number].wait(timeout=max(0.0, ramp_deadline - time.monotonic()))
                assert joined, f"only {number} of {CLIENTS} clients joined within {RAMP_DEADLINE_SECONDS}s"
            ramp_seconds = RAMP_DEADLINE_SECONDS - (ramp_deadline - time.monotonic())
            time.sleep(WINDOW_SECONDS)
        finally:
            clients.stop.set()
        for future in running:
            future.result()

    answers = clients.answers
    print(
        f"{len(answers)} requests, peak {clients.peak_in_flight} in flight, ramp {ramp_seconds:.0f}s: {
            Counter(a.status if isinstance(a, HttpAnswer) else type(a).__name__ for a in answers.values())
        }"
    )
    failures = {c: a for c, a in answers.items() if isinstance(a, BaseException) or a.status >= 500}
    assert not failures, f"{len(failures)} of {len(answers)} requests failed: {list(failures.items())[:5]}"
    statuses = Counter(a.status for a in answers.values())
    assert statuses == {201: len(answers)}, statuses
    assert clients.peak_in_flight == CLIENTS, clients.peak_in_flight

    # Every 201 is one enrollment, audited once at each step, published once, picked up once.
    enrolled = set(answers)
    offers = {o["OfferId"]: o for o in scan(local_stack.client("dynamodb"), local_stack.outputs["OffersTableName"])}
    assert {c for c in enrolled if offers.get(c, {}).get("status") == "enrolled"} == enrolled
    published = Counter(
        r["contractId"]
        for r in stream_records(local_stack.client("kinesis"), local_stack.outputs["EnrollmentStreamName"])
        if r.get("contractId") in enrolled
    )
    assert published == dict.fromkeys(enrolled, 1)

    def audit_counts() -> Counter[str]:
        entries = scan(local_stack.client("dynamodb"), local_stack.outputs["AuditTableName"])
        return Counter(e["step"] for e in entries if e["contractId"] in enrolled)

    expected = {"receive-offer", "verify-customer", "rules-lab", "enroll", "publish", "action:action2"}
    counts = wait_until(
        lambda: (c := audit_counts()) and c["eventual-workflow"] == len(enrolled) and c,
        120,
        "the stream consumer to start every enrollment's eventual workflow",
        interval=2,
    )
    for step in expected | {"eventual-workflow"}:
        assert counts[step] == len(enrolled), (step, counts[step], len(enrolled))
