"""Driving a deployed stack (in AWS or the embedded AWS): find it by name, start its state machines, follow them."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from vaultline.aws import client
from vaultline.errors import UsageError, VaultlineError

TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


class ExecutionFailed(VaultlineError):
    """A state machine execution ended in anything but SUCCEEDED."""


@dataclass(frozen=True)
class StackInfo:
    """The stack outputs the CLI needs."""

    name: str
    backup_state_machine: str
    restore_state_machine: str
    vault_bucket: str
    plans: dict[str, list[dict[str, Any]]]

    @property
    def vault_url(self) -> str:
        return f"s3://{self.vault_bucket}"


def find_stack(name: str) -> StackInfo:
    """Read the stack's outputs; fail with the stack name if it is not deployed."""
    try:
        stacks = client("cloudformation").describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        raise VaultlineError(f"stack {name} is not deployed in this account and region ({exc})") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    required = ("BackupStateMachineArn", "RestoreStateMachineArn", "VaultBucketName", "Plans")
    missing = [key for key in required if key not in outputs]
    if missing:
        raise VaultlineError(f"stack {name} lacks the outputs {', '.join(missing)}: is it a Vaultline stack?")
    raw = json.loads(outputs["Plans"])
    plans = {plan: (inputs if isinstance(inputs, list) else [inputs]) for plan, inputs in raw.items()}
    return StackInfo(
        name=name,
        backup_state_machine=outputs["BackupStateMachineArn"],
        restore_state_machine=outputs["RestoreStateMachineArn"],
        vault_bucket=outputs["VaultBucketName"],
        plans=plans,
    )


def plan_inputs(stack: StackInfo, plan: str) -> list[dict[str, Any]]:
    if plan not in stack.plans:
        known = ", ".join(sorted(stack.plans)) or "none"
        raise UsageError(f"plan {plan!r} is not deployed in stack {stack.name} (plans: {known})")
    return stack.plans[plan]


def start(state_machine: str, payload: dict[str, Any], name: str | None = None) -> str:
    # A unique name per run: Step Functions keeps names 90 days, and a client-chosen one makes the run findable.
    run_name = name or f"vaultline-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    args: dict[str, Any] = {"stateMachineArn": state_machine, "input": json.dumps(payload), "name": run_name}
    arn: str = client("stepfunctions").start_execution(**args)["executionArn"]
    return arn


@dataclass
class MapProgress:
    total: int = 0
    succeeded: int = 0
    failed: int = 0


def map_progress(execution_arn: str) -> MapProgress:
    """Items done and failed in the execution's Distributed Map run, if it has started one."""
    sfn = client("stepfunctions")
    progress = MapProgress()
    for run in sfn.list_map_runs(executionArn=execution_arn).get("mapRuns", []):
        counts = sfn.describe_map_run(mapRunArn=run["mapRunArn"]).get("itemCounts", {})
        progress.total += counts.get("total", 0)
        progress.succeeded += counts.get("succeeded", 0)
        progress.failed += counts.get("failed", 0)
    return progress


def follow(
    execution_arn: str,
    on_progress: Callable[[str, MapProgress], None] | None = None,
    poll_seconds: float = 1.0,
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    """Wait for an execution to end; return its output, or raise ExecutionFailed with its error and cause."""
    sfn = client("stepfunctions")
    deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
    while True:
        description = sfn.describe_execution(executionArn=execution_arn)
        status = description["status"]
        if on_progress:
            on_progress(status, map_progress(execution_arn))
        if status in TERMINAL:
            break
        if deadline and time.monotonic() > deadline:
            raise ExecutionFailed(f"execution {execution_arn} still {status} after {timeout_seconds} s")
        time.sleep(poll_seconds)
    if status != "SUCCEEDED":
        error, cause = root_cause(execution_arn, description)
        raise ExecutionFailed(f"execution {execution_arn} {status} ({description.get('error')}): {error}: {cause}")
    output: dict[str, Any] = json.loads(description.get("output") or "{}")
    return output


def root_cause(execution_arn: str, description: dict[str, Any]) -> tuple[str, str]:
    """The first task failure in the history (what Abort was told), else the execution's own error."""
    sfn = client("stepfunctions")
    history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)
    map_run = ""
    for event in history.get("events", []):
        map_run = event.get("mapRunStartedEventDetails", {}).get("mapRunArn", map_run)
        for key in ("taskFailedEventDetails", "lambdaFunctionFailedEventDetails", "mapRunFailedEventDetails"):
            details = event.get(key)
            if details:
                error, cause = details.get("error", "?"), _message(details.get("cause", ""))
                if error == MAP_THRESHOLD_EXCEEDED and map_run:
                    cause += _failed_items(sfn, map_run)
                return error, cause
    return description.get("error", "?"), _message(description.get("cause", ""))


# A Distributed Map's own error when its items failed: the items' errors are in the map run's child executions,
# which the parent's history does not hold.
MAP_THRESHOLD_EXCEEDED = "States.ExceedToleratedFailureThreshold"


def _failed_items(sfn: Any, map_run_arn: str) -> str:
    counts = sfn.describe_map_run(mapRunArn=map_run_arn).get("itemCounts", {})
    summary = f" ({counts.get('failed', 0)} of {counts.get('total', 0)} items failed"
    failed = sfn.list_executions(mapRunArn=map_run_arn, statusFilter="FAILED", maxResults=1).get("executions", [])
    if not failed:
        return f"{summary}; each one's error is in the failed child executions of map run {map_run_arn})"
    child = sfn.describe_execution(executionArn=failed[0]["executionArn"])
    return (
        f"{summary}; the latest, {child['executionArn']}: {child.get('error', '?')}: "
        f"{_message(child.get('cause', ''))})"
    )


def _message(cause: str) -> str:
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(cause).get("errorMessage", cause))
    return cause
