"""A Distributed Map's child executions are listed and described on the embedded AWS as AWS lists them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from vaultline.aws import client
from vaultline_dev.embedded import EmbeddedAws

pytestmark = pytest.mark.e2e
ROLE = "arn:aws:iam::123456789012:role/map-children-test"

# Items with "fail": true end in a Fail state with their own error and cause; the rest pass their input on.
ITEM_PROCESSOR = {
    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
    "StartAt": "Which",
    "States": {
        "Which": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "Broken"}],
            "Default": "Fine",
        },
        "Broken": {"Type": "Fail", "Error": "ItemBroken", "Cause": "item could not be read"},
        "Fine": {"Type": "Pass", "End": True},
    },
}


def _run_map(items: list[dict[str, Any]]) -> str:
    """Run a Distributed Map over ``items`` that tolerates every failure; the map run's ARN."""
    sfn = client("stepfunctions")
    definition = {
        "StartAt": "Each",
        "States": {
            "Each": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": ITEM_PROCESSOR,
                "ToleratedFailureCount": 100,
                "MaxConcurrency": 2,
                "End": True,
            }
        },
    }
    machine = sfn.create_state_machine(
        name=f"children-{uuid.uuid4().hex[:12]}", definition=json.dumps(definition), roleArn=ROLE
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"items": items}))["executionArn"]
    deadline = time.monotonic() + 120
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still running"
        time.sleep(0.05)
    (map_run,) = sfn.list_map_runs(executionArn=arn)["mapRuns"]
    return str(map_run["mapRunArn"])


def _items(failing: int, passing: int) -> list[dict[str, Any]]:
    return [{"n": n, "fail": True} for n in range(failing)] + [{"n": n, "fail": False} for n in range(passing)]


def test_each_item_is_a_child_execution_of_its_map_run(embedded: EmbeddedAws) -> None:
    map_run = _run_map(_items(failing=2, passing=3))
    children = client("stepfunctions").list_executions(mapRunArn=map_run)["executions"]
    assert len(children) == 5
    assert sorted(child["status"] for child in children) == ["FAILED"] * 2 + ["SUCCEEDED"] * 3
    assert all(child["mapRunArn"] == map_run for child in children)
    # arn:aws:states:R:A:execution:<machine>/<label>:<id>, whose state machine is <machine>/<label>.
    for child in children:
        assert child["executionArn"].startswith(child["stateMachineArn"].replace(":stateMachine:", ":execution:"))
        assert child["executionArn"].endswith(":" + child["name"])
    starts = [child["startDate"] for child in children]
    assert starts == sorted(starts, reverse=True), "AWS lists the newest first"


def test_a_failed_child_describes_its_own_error_and_cause(embedded: EmbeddedAws) -> None:
    sfn = client("stepfunctions")
    map_run = _run_map(_items(failing=1, passing=2))
    (failed,) = sfn.list_executions(mapRunArn=map_run, statusFilter="FAILED")["executions"]
    described = sfn.describe_execution(executionArn=failed["executionArn"])
    assert (described["status"], described["error"], described["cause"]) == (
        "FAILED",
        "ItemBroken",
        "item could not be read",
    )
    assert json.loads(described["input"]) == {"n": 0, "fail": True}
    assert described["mapRunArn"] == map_run and "stopDate" in described and "output" not in described

    succeeded = sfn.list_executions(mapRunArn=map_run, statusFilter="SUCCEEDED")["executions"]
    outputs = [json.loads(sfn.describe_execution(executionArn=c["executionArn"])["output"]) for c in succeeded]
    assert sorted(output["n"] for output in outputs) == [0, 1]


def test_children_page_by_max_results_and_next_token(embedded: EmbeddedAws) -> None:
    sfn = client("stepfunctions")
    map_run = _run_map(_items(failing=0, passing=5))
    seen: list[str] = []
    pages = 0
    request: dict[str, Any] = {"mapRunArn": map_run, "maxResults": 2}
    while True:
        page = sfn.list_executions(**request)
        pages += 1
        seen += [child["executionArn"] for child in page["executions"]]
        if "nextToken" not in page:
            break
        request["nextToken"] = page["nextToken"]
    assert pages == 3 and len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize(
    ("request_fields", "code"),
    [
        ({"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:x"}, "ValidationException"),
        ({"statusFilter": "BROKEN"}, "ValidationException"),
        ({"maxResults": 1001}, "ValidationException"),
        ({"nextToken": "not-a-token"}, "InvalidToken"),
    ],
)
def test_bad_child_listings_are_refused(embedded: EmbeddedAws, request_fields: dict[str, Any], code: str) -> None:
    map_run = _run_map(_items(failing=0, passing=1))
    with pytest.raises(ClientError) as refused:
        client("stepfunctions").list_executions(mapRunArn=map_run, **request_fields)
    assert refused.value.response["Error"]["Code"] == code


def test_an_unknown_map_run_is_not_found(embedded: EmbeddedAws) -> None:
    unknown = "arn:aws:states:us-east-1:123456789012:mapRun:nothing/label:00000000-0000-0000-0000-000000000000"
    with pytest.raises(ClientError) as refused:
        client("stepfunctions").list_executions(mapRunArn=unknown)
    assert refused.value.response["Error"]["Code"] == "ResourceNotFound"
