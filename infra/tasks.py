"""The task states every state machine is built from: Lambda invokes with their retriers and timeout, the
distributed map over a work list in the vault, and the outcome events. One place, so that the backup, restore and
maintenance machines retry, time out and announce the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import constants as c
from infra.vault import VaultResources

EVENT_RETRY_ATTEMPTS = 3


def task_timeout(function: lambda_.IFunction) -> sfn.Timeout:
    """A Lambda task's timeout: the function's own plus a small margin (Lambda reports its timeout first)."""
    timeout = function.timeout if isinstance(function, lambda_.Function) else None
    seconds = (timeout.to_seconds() if timeout else c.FUNCTION_TIMEOUT_MINUTES * 60) + c.TASK_TIMEOUT_MARGIN_SECONDS
    return sfn.Timeout.duration(Duration.seconds(seconds))


def lambda_retry(state: sfn.TaskStateBase, *extra_errors: str) -> None:
    """Retry the Lambda service's transient errors (and our own retryable one) with full jitter."""
    state.add_retry(
        errors=[*c.LAMBDA_TRANSIENT_ERRORS, *extra_errors, c.RETRYABLE_ERROR],
        interval=Duration.seconds(c.RETRY_INTERVAL_SECONDS),
        backoff_rate=c.RETRY_BACKOFF_RATE,
        max_attempts=c.RETRY_MAX_ATTEMPTS,
        jitter_strategy=sfn.JitterType.FULL,
    )


def locked_retry(state: sfn.TaskStateBase) -> None:
    """Wait out a conflicting vault lock (``VaultLocked``, raised under its own name): about half an hour with
    backoff. Every step that takes a vault lock (prune's exclusive one, the Prepare steps' shared one) has it."""
    state.add_retry(
        errors=[c.VAULT_LOCKED_ERROR],
        interval=Duration.seconds(c.LOCKED_RETRY_INTERVAL_SECONDS),
        backoff_rate=c.LOCKED_RETRY_BACKOFF_RATE,
        max_attempts=c.LOCKED_RETRY_MAX_ATTEMPTS,
        jitter_strategy=sfn.JitterType.FULL,
    )


def invoke(
    scope: Construct,
    construct_id: str,
    function: lambda_.IFunction,
    *,
    result_path: str | None = None,
    state_name: str | None = None,
    idempotent: bool = False,
) -> tasks.LambdaInvoke:
    """A direct invoke (the state in, the function's return value to ``result_path``, or as the new state) with
    the Lambda retries; ``idempotent`` steps (workers, polls) also run again after a timed-out or killed attempt."""
    task = tasks.LambdaInvoke(
        scope,
        construct_id,
        state_name=state_name,
        lambda_function=function,
        payload_response_only=True,
        result_path=result_path,
        retry_on_service_exceptions=False,
        task_timeout=task_timeout(function),
    )
    lambda_retry(task, *(c.LAMBDA_TIMEOUT_ERRORS if idempotent else ()))
    return task


def prepare(
    scope: Construct,
    construct_id: str,
    function: lambda_.IFunction,
    *,
    result: dict[str, str],
    takes_lock: bool,
    state_name: str | None = None,
) -> tasks.LambdaInvoke:
    """A workflow's first step: the request and the execution id in, the selected ``result`` at ``$.prepared``.

    A step that takes the vault's shared lock (a backup's Prepare) waits out a prune's exclusive one, as prune
    waits for backups.
    """
    task = tasks.LambdaInvoke(
        scope,
        construct_id,
        state_name=state_name,
        lambda_function=function,
        payload=sfn.TaskInput.from_object(
            {"request": sfn.JsonPath.entire_payload, "execution": sfn.JsonPath.execution_id}
        ),
        result_selector={field: sfn.JsonPath.string_at(path) for field, path in result.items()},
        result_path="$.prepared",
        retry_on_service_exceptions=False,
        task_timeout=task_timeout(function),
    )
    if takes_lock:
        locked_retry(task)
    lambda_retry(task)
    return task


