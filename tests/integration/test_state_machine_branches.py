"""Every Choice, Catch and Retry of the three state machines, exercised without a single Lambda worker.

The module starts an emulator of its own and creates the state machines straight from
statemachine/*.asl.json (no `sam build`/`deploy`), their DefinitionSubstitutions replaced by fake ARNs:
there is no function behind any task, so a task a test forgets to mock fails instead of running code.

* One state: the Step Functions `TestState` API. Each Choice rule and Default gets a small hand-written
  input named for what it means; each Catch of each task (read from the ASL) gets a mocked error output
  and must go to its Next with the error at its ResultPath; a Retry that no Catch pre-empts must be
  reported RETRIABLE until its attempts are spent.
* Whole paths: mocked service integrations (the Step Functions Local mock-config format, posted to
  `/_ministack/config`, a case chosen with `arn…:stateMachine:Name#Case`): one case per meaningful path,
  asserting the states entered (execution history) and the outcome; and, read from the ASL, one run per
  Retry entry whose task throws an error only that entry matches, whose history shows 1 + MaxAttempts
  attempts before the run moves on.
* statemachine/enrollment.asl.json and payment.asl.json are JSONata: its Choices read their input (the answer of the task before
  them) or a DefinitionSubstitution, never a variable, because ministack's TestState takes no variables
  (it ignores TestState's `variables` parameter); its tasks read variables, which TestState never
  evaluates for a mocked task. Each Retry run throws on its task's first entry, so every task's Arguments
  are evaluated at least once on a whole path.
* `test_every_choice_catch_and_retry_in_the_asl_is_covered` fails when the ASL has a branch that no
  test declares, or whose test ran without showing it taken.

The emulator (ministack 1.5.33) differs from AWS in ways that shape these tests:
* TestState runs a JSONata Task's Catch as if it were JSONPath: it ignores the catcher's `Output` and
  `Assign` (its output is the error output), and a mocked result ignores the state's `Output`/`Assign`.
  The catch tests check the output only where that agrees with AWS (no `Output` on the catcher).
* TestState looks for a matching Catch before a Retry: an error that both match is CAUGHT_ERROR at
  once (AWS: RETRIABLE until `stateConfiguration.retrierRetryCount` reaches MaxAttempts). Such retries
  are shown with whole paths instead; the Catch tests pass the spent retry count, as AWS needs.
  TestState runs Pass, Choice, Wait, Succeed, Fail and Task states only (Map and Parallel: 400).
* A mocked `Throw` is reused for every retry of that entry into the state (mock entries are counted per
  entry into a state, not per attempt): "fail once, then succeed" cannot be mocked; the retries show as
  1 + MaxAttempts TaskFailed events, then the Catch (or the failure) follows.
* A mocked `Return` adds no TaskScheduled/TaskSucceeded event, and states inside a Map add no
  StateEntered events: a Map's inner path is seen in its output, not in the history.
* A JSONPath that does not resolve yields null instead of failing with States.Runtime, so every mock
  here is complete (built from the ResultSelector) and no input relies on a missing field.
* GetExecutionHistory answers for EXPRESS executions (AWS does not): fine for these local tests only.
"""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import emulator
import pytest
from botocore.config import Config

