"""The demo behind `make demo`: run both workflows on the sample events and show what happened.

Expects the stack to be up on the emulator (`make up` does it). Reads everything back from the
emulator itself: the orders table and the Step Functions execution history.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import api_client
import emulator
from stack import DEFAULT_STACK, local_client, outputs

ROOT = Path(__file__).resolve().parent.parent
EXECUTION_DEADLINE_SECONDS = 60
HOOKS_DEADLINE_SECONDS = 120


def wait_for_execution(stepfunctions: Any, execution_arn: str, deadline_seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_seconds
    while True:
        execution = stepfunctions.describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            return execution
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still RUNNING after {deadline_seconds}s")
        time.sleep(0.25)


def task_timeline(stepfunctions: Any, execution_arn: str) -> list[tuple[str, str]]:
    """(state name, time it finished) for each Task state, from the execution history."""
    events = stepfunctions.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [
        (event["stateExitedEventDetails"]["name"], event["timestamp"].isoformat(timespec="milliseconds"))
        for event in events
        if event["type"] == "TaskStateExited"
    ]


def run_payment_workflow(port: int, stack_outputs: dict[str, str]) -> None:
    stepfunctions = local_client("stepfunctions", port)
    table = local_client("dynamodb", port)
    table_name = stack_outputs["OrdersTableName"]
    start_input = json.loads((ROOT / "events/payment/start-execution.json").read_text())
    order_id = start_input["orderId"]

    print(f"\n== Mock payment workflow: start {stack_outputs['PaymentStateMachineArn']}")
    print(f"   input {json.dumps(start_input)} (events/payment/start-execution.json)")
    if table.get_item(TableName=table_name, Key={"orderId": {"S": order_id}}).get("Item"):
        # The seed's order id is fixed; a second demo run on the same emulator would be refused.
        print(f"   order {order_id} is left from an earlier demo run: deleting it first")
        table.delete_item(TableName=table_name, Key={"orderId": {"S": order_id}})

    execution_arn = stepfunctions.start_execution(
        stateMachineArn=stack_outputs["PaymentStateMachineArn"], input=json.dumps(start_input)
    )["executionArn"]
    execution = wait_for_execution(stepfunctions, execution_arn, EXECUTION_DEADLINE_SECONDS)
    print(f"   execution {execution['status']}: {execution_arn.rsplit(':', 1)[-1]}")

    print("\n   Step functions history (task finished at):")
    for state, finished in task_timeline(stepfunctions, execution_arn):
        print(f"     {state:<14} {finished}")

    item = table.get_item(TableName=table_name, Key={"orderId": {"S": order_id}}, ConsistentRead=True)["Item"]
    print(f"\n   {table_name} item {order_id}, read back from the table:")
    for status, attribute in (("created", "createdAt"), ("hold", "heldAt"), ("paid", "paidAt")):
        print(f"     {status:<8} {item.get(attribute, {}).get('S', '-')}")
    print(f"     status now: {item['status']['S']}")
    if execution["status"] == "SUCCEEDED":
        print(f"\n   Confirmation: {json.loads(execution['output'])['confirmation']}")
    else:
        print(f"\n   Failed: {execution.get('error')}: {execution.get('cause')}")
        raise SystemExit(1)


def api_key(port: int, stack_outputs: dict[str, str]) -> str:
    apigateway = local_client("apigateway", port)
    return apigateway.get_api_key(apiKey=stack_outputs["EnrollmentApiKeyId"], includeValue=True)["value"]


def post_offer(url: str, key: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")  # noqa: S310 - local URL
    request.add_header("Content-Type", "application/json")
    request.add_header("x-api-key", key)
    started = time.monotonic()
    answer = api_client.send(request, EXECUTION_DEADLINE_SECONDS)
    return answer.status, json.loads(answer.body), time.monotonic() - started


def get_enrollment(url: str, key: str, contract_id: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/{contract_id}", headers={"x-api-key": key})  # noqa: S310 - local URL
    answer = api_client.send(request, EXECUTION_DEADLINE_SECONDS)
    if answer.status != 200:
        raise RuntimeError(f"GET {url}/{contract_id} answered {answer.status}: {answer.body[:300]!r}")
    return json.loads(answer.body)


def follow_hooks(url: str, key: str, contract_id: str) -> None:
    """Watch the eventual actions fire at their (compressed) due times, then print the final table."""
    print(f"\n   Waiting for the hooks (GET {url}/{contract_id}; one offset day lasts a few seconds locally):")
    started, last_line, last_states = time.monotonic(), "", None
    interactive = sys.stdout.isatty()
    while True:
        enrollment = get_enrollment(url, key, contract_id)
        now = datetime.now(UTC)
        parts = []
        for action in enrollment["actions"]:
            if action["state"] in ("pending", "scheduled"):
                due_in = (datetime.fromisoformat(action["dueAt"].replace("Z", "+00:00")) - now).total_seconds()
                when = f"in {round(due_in)}s" if due_in > 0 else "now"
                parts.append(f"{action['name']} {action['state']} (due {when})")
            else:
                parts.append(f"{action['name']} {action['state']}")
        line = f"   t+{time.monotonic() - started:5.1f}s  " + " | ".join(parts)
        if interactive:
            print("\r" + line.ljust(len(last_line)), end="", flush=True)
        elif (states := [action["state"] for action in enrollment["actions"]]) != last_states:
            print(line)  # without a terminal, one line per change of state
            last_states = states
        last_line = line
        if all(action["state"] not in ("pending", "scheduled") for action in enrollment["actions"]):
            break
        if time.monotonic() - started > HOOKS_DEADLINE_SECONDS:
            print(f"\n   gave up waiting after {HOOKS_DEADLINE_SECONDS} s")
            raise SystemExit(1)
        time.sleep(1)
    print("\n\n   action      offset  due                       state      done at                   by")
    for action in enrollment["actions"]:
        print(
            f"   {action['name']:<11} {action['offset']:>6}  {action['dueAt']:<25} {action['state']:<10} "
            f"{action.get('completedAt', '-'):<25} {action.get('trigger', '-')}"
        )
    print(f"   contract status: {enrollment['status']}; audit entries: {len(enrollment['audit'])}")


def run_enrollment(port: int, stack_outputs: dict[str, str]) -> None:
    seed = json.loads((ROOT / "events/enrollment/input.json").read_text())
    # The seed's offer, under a contract id of its own per run: one contract enrolls only once.
    contract_id = f"{seed['contractId']}-{time.strftime('%H%M%S')}"
    url = f"{stack_outputs['EnrollmentApiUrl']}/enrollments"
    key = api_key(port, stack_outputs)
    print(f"\n== Contract enrollment: POST {url}")
    print(f"   body: events/enrollment/input.json with contractId {contract_id}; header x-api-key")
    status, body, seconds = post_offer(url, key, {**seed, "contractId": contract_id})
    print(
        f"   HTTP {status} in {seconds:.1f} s: status {body.get('status')}, correlation id {body.get('correlationId')}"
    )
    if status != 201:
        print(f"   unexpected answer: {json.dumps(body)}")
        raise SystemExit(1)
    for action in body["sameDayActions"]:
        print(f"   same day  {action['name']:<10} {action['status']:<9} {json.dumps(action['result'])}")
    for action in body["eventualActions"]:
        print(f"   eventual  {action['name']:<10} offset {action['offset']:>2}  due {action['dueAt']}")
    first = body["payments"][0]
    print(f"   payments  {len(body['payments'])} x {first['amount']} {first['currency']}, first due {first['dueDate']}")
    if body["paymentDestination"] == "mock-payment-workflow":
        execution_arn = (
            stack_outputs["PaymentStateMachineArn"].replace(":stateMachine:", ":execution:")
            + f":{contract_id}-payment-1"
        )
        execution = wait_for_execution(local_client("stepfunctions", port), execution_arn, EXECUTION_DEADLINE_SECONDS)
        print(f"   first payment -> mock-payment-workflow {contract_id}-payment-1: {execution['status']}")

    print(f"\n   Audit trail of {contract_id} ({stack_outputs['AuditTableName']}):")
    entries = local_client("dynamodb", port).query(
        TableName=stack_outputs["AuditTableName"],
        KeyConditionExpression="contractId = :c",
        ExpressionAttributeValues={":c": {"S": contract_id}},
        ConsistentRead=True,
    )["Items"]
    for entry in entries:
        print(f"     {entry['at']['S']}  {entry['step']['S']:<16} {entry['outcome']['S']}")

    follow_hooks(url, key, contract_id)

    ineligible = {**seed, "contractId": f"{contract_id}-B", "accountId": "A-200"}
    status, body, _ = post_offer(url, key, ineligible)
    print(f"\n   The same offer for account A-200 (bankruptcy flag): HTTP {status}, {body['status']}")
    print(f"   reasons: {body.get('reasons')}")


def port_argument(port: int) -> str:
    """` EMULATOR_PORT=N`: printed commands name the port in use, so they work as copied, whatever
    .emulator/current-port says by then."""
    return f" EMULATOR_PORT={port}"


def explain_next_steps(port: int, stack_name: str, stack_outputs: dict[str, str]) -> None:
    """Commands to go on with, each working as printed (README says which ones the demo prints)."""
    make_port = port_argument(port)
    print(
        f"""