class StrictDistributedMap(sfn.DistributedMap):
    """A Distributed Map that always writes ``ToleratedFailureCount``.

    CDK leaves the field out when it is 0 (the service default). We write it anyway: the definition is a contract that
    people and the embedded-AWS harness read, and "no item may fail" deserves to be explicit.
    """

    def to_state_json(self, state_machine_query_language: sfn.QueryLanguage | None = None) -> dict[Any, Any]:
        state: dict[Any, Any] = dict(super().to_state_json(state_machine_query_language))
        state.setdefault("ToleratedFailureCount", 0)
        return state


@dataclass(frozen=True)
class WorkList:
    """Where a Distributed Map finds its work and what it hands each worker: paths into the state as the map starts."""

    key: str  # the work list's key in the vault, which Prepare staged
    concurrency: str  # the map's MaxConcurrency
    item_selector: dict[str, str]  # ItemSelector field -> path


def work_list_map(
    scope: Construct,
    construct_id: str,
    *,
    state_name: str,
    vault: VaultResources,
    work: WorkList,
    processor: sfn.IChainable,
    result_path: str = "$.map",
) -> StrictDistributedMap:
    """A Distributed Map over the work list Prepare staged in the vault, no item allowed to fail, results written
    to the vault (the summaries may outgrow a 256 KiB payload) and described at ``result_path``."""
    batches = StrictDistributedMap(
        scope,
        construct_id,
        state_name=state_name,
        item_reader=sfn.S3JsonItemReader(bucket=vault.bucket, key=sfn.JsonPath.string_at(work.key)),
        item_selector={field: sfn.JsonPath.string_at(path) for field, path in work.item_selector.items()},
        max_concurrency_path=sfn.JsonPath.string_at(work.concurrency),
        tolerated_failure_count=0,
        result_writer_v2=sfn.ResultWriterV2(bucket=vault.bucket, prefix=c.MAP_RESULTS_PREFIX),
        # STANDARD child executions: a batch may run for many minutes, and the embedded AWS only runs STANDARD.
        map_execution_type=sfn.StateMachineType.STANDARD,
        result_path=result_path,
    )
    batches.item_processor(processor)
    return batches


def put_event(scope: Construct, state_id: str, detail_type: str, detail: sfn.TaskInput) -> tasks.EventBridgePutEvents:
    """A PutEvents on the default bus that leaves the state untouched."""
    task = tasks.EventBridgePutEvents(
        scope,
        state_id,
        entries=[tasks.EventBridgePutEventsEntry(detail=detail, detail_type=detail_type, source=c.EVENT_SOURCE)],
        result_path=sfn.JsonPath.DISCARD,
    )
    task.add_retry(
        errors=[sfn.Errors.ALL],
        interval=Duration.seconds(c.RETRY_INTERVAL_SECONDS),
        backoff_rate=c.RETRY_BACKOFF_RATE,
        max_attempts=EVENT_RETRY_ATTEMPTS,
        jitter_strategy=sfn.JitterType.FULL,
    )
    return task


def flag_set(flag: str) -> sfn.Condition:
    """The input has the boolean at ``flag`` and it is true (an absent flag is false, not a Choice error)."""
    return sfn.Condition.and_(sfn.Condition.is_present(flag), sfn.Condition.boolean_equals(flag, True))


def state_machine(
    scope: Construct, *, comment: str, definition: sfn.IChainable, log_group: logs.ILogGroup
) -> sfn.StateMachine:
    """A STANDARD, traced state machine logging every event to ``log_group`` but no execution data: inputs and
    results name object keys and recovery points, which belong in the vault and the outcome events, not in logs."""
    return sfn.StateMachine(
        scope,
        "StateMachine",
        comment=comment,
        state_machine_type=sfn.StateMachineType.STANDARD,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        timeout=Duration.hours(c.STATE_MACHINE_TIMEOUT_HOURS),
        tracing_enabled=True,
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
    )


def catch_all(states: tuple[sfn.TaskStateBase | sfn.DistributedMap, ...], handler: sfn.IChainable) -> None:
    """Any error of these states goes to ``handler`` with the error at ``$.error``."""
    for state in states:
        state.add_catch(handler, errors=[sfn.Errors.ALL], result_path="$.error")