from tests.support.state_machines import (
    ACCOUNT,
    INJECTED,
    REGION,
    ROLE_ARN,
    Branch,
    Machine,
    MockConfig,
    Response,
    Returns,
    Throws,
    branches,
    definition_of,
    error_for,
    first_match,
    history,
    is_jsonata,
    retries_spent,
    state_at,
    states_entered,
    task_failures,
    walk,
    with_path,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration
RUN_DEADLINE_SECONDS = 15

ENROLLMENT = Machine("enrollment", "EnrollmentStateMachine")
ENROLLMENT_PAYMENTS_NONE = Machine(
    "enrollment-payments-none", "EnrollmentStateMachine", (("PaymentDestination", "none"),), "-payments-none"
)
EVENTUAL = Machine("enrollment-async", "EnrollmentAsyncStateMachine")
PAYMENT = Machine("payment", "PaymentStateMachine")
MACHINES = (ENROLLMENT, ENROLLMENT_PAYMENTS_NONE, EVENTUAL, PAYMENT)
# The machine whose definition stands for its ASL file in single-state tests.
BY_ASL = {machine.asl: machine for machine in reversed(MACHINES)}

# ------------------------------------------------------------------------------------------ the data
REQUEST = {
    "contractId": "C-1001",
    "accountId": "A-100",
    "contractInfo": {"product": "hardship-plan", "monthlyPayment": 125.0, "termMonths": 12, "currency": "USD"},
    "contractDraft": {"List": [{"name": "action2", "offset": 0}, {"name": "action1", "offset": 3}]},
}
OFFER = {
    "contractId": "C-1001",
    "accountId": "A-100",
    "correlationId": "corr-1001",
    "enrollmentDate": "2026-11-22T10:00:00.000Z",
    "immediateActions": [{"name": "action2", "offset": 0, "dueAt": "2026-11-22T10:00:00.000Z", "data": {}}],
    "eventualActions": [{"name": "action1", "offset": 3, "dueAt": "2026-11-25T10:00:00.000Z", "data": {}}],
    "payments": [{"sequence": 1, "amount": "125.00", "currency": "USD", "dueDate": "2026-11-22"}],
}
VERIFIED = {"verified": True, "reason": None, "account": {"accountId": "A-100", "status": "active"}}
ELIGIBLE = {"eligible": True, "reasons": [], "failedRules": [], "rulesVersion": "rules-2026-11"}
INELIGIBLE = {
    "eligible": False,
    "reasons": ["the account is in collections"],
    "failedRules": ["no-collections"],
    "rulesVersion": "rules-2026-11",
}
FIRST_PAYMENT_EXECUTION = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:mock-payment-workflow:C-1001-payment-1"
FULFILLED = {"name": "action2", "status": "fulfilled", "result": {"delivered": True}, "reason": None}
HOOKS = [
    {"actionName": "action100", "scheduleName": "C-1001.action100", "offset": 1, "dueAt": "2026-11-23T10:00:00.000Z"},
    {"actionName": "action1", "scheduleName": "C-1001.action1", "offset": 3, "dueAt": "2026-11-25T10:00:00.000Z"},
]
EVENTUAL_INPUT = {
    "contractId": "C-1001",
    "correlationId": "corr-1001",
    "enrollmentDate": "2026-11-22T10:00:00.000Z",
    "hooks": HOOKS,
}
ORDER_ID = "C-1001-payment-1"
ERROR_SO_FAR = {"Error": "Runtime.HandlerError", "Cause": "an earlier step failed"}

# What every task answers on a good day (the value its ResultSelector yields); paths override some.
ANSWERS: dict[str, dict[str, Response]] = {
    "enrollment": {
        "AcceptOffer": Returns({"outcome": "accepted", "offer": OFFER, "rejection": None}),
        "VerifyCustomer": Returns(VERIFIED),
        "RulesLab": Returns(ELIGIBLE),
        "RecordIneligible": Returns({"recorded": True}),
        "CommitEnrollment": Returns({"enrolledAt": "2026-11-22T10:00:01.000Z"}),
        "PublishEnrollment": Returns({"sequenceNumber": "49650000000000000000000000000000000000000000000000000001"}),
        "ClaimFirstPayment": Returns({}),
        "StartFirstPayment": Returns({"ExecutionArn": FIRST_PAYMENT_EXECUTION, "StartDate": "2026-11-22T10:00:01Z"}),
        "AuditPaymentNotStarted": Returns({}),
        "FlagPaymentNotStarted": Returns({}),
        "FulfillAction": Returns(FULFILLED),
        "RevertEnrollment": Returns({"reverted": True}),
        "UndoCommit": Returns({"reverted": False}),
        "RecordFailure": Returns({"recorded": True}),
    },
    "enrollment-async": {
        "MarkActionScheduled": Returns({}),
        "CreateHook": Returns({"StatusCode": 200, "Payload": {"scheduleName": "C-1001.action100", "created": True}}),
        "MarkHookFailed": Returns({}),
        "ConfirmEventualWorkflow": Returns({}),
    },
    "payment": {
        "CreateOrder": Returns(
            {"outcome": "created", "order": {"orderId": ORDER_ID, "status": "created"}, "rejection": None}
        ),
        "HoldPayment": Returns({"order": {"orderId": ORDER_ID, "status": "held"}}),
        "AcceptPayment": Returns({"order": {"orderId": ORDER_ID, "status": "paid"}, "confirmation": "confirmation-1"}),
        "MarkOrderFailed": Returns({}),
    },
}

# The input of a single task. JSONPath: what the workflow knows once every step has answered (and one
# has failed). JSONata (enrollment, payment): the answer, error or request the state before it handed on;
# the task reads the rest from variables.
DOCUMENTS: dict[str, Any] = {
    "enrollment": ERROR_SO_FAR,
    "enrollment-async": {**EVENTUAL_INPUT, "outcomes": ["scheduled", "scheduled"], "check": {"anyFailed": False}},
    "payment": {"orderId": ORDER_ID},  # the request, which every catcher hands to HasOrderToMarkFailed
}
# What one item of a Map knows (its ItemSelector's output, plus what its failed step left).
ITEM_DOCUMENTS: dict[tuple[str, str], dict[str, Any]] = {
    ("enrollment", "FireSameDayActions"): {
        "contractId": "C-1001",
        "correlationId": "corr-1001",
        "action": OFFER["immediateActions"][0],
        "trigger": "same-day",
    },
    ("enrollment-async", "ScheduleHooks"): {
        "contractId": "C-1001",
        "correlationId": "corr-1001",
        "hook": HOOKS[0],
        "enrollmentDate": "2026-11-22T10:00:00.000Z",
        "hookError": {"Error": "Runtime.HandlerError", "Cause": "the scheduler refused"},
    },
}


def document_for(asl: str, path: str) -> Any:
    if "/" not in path:
        return DOCUMENTS[asl]
    owner = path.rsplit("/", 1)[0]
    assert (asl, owner) in ITEM_DOCUMENTS, f"add what one item of {asl}:{owner} knows to ITEM_DOCUMENTS"
    return ITEM_DOCUMENTS[(asl, owner)]


# One input per Choice rule and one per Default, named for what it means; with a Machine before the input
# when the machine's DefinitionSubstitutions decide (else the one BY_ASL names).
CHOICE_INPUTS: dict[tuple[str, str], dict[str, list[tuple[str, Any] | tuple[str, Machine, Any]]]] = {
    # enrollment (JSONata): a Choice reads the answer of the task before it, its input.
    ("enrollment", "WasOfferAccepted"): {
        "Choices[0]": [("an offer AcceptOffer accepted goes on to verify the customer", {"outcome": "accepted"})],
        "Default": [("an offer AcceptOffer rejected goes to OfferRejected", {"outcome": "rejected"})],
    },
    ("enrollment", "IsCustomerVerified"): {
        "Choices[0]": [("a verified customer goes on to the rules lab", {"verified": True})],
        "Default": [
            ("a customer who is not verified goes to CustomerNotVerified", {"verified": False}),
            ("a verification answered with a truthy non-boolean is not verified", {"verified": "yes"}),
        ],
    },
    ("enrollment", "WasCommitUndone"): {
        "Choices[0]": [("a commit the revert undid ends the run failed", {"reverted": True, **ERROR_SO_FAR})],
        "Default": [("a commit that wrote nothing is recorded as any failure", {"reverted": False, **ERROR_SO_FAR})],
    },
    ("enrollment", "IsEligible"): {
        "Choices[0]": [("an offer the rules lab found eligible goes on to commit", {"eligible": True})],
        "Default": [("an offer the rules lab found ineligible goes to RecordIneligible", {"eligible": False})],
    },
    # The PaymentDestination parameter (a DefinitionSubstitution) chooses, not the input: one machine each.
    ("enrollment", "ChoosePaymentDestination"): {
        "Choices[0]": [
            ("payments sent to the mock payment workflow start the first payment", ENROLLMENT, {"published": True})
        ],
        "Default": [
            ("PaymentDestination none only records the payments", ENROLLMENT_PAYMENTS_NONE, {"published": True})
        ],
    },
    ("enrollment-async", "AnyHookFailed"): {
        "Choices[0]": [("a run in which some hook failed goes to HooksFailed", {"check": {"anyFailed": True}})],
        "Default": [("a run whose hooks all exist goes on to confirm itself", {"check": {"anyFailed": False}})],
    },
    # payment (JSONata): WasOrderCreated reads CreateOrder's answer; a failure hands on the request.
    ("payment", "WasOrderCreated"): {
        "Choices[0]": [("a created order goes on to hold the payment", {"outcome": "created"})],
        "Default": [("an order CreateOrder rejected goes to OrderRejected", {"outcome": "rejected"})],
    },
    ("payment", "HasOrderToMarkFailed"): {
        "Choices[0]": [("a failed request with a string orderId marks that order failed", {"orderId": ORDER_ID})],
        "Default": [
            ("a failed request without an orderId has no order to mark", {}),
            ("a failed request whose orderId is not a string has no order to mark", {"orderId": 42}),
            ("a failed request whose orderId is null has no order to mark", {"orderId": None}),
            ("a failed request that is not an object has no order to mark", "not an order"),
        ],
    },
}


@dataclass(frozen=True)
class PathCase:
    """One whole run with mocked integrations: the states it enters and how it ends."""

    spec: str
    machine: Machine
    input: Any
    mocks: dict[str, Response | list[Response]]  # over the good-day ANSWERS; a list answers entry by entry
    states: tuple[str, ...]
    status: str = "SUCCEEDED"
    output: dict[str, Any] = field(default_factory=dict)  # expected fields of the output
    error: str | None = None
    cause: str | None = None
    inside_maps: tuple[str, ...] = ()  # states inside a Map it enters (a Map's inner states are not in the history)
    covers: tuple[Branch, ...] = ()  # branches only a whole run can show (a Map's Catch)

    @property
    def case(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.spec.lower()).strip("-")


ACCEPTED = ("NormalizeInput", "AcceptOffer", "WasOfferAccepted")
VERIFIED_AND_RULED = (*ACCEPTED, "VerifyCustomer", "IsCustomerVerified", "RulesLab", "IsEligible")
COMMITTED = (*VERIFIED_AND_RULED, "CommitEnrollment", "PublishEnrollment", "ChoosePaymentDestination")
ENROLLED = ("FireSameDayActions", "Enrolled")
HOOKS_CHECKED = ("ScheduleHooks", "CheckOutcomes", "AnyHookFailed")
ORDER_CREATED = ("NormalizeInput", "CreateOrder", "WasOrderCreated")

PATHS = [
    # ---------------------------------------------------------------- enrollment (EXPRESS, immediate)
    PathCase(
        "an eligible offer is enrolled, published, its first payment started and its same-day action fulfilled",
        ENROLLMENT,
        REQUEST,
        {},
        (*COMMITTED, "ClaimFirstPayment", "StartFirstPayment", *ENROLLED),
        output={
            "status": "enrolled",
            "contractId": "C-1001",
            "firstPayment": {"status": "started", "executionArn": FIRST_PAYMENT_EXECUTION},
            "sameDayActions": [FULFILLED],
            "paymentDestination": "mock-payment-workflow",
        },
        inside_maps=("FulfillAction",),
    ),
    PathCase(
        "with PaymentDestination none an enrolled offer's payments are only recorded",
        ENROLLMENT_PAYMENTS_NONE,
        REQUEST,
        {},
        (*COMMITTED, "PaymentsRecordedOnly", *ENROLLED),
        output={"status": "enrolled", "firstPayment": {"status": "recorded-only"}, "paymentDestination": "none"},
        inside_maps=("FulfillAction",),
    ),
    PathCase(
        "an offer AcceptOffer rejects fails the run with the rejection's error and cause",
        ENROLLMENT,
        REQUEST,
        {
            "AcceptOffer": Returns(
                {
                    "outcome": "rejected",
                    "offer": None,
                    "rejection": {
                        "error": "ContractInProgress",
                        "cause": "C-1001 is being enrolled by another request",
                    },
                }
            )
        },
        (*ACCEPTED, "OfferRejected"),
        status="FAILED",
        error="ContractInProgress",
        cause="C-1001 is being enrolled by another request",
    ),
    PathCase(
        "an unexpected AcceptOffer failure fails the run as EnrollmentFailed with nothing to record",
        ENROLLMENT,
        REQUEST,
        {"AcceptOffer": Throws()},
        ("NormalizeInput", "AcceptOffer", "EnrollmentFailed"),
        status="FAILED",
        error="EnrollmentFailed",
    ),
    PathCase(
        "a customer VerifyCustomer cannot verify ends not_verified with the reason",
        ENROLLMENT,
        REQUEST,
        {"VerifyCustomer": Returns({"verified": False, "reason": "identity check failed", "account": None})},
        (*ACCEPTED, "VerifyCustomer", "IsCustomerVerified", "CustomerNotVerified"),
        output={"status": "not_verified", "contractId": "C-1001", "reason": "identity check failed"},
    ),
    PathCase(
        "a failing verification is recorded and fails the run as EnrollmentFailed",
        ENROLLMENT,
        REQUEST,
        {"VerifyCustomer": Throws()},
        (*ACCEPTED, "VerifyCustomer", "RecordFailure", "EnrollmentFailed"),
        status="FAILED",
        error="EnrollmentFailed",
    ),
    PathCase(
        "an offer the rules lab finds ineligible is recorded and ends ineligible with the failed rules",
        ENROLLMENT,
        REQUEST,
        {"RulesLab": Returns(INELIGIBLE)},
        (*VERIFIED_AND_RULED, "RecordIneligible", "NotEligible"),
        output={"status": "ineligible", "eligible": False, "failedRules": ["no-collections"]},
    ),
    PathCase(
        "a failing commit that wrote nothing is recorded as failed and fails the run as EnrollmentFailed",
        ENROLLMENT,
        REQUEST,
        {"CommitEnrollment": Throws()},
        (*VERIFIED_AND_RULED, "CommitEnrollment", "UndoCommit", "WasCommitUndone", "RecordFailure", "EnrollmentFailed"),
        status="FAILED",
        error="EnrollmentFailed",
    ),
    PathCase(
        "a commit whose answer was lost after it wrote is reverted and fails the run as EnrollmentFailed",
        ENROLLMENT,
        REQUEST,
        {"CommitEnrollment": Throws(), "UndoCommit": Returns({"reverted": True})},
        (*VERIFIED_AND_RULED, "CommitEnrollment", "UndoCommit", "WasCommitUndone", "EnrollmentFailed"),
        status="FAILED",
        error="EnrollmentFailed",
    ),
    PathCase(
        "an undo of a failed commit that fails too still records the failure",
        ENROLLMENT,
        REQUEST,
        {"CommitEnrollment": Throws(), "UndoCommit": Throws()},
        (*VERIFIED_AND_RULED, "CommitEnrollment", "UndoCommit", "RecordFailure", "EnrollmentFailed"),
        status="FAILED",
        error="EnrollmentFailed",
    ),
    PathCase(
        "a publish failing after the commit reverts the enrollment and fails the run as EnrollmentFailed",
        ENROLLMENT,
        REQUEST,
        {"PublishEnrollment": Throws()},
        (*VERIFIED_AND_RULED, "CommitEnrollment", "PublishEnrollment", "RevertEnrollment", "EnrollmentFailed"),
        status="FAILED",
        error="EnrollmentFailed",
    ),
    PathCase(
        "a revert that fails too still ends the run as EnrollmentFailed",
        ENROLLMENT,
        REQUEST,
        {"PublishEnrollment": Throws(), "RevertEnrollment": Throws()},
        (*VERIFIED_AND_RULED, "CommitEnrollment", "PublishEnrollment", "RevertEnrollment", "EnrollmentFailed"),
        status="FAILED",
        error="EnrollmentFailed",
    ),
    PathCase(
        "a first payment an earlier run already started is not started again and the offer is enrolled",
        ENROLLMENT,
        REQUEST,
        {"StartFirstPayment": Throws("StepFunctions.ExecutionAlreadyExistsException")},
        (*COMMITTED, "ClaimFirstPayment", "StartFirstPayment", "PaymentAlreadyStarted", *ENROLLED),
        output={"status": "enrolled", "firstPayment": {"status": "already-started"}},
        inside_maps=("FulfillAction",),
    ),
    PathCase(
        "a first payment that cannot be started is audited and the offer is still enrolled",
        ENROLLMENT,
        REQUEST,
        {"StartFirstPayment": Throws("StepFunctions.StateMachineDoesNotExistException")},
        (
            *COMMITTED,
            "ClaimFirstPayment",
            "StartFirstPayment",
            "AuditPaymentNotStarted",
            "FlagPaymentNotStarted",
            *ENROLLED,
        ),
        output={"status": "enrolled", "firstPayment": {"status": "not-started"}},
        inside_maps=("FulfillAction",),
    ),
    PathCase(
        "a first payment whose contract was cancelled before its claim is not started and the offer is enrolled",
        ENROLLMENT,
        REQUEST,
        {"ClaimFirstPayment": Throws("DynamoDB.ConditionalCheckFailedException")},
        (*COMMITTED, "ClaimFirstPayment", "PaymentNotClaimed", *ENROLLED),
        output={
            "status": "enrolled",
            "firstPayment": {"status": "not-started", "reason": "the contract is no longer enrolled"},
        },
        inside_maps=("FulfillAction",),
    ),
    PathCase(
        "a first payment whose claim cannot be written is audited as not started and the offer is enrolled",
        ENROLLMENT,
        REQUEST,
        {"ClaimFirstPayment": Throws("DynamoDB.ResourceNotFoundException")},
        (*COMMITTED, "ClaimFirstPayment", "AuditPaymentNotStarted", "FlagPaymentNotStarted", *ENROLLED),
        output={"status": "enrolled", "firstPayment": {"status": "not-started"}},
        inside_maps=("FulfillAction",),
    ),
    PathCase(
        "a first payment that cannot be started nor audited still leaves the offer enrolled",
        ENROLLMENT,
        REQUEST,
        {
            "StartFirstPayment": Throws("StepFunctions.StateMachineDoesNotExistException"),
            "AuditPaymentNotStarted": Throws("DynamoDB.ResourceNotFoundException"),
        },
        (
            *COMMITTED,
            "ClaimFirstPayment",
            "StartFirstPayment",
            "AuditPaymentNotStarted",
            "PaymentNotStartedUnaudited",
            "FlagPaymentNotStarted",
            *ENROLLED,
        ),
        output={"status": "enrolled", "firstPayment": {"status": "not-started"}},
        inside_maps=("FulfillAction",),
    ),
    PathCase(
        "a same-day action whose delivery fails is deferred to the reconciler and the offer is enrolled",
        ENROLLMENT,
        REQUEST,
        {"FulfillAction": Throws()},
        (*COMMITTED, "ClaimFirstPayment", "StartFirstPayment", *ENROLLED),
        output={
            "status": "enrolled",
            "sameDayActions": [
                {
                    "name": "action2",
                    "status": "deferred",
                    "result": None,
                    # The error's name only: its cause (a handler's message and stack trace) reaches the client
                    # in this answer otherwise, and stays in the execution's history for the operator.
                    "reason": "Runtime.HandlerError; the reconciler delivers it again",
                }
            ],
        },
        inside_maps=("FulfillAction",),
    ),
    # ---------------------------------------------------------------- enrollment-async (EXPRESS, eventual)
    PathCase(
        "when every hook is scheduled the run confirms itself on the offer and lists the hooks",
        EVENTUAL,
        EVENTUAL_INPUT,
        {},
        (*HOOKS_CHECKED, "ConfirmEventualWorkflow", "Done"),
        output={"contractId": "C-1001", "hooks": ["scheduled", "scheduled"]},
        inside_maps=("MarkActionScheduled", "CreateHook"),
    ),
    PathCase(
        "a contract without eventual actions is confirmed straight away",
        EVENTUAL,
        {**EVENTUAL_INPUT, "hooks": []},
        {},
        (*HOOKS_CHECKED, "ConfirmEventualWorkflow", "Done"),
        output={"contractId": "C-1001", "hooks": []},
    ),
    PathCase(
        "an action no longer waiting for a hook is skipped and the run still confirms itself",
        EVENTUAL,
        EVENTUAL_INPUT,
        {"MarkActionScheduled": [Throws("DynamoDB.ConditionalCheckFailedException"), Returns({})]},
        (*HOOKS_CHECKED, "ConfirmEventualWorkflow", "Done"),
        output={"contractId": "C-1001", "hooks": ["skipped", "scheduled"]},
        inside_maps=("MarkActionScheduled", "CreateHook"),
    ),
    PathCase(
        "a hook that cannot be created marks its action failed and fails the run as HooksFailed",
        EVENTUAL,
        EVENTUAL_INPUT,
        {"CreateHook": [Throws(), ANSWERS["enrollment-async"]["CreateHook"]]},
        (*HOOKS_CHECKED, "HooksFailed"),
        status="FAILED",
        error="HooksFailed",
        inside_maps=("MarkActionScheduled", "CreateHook", "MarkHookFailed"),
    ),
    PathCase(
        "a run that a re-drive superseded confirms nothing and succeeds",
        EVENTUAL,
        EVENTUAL_INPUT,
        {"ConfirmEventualWorkflow": Throws("DynamoDB.ConditionalCheckFailedException")},
        (*HOOKS_CHECKED, "ConfirmEventualWorkflow", "Superseded"),
        inside_maps=("MarkActionScheduled", "CreateHook"),
    ),
    PathCase(
        "an action that cannot be marked scheduled at all fails the run as EventualWorkflowFailed",
        EVENTUAL,
        EVENTUAL_INPUT,
        {"MarkActionScheduled": Throws("DynamoDB.ResourceNotFoundException")},
        ("ScheduleHooks", "WorkflowFailed"),
        status="FAILED",
        error="EventualWorkflowFailed",
        inside_maps=("MarkActionScheduled",),
        covers=(Branch("enrollment-async", "ScheduleHooks", "Catch", 0, "WorkflowFailed"),),
    ),
    # ---------------------------------------------------------------- payment (STANDARD)
    PathCase(
        "an order created, held and accepted ends paid with its confirmation",
        PAYMENT,
        {"orderId": ORDER_ID},
        {},
        (*ORDER_CREATED, "HoldPayment", "AcceptPayment", "PaymentAccepted"),
        output={"orderId": ORDER_ID, "status": "paid", "confirmation": "confirmation-1"},
    ),
    PathCase(
        "an order CreateOrder rejects fails the run with the rejection's error",
        PAYMENT,
        {"orderId": ORDER_ID},
        {
            "CreateOrder": Returns(
                {
                    "outcome": "rejected",
                    "order": None,
                    "rejection": {"error": "OrderAlreadyExists", "cause": "a second start"},
                }
            )
        },
        (*ORDER_CREATED, "OrderRejected"),
        status="FAILED",
        error="OrderAlreadyExists",
        cause="a second start",
    ),
    PathCase(
        "a hold that fails marks the order failed and fails the run with the hold's cause",
        PAYMENT,
        {"orderId": ORDER_ID},
        {"HoldPayment": Throws(cause="injected: the provider refused the hold")},
        (*ORDER_CREATED, "HoldPayment", "HasOrderToMarkFailed", "MarkOrderFailed", "PaymentFailed"),
        status="FAILED",
        error="PaymentWorkflowFailed",
        cause="injected: the provider refused the hold",
    ),
    PathCase(
        "an accept that fails marks the order failed and fails the run",
        PAYMENT,
        {"orderId": ORDER_ID},
        {"AcceptPayment": Throws()},
        (*ORDER_CREATED, "HoldPayment", "AcceptPayment", "HasOrderToMarkFailed", "MarkOrderFailed", "PaymentFailed"),
        status="FAILED",
        error="PaymentWorkflowFailed",
    ),
    PathCase(
        "an order that cannot be marked failed still fails the run as PaymentWorkflowFailed",
        PAYMENT,
        {"orderId": ORDER_ID},
        {"HoldPayment": Throws(), "MarkOrderFailed": Throws("DynamoDB.ConditionalCheckFailedException")},
        (*ORDER_CREATED, "HoldPayment", "HasOrderToMarkFailed", "MarkOrderFailed", "PaymentFailed"),
        status="FAILED",
        error="PaymentWorkflowFailed",
    ),
    PathCase(
        "a failure of a request that names no order marks nothing and fails the run",
        PAYMENT,
        "not an order",
        {"CreateOrder": Throws()},
        ("NormalizeInput", "CreateOrder", "HasOrderToMarkFailed", "PaymentFailed"),
        status="FAILED",
        error="PaymentWorkflowFailed",
    ),
]


# ------------------------------------------------------------------------------------------ derived cases
@dataclass(frozen=True)
class RetryCase:
    """A path whose task `state` throws an error only its Retry[index] matches, on its first entry."""

    branch: Branch
    base: PathCase
    error: str
    max_attempts: int

    @property
    def state_name(self) -> str:
        return self.branch.state.rsplit("/", 1)[-1]

    @property
    def case(self) -> str:
        return f"retry-{self.state_name}-{self.branch.index}"

    @property
    def cause(self) -> str:
        return f"{INJECTED} for {self.branch}"

    @property
    def mocks(self) -> dict[str, Response | list[Response]]:
        answer = {**ANSWERS[self.branch.asl], **self.base.mocks}[self.state_name]
        later = answer[1:] if isinstance(answer, list) else [answer]
        return {**self.base.mocks, self.state_name: [Throws(self.error, self.cause), *later]}


def entered_with_an_answer(path: PathCase, state_name: str) -> bool:
    if state_name not in path.states and state_name not in path.inside_maps:
        return False
    answer = {**ANSWERS[path.machine.asl], **path.mocks}[state_name]
    return isinstance(answer[0] if isinstance(answer, list) else answer, Returns)


def derive_retry_cases() -> list[RetryCase]:
    found = []
    for asl, machine in BY_ASL.items():
        definition = definition_of(machine)
        for branch in branches(asl, definition):
            if branch.kind != "Retry":
                continue
            state = state_at(definition, branch.state)
            state_name = branch.state.rsplit("/", 1)[-1]
            base = next((p for p in PATHS if p.machine.asl == asl and entered_with_an_answer(p, state_name)), None)
            if base is None:
                continue  # reported by the coverage test: no path enters this state
            error = error_for(state, state["Retry"], branch.index)
            found.append(RetryCase(branch, base, error, state["Retry"][branch.index].get("MaxAttempts", 3)))
    return found


RETRY_CASES = derive_retry_cases()


def single_task_catches() -> list[tuple[Branch, dict[str, Any]]]:
    return [
        (Branch(asl, path, "Catch", index, catcher["Next"]), state)
        for asl, machine in BY_ASL.items()
        for path, state in walk(definition_of(machine))
        if state["Type"] == "Task"
        for index, catcher in enumerate(state.get("Catch", []))
    ]


def uncaught_retries() -> list[tuple[Branch, dict[str, Any], str]]:
    """Retry entries whose error no Catch of the state matches: the only ones ministack's TestState reports."""
    found = []
    for asl, machine in BY_ASL.items():
        for path, state in walk(definition_of(machine)):
            for index, _retrier in enumerate(state.get("Retry", []) if state["Type"] == "Task" else []):
                error = error_for(state, state["Retry"], index)
                if first_match(state.get("Catch", []), error) is None:
                    found.append((Branch(asl, path, "Retry", index), state, error))
    return found


def choice_branch(asl: str, state_name: str, key: str) -> Branch:
    state = state_at(definition_of(BY_ASL[asl]), state_name)
    if key == "Default":
        return Branch(asl, state_name, "Default", 0, state.get("Default"))
    index = int(key.removeprefix("Choices[").removesuffix("]"))
    rules = state.get("Choices", [])
    return Branch(asl, state_name, "Choices", index, rules[index]["Next"] if index < len(rules) else None)


# ------------------------------------------------------------------------------------------ registry
DECLARED: dict[Branch, set[str]] = defaultdict(set)  # branch -> the tests that claim to show it
EXERCISED: dict[Branch, set[str]] = defaultdict(set)  # branch -> the tests that showed it taken
RAN: set[str] = set()


def declare(test: str, case_id: str, *covered: Branch) -> str:
    for branch in covered:
        DECLARED[branch].add(f"{test}[{case_id}]")
    return case_id


@pytest.fixture(autouse=True)
def _record_ran(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    RAN.add(request.node.name)


def exercised(request: pytest.FixtureRequest, branch: Branch) -> None:
    EXERCISED[branch].add(request.node.name)


# ------------------------------------------------------------------------------------------ the emulator
@dataclass
class Lab:
    port: int
    stepfunctions: Any
    awslambda: Any


def client(service: str, port: int) -> Any:
    return boto3.client(
        service,
        endpoint_url=emulator.endpoint(port),
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name=REGION,
        # No host prefix (`sync-localhost` does not resolve); every call bounded, none retried.
        config=Config(
            inject_host_prefix=False,
            connect_timeout=5,
            read_timeout=RUN_DEADLINE_SECONDS,
            retries={"total_max_attempts": 1},
        ),
    )


def mock_config() -> dict[str, Any]:
    config = MockConfig()
    for machine in MACHINES:
        definition = definition_of(machine)
        tasks = {path.rsplit("/", 1)[-1] for path, state in walk(definition) if state["Type"] == "Task"}
        unanswered = tasks - set(ANSWERS[machine.asl])
        assert not unanswered, f"add a good-day answer for {sorted(unanswered)} to ANSWERS[{machine.asl!r}]"
    for path in PATHS:
        config.add_case(
            path.machine, path.case, definition_of(path.machine), {**ANSWERS[path.machine.asl], **path.mocks}
        )
    for retry in RETRY_CASES:
        machine = retry.base.machine
        config.add_case(machine, retry.case, definition_of(machine), {**ANSWERS[machine.asl], **retry.mocks})
    return config.document


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """A fresh emulator with the three state machines and the mock config; no function, so no worker.
    Retry intervals are scaled to nothing (SFN_WAIT_SCALE=0)."""
    port = emulator.free_port()
    process = emulator.start(port, {"SFN_WAIT_SCALE": "0"})
    assert process is not None, f"port {port} was expected to be free"
    try:
        # The emulator checks that a state machine's role exists (it does not evaluate its policies).
        client("iam", port).create_role(
            RoleName=ROLE_ARN.rsplit("/", 1)[-1],
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "states.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        stepfunctions = client("stepfunctions", port)
        for machine in MACHINES:
            created = stepfunctions.create_state_machine(
                name=machine.name, definition=json.dumps(definition_of(machine)), roleArn=ROLE_ARN, type=machine.type
            )
            assert created["stateMachineArn"] == machine.arn
        body = json.dumps({"stepfunctions._sfn_mock_config": mock_config()}).encode()
        posted = urllib.request.Request(  # noqa: S310 - the local emulator, http only
            f"{emulator.endpoint(port)}/_ministack/config", data=body, method="POST"
        )
        with urllib.request.urlopen(posted, timeout=5) as answer:  # noqa: S310 - the local emulator, http only
            assert "stepfunctions._sfn_mock_config" in json.load(answer)["applied"]
        yield Lab(port, stepfunctions, client("lambda", port))
    finally:
        emulator.stop_pid(process.pid)
        emulator.forget(port)


def run(lab: Lab, machine: Machine, case: str, payload: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run `case` of `machine` to its end: the execution's description and its history."""
    arn = f"{machine.arn}#{case}"
    if machine.type == "EXPRESS":
        execution = lab.stepfunctions.start_sync_execution(stateMachineArn=arn, input=json.dumps(payload))
    else:
        started = lab.stepfunctions.start_execution(
            stateMachineArn=arn, name=uuid.uuid4().hex, input=json.dumps(payload)
        )

        def finished() -> dict[str, Any] | None:
            described = lab.stepfunctions.describe_execution(executionArn=started["executionArn"])
            return None if described["status"] == "RUNNING" else described

        execution = wait_until(finished, RUN_DEADLINE_SECONDS, f"{machine.name}#{case} to finish", interval=0.05)
    return execution, history(lab.stepfunctions, execution["executionArn"])


def assert_only_mocks_answered(events: list[dict[str, Any]]) -> None:
    """No task reached a real integration: a mocked Return leaves no TaskSucceeded, and every failure
    is one this module injected (a real call would fail: there is nothing behind the fake ARNs)."""
    assert not [e for e in events if e["type"] == "TaskSucceeded"], "a task was answered by a real integration"
    real = [f for f in task_failures(events) if not f["cause"].startswith(INJECTED)]
    assert not real, f"a task was not mocked and really called: {real}"


def test_no_lambda_function_exists_so_no_task_can_reach_a_worker(lab: Lab) -> None:
    assert lab.awslambda.list_functions()["Functions"] == []


# ------------------------------------------------------------------------------------------ single states
CHOICE_PARAMS = [
    pytest.param(
        branch,
        machine,
        payload,
        id=declare("test_a_choice_sends_each_named_input_down_its_branch", f"{asl}:{state}:{spec}", branch),
    )
    for (asl, state), rules in CHOICE_INPUTS.items()
    for key, inputs in rules.items()
    for spec, *rest in inputs
    for machine, payload in [rest if len(rest) == 2 else (BY_ASL[asl], rest[0])]
    for branch in [choice_branch(asl, state, key)]
]


@pytest.mark.parametrize(("branch", "machine", "payload"), CHOICE_PARAMS)
def test_a_choice_sends_each_named_input_down_its_branch(
    lab: Lab, request: pytest.FixtureRequest, branch: Branch, machine: Machine, payload: Any
) -> None:
    assert branch.target is not None, f"the ASL has no {branch} any more: update CHOICE_INPUTS"
    state = state_at(definition_of(machine), branch.state)
    answer = lab.stepfunctions.test_state(definition=json.dumps(state), roleArn=ROLE_ARN, input=json.dumps(payload))
    assert (answer["status"], answer.get("nextState")) == ("SUCCEEDED", branch.target), answer
    assert json.loads(answer["output"]) == payload  # a Choice passes its input on unchanged
    exercised(request, branch)


CATCH_PARAMS = [
    pytest.param(
        branch,
        state,
        id=declare("test_a_task_error_goes_to_its_catch_with_the_error_at_its_result_path", str(branch), branch),
    )
    for branch, state in single_task_catches()
]


@pytest.mark.parametrize(("branch", "state"), CATCH_PARAMS)
def test_a_task_error_goes_to_its_catch_with_the_error_at_its_result_path(
    lab: Lab, request: pytest.FixtureRequest, branch: Branch, state: dict[str, Any]
) -> None:
    catcher = state["Catch"][branch.index]
    error = error_for(state, state["Catch"], branch.index)
    cause = f"{INJECTED}: {error} for {branch}"
    document = document_for(branch.asl, branch.state)
    answer = lab.stepfunctions.test_state(
        definition=json.dumps(state),
        roleArn=ROLE_ARN,
        input=json.dumps(document),
        mock={"errorOutput": {"error": error, "cause": cause}},
        # Its retries are spent (AWS reports RETRIABLE before; ministack looks at the Catch first).
        stateConfiguration={"retrierRetryCount": retries_spent(state, error)},
    )
    assert (answer["status"], answer.get("nextState"), answer.get("error")) == ("CAUGHT_ERROR", branch.target, error)
    error_output = {"Error": error, "Cause": cause}
    if not is_jsonata(state):
        assert json.loads(answer["output"]) == with_path(document, catcher.get("ResultPath", "$"), error_output)
    elif "Output" not in catcher:  # JSONata: the error output is the state output, the next state's input
        assert json.loads(answer["output"]) == error_output
    # else: ministack's TestState ignores a JSONata catcher's Output (and Assign); the whole paths show it.
    exercised(request, branch)


RETRIABLE_PARAMS = [
    pytest.param(
        branch,
        state,
        error,
        id=declare("test_an_error_only_a_retry_handles_is_retriable_until_its_attempts_are_spent", str(branch), branch),
    )
    for branch, state, error in uncaught_retries()
]


@pytest.mark.parametrize(("branch", "state", "error"), RETRIABLE_PARAMS)
def test_an_error_only_a_retry_handles_is_retriable_until_its_attempts_are_spent(
    lab: Lab, request: pytest.FixtureRequest, branch: Branch, state: dict[str, Any], error: str
) -> None:
    max_attempts = state["Retry"][branch.index].get("MaxAttempts", 3)

    def attempt(retried: int) -> dict[str, Any]:
        return lab.stepfunctions.test_state(
            definition=json.dumps(state),
            roleArn=ROLE_ARN,
            input=json.dumps(document_for(branch.asl, branch.state)),
            mock={"errorOutput": {"error": error, "cause": f"{INJECTED}: {error}"}},
            stateConfiguration={"retrierRetryCount": retried},
        )

    assert [attempt(retried)["status"] for retried in range(max_attempts)] == ["RETRIABLE"] * max_attempts
    spent = attempt(max_attempts)
    assert (spent["status"], spent.get("error")) == ("FAILED", error)
    exercised(request, branch)


# ------------------------------------------------------------------------------------------ whole paths
PATH_PARAMS = [
    pytest.param(
        path, id=declare("test_a_path_enters_exactly_its_states_and_ends_as_specified", path.spec, *path.covers)
    )
    for path in PATHS
]


@pytest.mark.parametrize("path", PATH_PARAMS)
def test_a_path_enters_exactly_its_states_and_ends_as_specified(
    lab: Lab, request: pytest.FixtureRequest, path: PathCase
) -> None:
    execution, events = run(lab, path.machine, path.case, path.input)

    assert tuple(states_entered(events)) == path.states
    assert execution["status"] == path.status, execution
    if path.status == "SUCCEEDED":
        output = json.loads(execution["output"])
        assert {key: output.get(key) for key in path.output} == path.output
    else:
        assert execution.get("error") == path.error, execution
        if path.cause is not None:
            assert execution.get("cause") == path.cause
    assert_only_mocks_answered(events)
    for branch in path.covers:
        exercised(request, branch)


RETRY_PARAMS = [
    pytest.param(
        retry,
        id=declare(
            "test_an_error_a_retry_matches_is_attempted_max_attempts_more_times_then_handled",
            f"{retry.branch} {retry.error}",
            retry.branch,
        ),
    )
    for retry in RETRY_CASES
]


@pytest.mark.parametrize("retry", RETRY_PARAMS)
def test_an_error_a_retry_matches_is_attempted_max_attempts_more_times_then_handled(
    lab: Lab, request: pytest.FixtureRequest, retry: RetryCase
) -> None:
    machine = retry.base.machine
    execution, events = run(lab, machine, retry.case, retry.base.input)

    attempts = [f for f in task_failures(events) if f["cause"] == retry.cause]
    assert len(attempts) == 1 + retry.max_attempts, f"{len(attempts)} attempts of {retry.state_name}"
    assert {f["error"] for f in attempts} == {retry.error}
    if "/" not in retry.branch.state:  # a top-level state: after its retries, its Catch (or the run's end)
        state = state_at(definition_of(machine), retry.branch.state)
        entered = states_entered(events)
        after = entered[entered.index(retry.state_name) + 1 :]
        caught = first_match(state.get("Catch", []), retry.error)
        if caught:
            assert after[:1] == [caught[1]["Next"]]
        else:
            assert (after, execution["status"], execution.get("error")) == ([], "FAILED", retry.error)
    assert execution["status"] in ("SUCCEEDED", "FAILED")
    assert_only_mocks_answered(events)
    exercised(request, retry.branch)


# ------------------------------------------------------------------------------------------ coverage
def test_every_choice_catch_and_retry_in_the_asl_is_covered() -> None:
    in_asl = {branch for asl, machine in BY_ASL.items() for branch in branches(asl, definition_of(machine))}
    hints = {
        "Choices": "write an input for it in CHOICE_INPUTS",
        "Default": "write an input for it in CHOICE_INPUTS",
        "Catch": "a Task's Catch is tested as read from the ASL; a Map's or Parallel's needs a PathCase that covers it",
        "Retry": "no PathCase enters this state with an answer: add one to PATHS",
    }
    undeclared = [f"{branch}: {hints[branch.kind]}" for branch in sorted(in_asl) if branch not in DECLARED]
    stale = [f"{branch}: not in the ASL any more" for branch in sorted(DECLARED) if branch not in in_asl]
    unshown = [
        f"{branch}: {sorted(DECLARED.get(branch, set()) & RAN)} ran without showing it taken"
        for branch in sorted(in_asl)
        if DECLARED.get(branch, set()) & RAN and not EXERCISED.get(branch)
    ]
    assert not (undeclared + stale + unshown), "\n".join(undeclared + stale + unshown)
