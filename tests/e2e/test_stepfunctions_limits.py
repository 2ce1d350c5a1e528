"""Step Functions' payload and history limits hold in the embedded AWS, failing executions as AWS fails them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from vaultline.aws import client
from vaultline_dev.embedded import EmbeddedAws
from vaultline_dev.embedded.stepfunctions_limits import HISTORY_LIMIT_CAUSE, MAX_HISTORY_EVENTS, MAX_PAYLOAD_BYTES

pytestmark = pytest.mark.e2e
ROLE = "arn:aws:iam::123456789012:role/limits-test"


def _run(definition: dict[str, Any], execution_input: str = "{}") -> dict[str, Any]:
    sfn = client("stepfunctions")
    machine = sfn.create_state_machine(
        name=f"limits-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input=execution_input)["executionArn"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        description: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if description["status"] != "RUNNING":
            return description
        time.sleep(0.05)
    raise AssertionError(f"{arn} still running")


def _pass_result(size: int, catch: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A Pass state whose output is ``size`` bytes of JSON ({"a":"xx...x"}), inside a catching Parallel if asked."""
    big = {"Type": "Pass", "Result": {"a": "x" * (size - 8)}, "End": True}
    if not catch:
        return {"StartAt": "Big", "States": {"Big": big}}
    # A Pass state cannot Catch; a Parallel around it can, which is where our workflows catch.
    wrap = {"Type": "Parallel", "Branches": [{"StartAt": "Big", "States": {"Big": big}}], "Catch": catch, "End": True}
    return {"StartAt": "Wrap", "States": {"Wrap": wrap, "Caught": {"Type": "Succeed"}}}


def test_state_output_over_256_kib_fails_the_execution_with_data_limit_exceeded(embedded: EmbeddedAws) -> None:
    result = _run(_pass_result(MAX_PAYLOAD_BYTES + 1))
    assert result["status"] == "FAILED"
    assert result["error"] == "States.DataLimitExceeded"


def test_state_output_of_exactly_256_kib_is_allowed(embedded: EmbeddedAws) -> None:
    assert _run(_pass_result(MAX_PAYLOAD_BYTES))["status"] == "SUCCEEDED"


def test_data_limit_exceeded_is_not_caught_by_states_all(embedded: EmbeddedAws) -> None:
    # AWS: States.ALL does not catch the terminal States.DataLimitExceeded; the execution fails.
    result = _run(_pass_result(MAX_PAYLOAD_BYTES + 1, catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}]))
    assert result["status"] == "FAILED"
    assert result["error"] == "States.DataLimitExceeded"


def test_data_limit_exceeded_named_in_a_catch_is_caught(embedded: EmbeddedAws) -> None:
    catch = [{"ErrorEquals": ["States.DataLimitExceeded"], "Next": "Caught"}]
    assert _run(_pass_result(MAX_PAYLOAD_BYTES + 1, catch=catch))["status"] == "SUCCEEDED"


def test_execution_input_over_256_kib_fails_the_first_state(embedded: EmbeddedAws) -> None:
    # The first state's output is small: only the check of its input can fail it.
    shrink = {"Type": "Pass", "Parameters": {"small": True}, "End": True}
    definition = {"StartAt": "Shrink", "States": {"Shrink": shrink}}
    result = _run(definition, json.dumps({"blob": "x" * MAX_PAYLOAD_BYTES}))
    assert result["status"] == "FAILED"
    assert result["error"] == "States.DataLimitExceeded"


def test_loop_past_25000_history_events_fails_as_aws_fails_it(embedded: EmbeddedAws) -> None:
    # Four events per round (Pass entered/exited, Choice entered/exited): 7,000 rounds need 28,000 events.
    definition = {
        "StartAt": "Count",
        "States": {
            "Count": {"Type": "Pass", "Parameters": {"n.$": "States.MathAdd($.n, 1)"}, "Next": "Again"},
            "Again": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericLessThan": 7000, "Next": "Count"}],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }
    result = _run(definition, json.dumps({"n": 0}))
    assert (result["status"], result.get("error"), result.get("cause")) == (
        "FAILED",
        "States.Runtime",
        HISTORY_LIMIT_CAUSE,
    )
    events = _history(result["executionArn"])
    assert len(events) == MAX_HISTORY_EVENTS
    assert [(e["id"], e["type"]) for e in events[-2:]] == [(24_999, "PassStateExited"), (25_000, "ExecutionFailed")]


def _history(execution_arn: str) -> list[dict[str, Any]]:
    sfn = client("stepfunctions")
    events: list[dict[str, Any]] = []
    args: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**args)
        events += page["events"]
        if not page.get("nextToken"):
            return events
        args["nextToken"] = page["nextToken"]