== Explore (the emulator keeps running on http://localhost:{port})
   eval "$(make -s env{make_port})"   # points aws and sam at http://localhost:{port}
   aws dynamodb scan --table-name {stack_outputs["OrdersTableName"]}
   aws stepfunctions list-executions --state-machine-arn {stack_outputs["PaymentStateMachineArn"]}
   sam remote invoke --stack-name {stack_name} CreateOrderFunction --event-file events/payment/create-order.json
   sam list stack-outputs --stack-name {stack_name}
   aws dynamodb scan --table-name {stack_outputs["AuditTableName"]}
   aws scheduler list-schedules --group-name {stack_outputs["HookScheduleGroupName"]}
   aws apigateway get-api-key --include-value --api-key {stack_outputs["EnrollmentApiKeyId"]}   # the x-api-key value
== Stop
   make down{make_port}   # stops only the emulator this project started"""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=emulator.DEFAULT_PORT)
    parser.add_argument("--stack-name", default=DEFAULT_STACK)
    args = parser.parse_args()
    stack_outputs = outputs(local_client("cloudformation", args.port), args.stack_name)
    run_payment_workflow(args.port, stack_outputs)
    run_enrollment(args.port, stack_outputs)
    explain_next_steps(args.port, args.stack_name, stack_outputs)


if __name__ == "__main__":
    main()
