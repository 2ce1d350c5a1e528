"""The backup and restore state machines (STANDARD). Their shape is a contract with the handlers in functions/
and is described in docs/state-machines.md; change both together.

Both read::

    Prepare -> <Batches: Distributed Map over the work list in the vault> -> Commit|Finish -> <Succeeded event> -> Done
       \\______________________ any error (Catch States.ALL -> $.error) ___/
                                     -> Abort -> <Failed event> -> Failed

and both start with a Choice that sends DynamoDB sources (backup: ``$.source.type == "dynamodb"``) and targets
(restore: ``$.target`` matches ``dynamodb://*``) down a branch of the same shape whose map items are scan segments
(backup; a segment worker loops on its own cursor) or segment parts (restore). They share Abort and the events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import constants as c
from infra.functions import Functions
from infra.logs import LogKey
from infra.maintenance import lambda_retry as _lambda_retry
from infra.maintenance import locked_retry, retention_state
from infra.maintenance import task_timeout as _task_timeout
from infra.nag import acknowledge, logical_id
from infra.vault import Vault


@dataclass(frozen=True)
class TableShape:
    """The DynamoDB branch of a workflow (docs/state-machines.md, "DynamoDB")."""

    choice_state: str  # "SourceType" | "TargetType"
    condition: sfn.Condition  # true: the DynamoDB branch; false: the S3 path
    prepare_state: str
    prepare: lambda_.IFunction
    prepare_result: dict[str, str]
    map_state: str
    work_list_key: str  # path of the work list's key when the map starts
    item_selector: dict[str, str]
    worker_state: str
    worker: lambda_.IFunction
    finish_state: str
    finish: lambda_.IFunction
    # Backup only: the export-status poll before the map, and the worker's cursor loop inside it.
    export_status: lambda_.IFunction | None = None
    export_poll_seconds: int = c.EXPORT_POLL_SECONDS
    loop: bool = False


@dataclass(frozen=True)
class WorkflowShape:
    """What differs between the backup and the restore workflow."""

    kind: str  # "Backup" | "Restore"
    prepare: lambda_.IFunction
    prepare_result: dict[str, str]  # ResultSelector field -> path into the Lambda response
    item_selector: dict[str, str]  # ItemSelector field -> path
    worker: lambda_.IFunction
    finish_state: str  # "Commit" | "Finish"
    finish: lambda_.IFunction
    finish_result_path: str
    abort: lambda_.IFunction
    succeeded_detail_type: str
    failed_detail_type: str
    table: TableShape | None = None
    # Backup only: the plan's keep rules applied after a successful commit (infra/maintenance.py: retention_state).
    retention: lambda_.IFunction | None = None


class _StrictDistributedMap(sfn.DistributedMap):
    """A Distributed Map that always writes ``ToleratedFailureCount``.

    CDK leaves the field out when it is 0 (the service default). We write it anyway: the definition is a contract that
    people and the embedded-AWS harness read, and "no item may fail" deserves to be explicit.
    """

    def to_state_json(self, state_machine_query_language: sfn.QueryLanguage | None = None) -> dict[Any, Any]:
        state: dict[Any, Any] = dict(super().to_state_json(state_machine_query_language))
        state.setdefault("ToleratedFailureCount", 0)
        return state


class Workflow(Construct):
    """One STANDARD state machine of the Prepare -> Distributed Map -> Commit shape, with Abort on any failure."""

    def __init__(
        self, scope: Construct, construct_id: str, *, shape: WorkflowShape, vault: Vault, log_key: LogKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.shape = shape
        kind = shape.kind

        prepare = tasks.LambdaInvoke(
            self,
            "Prepare",
            lambda_function=shape.prepare,
            payload=sfn.TaskInput.from_object(
                {"request": sfn.JsonPath.entire_payload, "execution": sfn.JsonPath.execution_id}
            ),
            result_selector={field: sfn.JsonPath.string_at(path) for field, path in shape.prepare_result.items()},
            result_path="$.prepared",
            retry_on_service_exceptions=False,
            task_timeout=_task_timeout(shape.prepare),
        )
        # A backup's Prepare takes the vault's shared lock: overlapping a prune, it waits for the prune's
        # exclusive one, as prune waits for backups. (A restore takes no lock.)
        if kind == "Backup":
            locked_retry(prepare)
        _lambda_retry(prepare)

        worker = tasks.LambdaInvoke(
            self,
            "Worker",
            state_name=f"{kind}Worker",
            lambda_function=shape.worker,
            # The whole selected item is the event; the function's return value is the item's result.
            payload_response_only=True,
            retry_on_service_exceptions=False,
            task_timeout=_task_timeout(shape.worker),
        )
        # A worker is idempotent (packs are content-addressed), so even a timed-out attempt may run again.
        _lambda_retry(worker, *c.LAMBDA_TIMEOUT_ERRORS)

        batches = _StrictDistributedMap(
            self,
            "Batches",
            state_name=f"{kind}Batches",
            item_reader=sfn.S3JsonItemReader(
                bucket=vault.bucket, key=sfn.JsonPath.string_at("$.prepared.work_list_key")
            ),
            item_selector={field: sfn.JsonPath.string_at(path) for field, path in shape.item_selector.items()},
            max_concurrency_path=sfn.JsonPath.string_at("$.prepared.worker_concurrency"),
            tolerated_failure_count=0,
            # Per-item summaries can exceed the 256 KiB payload limit in aggregate; they go to the vault instead.
            result_writer_v2=sfn.ResultWriterV2(bucket=vault.bucket, prefix=c.MAP_RESULTS_PREFIX),
            # STANDARD child executions: a batch may run for many minutes, and the embedded AWS only runs STANDARD.
            map_execution_type=sfn.StateMachineType.STANDARD,
            result_path="$.map",
        )
        batches.item_processor(worker)

        finish = tasks.LambdaInvoke(
            self,
            shape.finish_state,
            lambda_function=shape.finish,
            payload_response_only=True,
            result_path=shape.finish_result_path,
            retry_on_service_exceptions=False,
            task_timeout=_task_timeout(shape.finish),
        )
        _lambda_retry(finish)

        succeeded = self._put_event(
            f"{kind}Succeeded", shape.succeeded_detail_type, sfn.TaskInput.from_json_path_at(shape.finish_result_path)
        )
        done = sfn.Succeed(self, "Done")
        succeeded.next(done)
        # Commit (S3 and DynamoDB) -> Retention -> the success event; Retention's failure does not fail the backup.
        after_finish: sfn.IChainable = succeeded
        if shape.retention:
            after_finish = retention_state(self, shape.retention, succeeded)

        abort = tasks.LambdaInvoke(
            self,
            "Abort",
            lambda_function=shape.abort,
            payload_response_only=True,
            result_path="$.aborted",
            retry_on_service_exceptions=False,
            task_timeout=_task_timeout(shape.abort),
        )
        _lambda_retry(abort)
        failed_event = self._put_event(f"{kind}Failed", shape.failed_detail_type, sfn.TaskInput.from_json_path_at("$"))
        failed = sfn.Fail(
            self,
            "Failed",
            error=f"{kind}Failed",
            cause=f"The {kind.lower()} failed and was aborted; the '{shape.failed_detail_type}' event has the error.",
        )
        # If recording the failure fails too, still announce it: an unreported failed backup is the worst outcome.
        abort.add_catch(failed_event, errors=[sfn.Errors.ALL], result_path="$.abort_error")
        abort.next(failed_event).next(failed)

        for state in (prepare, batches, finish):
            state.add_catch(abort, errors=[sfn.Errors.ALL], result_path="$.error")

        s3_path = prepare.next(batches).next(finish).next(after_finish)
        definition: sfn.IChainable = s3_path
        if shape.table:
            table_prepare = self._table_branch(shape.table, vault, abort, after_finish)
            # Anything that is not the DynamoDB branch takes the S3 path, whose Prepare validates the input: an
            # unknown source type still ends in Abort and the failure event rather than a silent Choice error.
            definition = (
                sfn.Choice(self, shape.table.choice_state).when(shape.table.condition, table_prepare).otherwise(prepare)
            )

        self.log_group = log_key.log_group(self, "Logs", logs.RetentionDays.THREE_MONTHS)
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment=(
                f"Vaultline {kind.lower()}: S3 or DynamoDB; Prepare, Distributed Map, {shape.finish_state}; "
                "Abort on failure"
            ),
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.hours(c.STATE_MACHINE_TIMEOUT_HOURS),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                # Execution data holds object keys of the sources; keep them out of the logs, they are in the vault.
                include_execution_data=False,
            ),
        )
        # The ItemReader reads and the ResultWriter writes SSE-KMS objects of the vault: CDK grants S3, not KMS.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[vault.key.key_arn])
        )
        self._acknowledge_findings(vault)

    def _acknowledge_findings(self, vault: Vault) -> None:
        shape = self.shape
        functions = [shape.prepare, shape.worker, shape.finish, shape.abort]
        functions += [shape.retention] if shape.retention else []
        if shape.table:
            functions += [shape.table.prepare, shape.table.worker, shape.table.finish]
            functions += [shape.table.export_status] if shape.table.export_status else []
        machine = logical_id(self.state_machine)
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine}"}}]}}]}}'
        )
        acknowledge(
            self.state_machine,
            "AwsSolutions-IAM5",
            "CDK's own grants for this workflow: invoking each function by any version qualifier (ARN:*), the "
            "Distributed Map reading the work list and writing results under the vault bucket (bucket/*), "
            "describing and stopping its own child executions, and X-Ray and log delivery, which have no "
            "resource-level permissions (Resource::*).",
            findings=[
                "Resource::*",
                f"Resource::arn:<AWS::Partition>:s3:::<{logical_id(vault.bucket)}>/*",
                f"Resource::{executions}:*",
                f"Resource::{executions}/*:*",
                *(f"Resource::<{logical_id(function)}.Arn>:*" for function in functions),
            ],
        )

    def _table_branch(
        self, table: TableShape, vault: Vault, abort: sfn.IChainable, succeeded: sfn.IChainable
    ) -> sfn.IChainable:
        """DdbPrepare [-> export poll] -> Distributed Map of segment workers -> DdbCommit|DdbRestoreFinish."""
        prepare = tasks.LambdaInvoke(
            self,
            "DdbPrepareState",
            state_name=table.prepare_state,
            lambda_function=table.prepare,
            payload=sfn.TaskInput.from_object(
                {"request": sfn.JsonPath.entire_payload, "execution": sfn.JsonPath.execution_id}
            ),
            result_selector={field: sfn.JsonPath.string_at(path) for field, path in table.prepare_result.items()},
            result_path="$.prepared",
            retry_on_service_exceptions=False,
            task_timeout=_task_timeout(table.prepare),
        )
        if self.shape.kind == "Backup":
            locked_retry(prepare)
        _lambda_retry(prepare)

        worker = tasks.LambdaInvoke(
            self,
            "DdbWorker",
            state_name=table.worker_state,
            lambda_function=table.worker,
            payload_response_only=True,
            # Backup: keep the item beside the worker's summary, so a continuing segment can be sent back in.
            result_path="$.part" if table.loop else None,
            retry_on_service_exceptions=False,
            task_timeout=_task_timeout(table.worker),
        )
        _lambda_retry(worker, *c.LAMBDA_TIMEOUT_ERRORS)
        processor: sfn.IChainable = worker
        if table.loop:
            # A worker returns done=false with `next` (same segment, next part, cursor) when its time budget runs
            # low; the item loops until the segment is done, so a segment of any size fits 15-minute invocations.
            next_part = sfn.Pass(
                self,
                "DdbNextPart",
                parameters={
                    "recovery_point": sfn.JsonPath.string_at("$.recovery_point"),
                    "item": sfn.JsonPath.object_at("$.part.next"),
                },
            )
            stored = sfn.Succeed(self, "DdbSegmentStored", output_path="$.part")
            worker.next(
                sfn.Choice(self, "DdbSegmentDone")
                .when(sfn.Condition.boolean_equals("$.part.done", True), stored)
                .otherwise(next_part)
            )
            next_part.next(worker)

        segments = _StrictDistributedMap(
            self,
            "DdbMap",
            state_name=table.map_state,
            item_reader=sfn.S3JsonItemReader(bucket=vault.bucket, key=sfn.JsonPath.string_at(table.work_list_key)),
            item_selector={field: sfn.JsonPath.string_at(path) for field, path in table.item_selector.items()},
            max_concurrency_path=sfn.JsonPath.string_at("$.prepared.worker_concurrency"),
            tolerated_failure_count=0,
            result_writer_v2=sfn.ResultWriterV2(bucket=vault.bucket, prefix=c.MAP_RESULTS_PREFIX),
            map_execution_type=sfn.StateMachineType.STANDARD,
            result_path="$.map",
        )
        segments.item_processor(processor)

        finish = tasks.LambdaInvoke(
            self,
            "DdbFinish",
            state_name=table.finish_state,
            lambda_function=table.finish,
            payload_response_only=True,
            result_path=self.shape.finish_result_path,
            retry_on_service_exceptions=False,
            task_timeout=_task_timeout(table.finish),
        )
        _lambda_retry(finish)
        for state in (prepare, segments, finish):
            state.add_catch(abort, errors=[sfn.Errors.ALL], result_path="$.error")
        segments.next(finish).next(succeeded)

        if table.export_status is None:
            prepare.next(segments)
            return prepare

        # Scan mode staged its work list in Prepare; export mode has one once the export is COMPLETED. Either way
        # the map reads the key from $.work.
        scan_work = sfn.Pass(
            self,
            "DdbScanWorkList",
            parameters={"status": "READY", "work_list_key": sfn.JsonPath.string_at("$.prepared.work_list_key")},
            result_path="$.work",
        )
        status = tasks.LambdaInvoke(
            self,
            "DdbExportStatus",
            lambda_function=table.export_status,
            payload_response_only=True,
            result_path="$.work",
            retry_on_service_exceptions=False,
            task_timeout=_task_timeout(table.export_status),
        )
        # A poll only reads the export's status: any attempt may run again.
        _lambda_retry(status, *c.LAMBDA_TIMEOUT_ERRORS)
        status.add_catch(abort, errors=[sfn.Errors.ALL], result_path="$.error")
        wait = sfn.Wait(self, "DdbExportWait", time=sfn.WaitTime.duration(Duration.seconds(table.export_poll_seconds)))
        # The poll loop counts its rounds in $.export_polls and gives up before the execution's history would
        # outgrow Step Functions' 25,000 events (constants.MAX_EXPORT_POLLS), with an error that says so.
        polls_start = sfn.Pass(
            self, "DdbExportPollsStart", result=sfn.Result.from_object({"count": 0}), result_path="$.export_polls"
        )
        polls_count = sfn.Pass(
            self,
            "DdbExportPollCount",
            parameters={"count": sfn.JsonPath.math_add(sfn.JsonPath.number_at("$.export_polls.count"), 1)},
            result_path="$.export_polls",
        )
        poll_limit = sfn.Pass(
            self,
            "DdbExportPollLimit",
            result=sfn.Result.from_object(
                {
                    "Error": c.EXPORT_POLL_LIMIT_ERROR,
                    "Cause": f"the DynamoDB export was still IN_PROGRESS after {c.MAX_EXPORT_POLLS} polls "
                    f"{table.export_poll_seconds} s apart: more would outgrow the execution's "
                    f"{c.HISTORY_EVENT_LIMIT}-event history (raise exportPollSeconds for exports this long)",
                }
            ),
            result_path="$.error",
        )
        poll_limit.next(abort)
        export_failed = sfn.Pass(
            self,
            "DdbExportFailed",
            result=sfn.Result.from_object(
                {"Error": "ExportFailed", "Cause": "the DynamoDB export ended neither COMPLETED nor IN_PROGRESS"}
            ),
            result_path="$.error",
        )
        export_failed.next(abort)
        polls_count.next(
            sfn.Choice(self, "DdbExportPollsLeft")
            .when(sfn.Condition.number_greater_than_equals("$.export_polls.count", c.MAX_EXPORT_POLLS), poll_limit)
            .otherwise(wait.next(status))
        )
        status.next(
            sfn.Choice(self, "DdbExportDone")
            .when(sfn.Condition.string_equals("$.work.status", "COMPLETED"), segments)
            .when(sfn.Condition.string_equals("$.work.status", "IN_PROGRESS"), polls_count)
            .otherwise(export_failed)
        )
        prepare.next(
            sfn.Choice(self, "DdbMode")
            .when(sfn.Condition.string_equals("$.prepared.mode", "export"), polls_start.next(status))
            .otherwise(scan_work.next(segments))
        )
        return prepare

    def _put_event(self, state_id: str, detail_type: str, detail: sfn.TaskInput) -> tasks.EventBridgePutEvents:
        """A PutEvents on the default bus that leaves the state untouched."""
        task = tasks.EventBridgePutEvents(
            self,
            state_id,
            entries=[tasks.EventBridgePutEventsEntry(detail=detail, detail_type=detail_type, source=c.EVENT_SOURCE)],
            result_path=sfn.JsonPath.DISCARD,
        )
        task.add_retry(
            errors=[sfn.Errors.ALL],
            interval=Duration.seconds(c.RETRY_INTERVAL_SECONDS),
            backoff_rate=c.RETRY_BACKOFF_RATE,
            max_attempts=3,
            jitter_strategy=sfn.JitterType.FULL,
        )
        return task


class Workflows(Construct):
    """The backup and the restore state machine."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Functions,
        vault: Vault,
        export_poll_seconds: int = c.EXPORT_POLL_SECONDS,
    ) -> None:
        super().__init__(scope, construct_id)
        self.backup = Workflow(
            self,
            "Backup",
            vault=vault,
            log_key=functions.log_key,
            shape=WorkflowShape(
                kind="Backup",
                prepare=functions.backup_prepare,
                prepare_result={
                    "recovery_point": "$.Payload.recovery_point",
                    "vault_bucket": "$.Payload.vault_bucket",
                    "work_list_key": "$.Payload.work_list_key",
                    "batches": "$.Payload.batches",
                    "objects": "$.Payload.objects",
                    "worker_concurrency": "$.Payload.worker_concurrency",
                },
                item_selector={"recovery_point": "$.prepared.recovery_point", "item": "$$.Map.Item.Value"},
                worker=functions.backup_worker,
                finish_state="Commit",
                finish=functions.backup_commit,
                finish_result_path="$.committed",
                abort=functions.abort,
                retention=functions.by_name["apply_retention"],
                succeeded_detail_type=c.BACKUP_SUCCEEDED,
                failed_detail_type=c.BACKUP_FAILED,
                table=TableShape(
                    choice_state="SourceType",
                    condition=sfn.Condition.and_(
                        sfn.Condition.is_present("$.source.type"),
                        sfn.Condition.string_equals("$.source.type", "dynamodb"),
                    ),
                    prepare_state="DdbPrepare",
                    prepare=functions.ddb_backup_prepare,
                    prepare_result={
                        "recovery_point": "$.Payload.recovery_point",
                        "vault_bucket": "$.Payload.vault_bucket",
                        "mode": "$.Payload.mode",
                        "work_list_key": "$.Payload.work_list_key",
                        "segments": "$.Payload.segments",
                        "export_arn": "$.Payload.export_arn",
                        "worker_concurrency": "$.Payload.worker_concurrency",
                    },
                    export_status=functions.ddb_export_status,
                    export_poll_seconds=export_poll_seconds,
                    map_state="DdbSegments",
                    work_list_key="$.work.work_list_key",
                    item_selector={"recovery_point": "$.prepared.recovery_point", "item": "$$.Map.Item.Value"},
                    worker_state="DdbSegmentWorker",
                    worker=functions.ddb_segment_worker,
                    loop=True,
                    finish_state="DdbCommit",
                    finish=functions.ddb_backup_commit,
                ),
            ),
        )
        self.restore = Workflow(
            self,
            "Restore",
            vault=vault,
            log_key=functions.log_key,
            shape=WorkflowShape(
                kind="Restore",
                prepare=functions.restore_prepare,
                prepare_result={
                    "restore_id": "$.Payload.restore_id",
                    "vault_bucket": "$.Payload.vault_bucket",
                    "work_list_key": "$.Payload.work_list_key",
                    "batches": "$.Payload.batches",
                    "objects": "$.Payload.objects",
                    "worker_concurrency": "$.Payload.worker_concurrency",
                },
                item_selector={
                    "restore_id": "$.prepared.restore_id",
                    "target": "$.target",
                    "item": "$$.Map.Item.Value",
                },
                worker=functions.restore_worker,
                finish_state="Finish",
                finish=functions.restore_finish,
                finish_result_path="$.finished",
                abort=functions.abort,
                succeeded_detail_type=c.RESTORE_SUCCEEDED,
                failed_detail_type=c.RESTORE_FAILED,
                table=TableShape(
                    choice_state="TargetType",
                    condition=sfn.Condition.and_(
                        sfn.Condition.is_present("$.target"),
                        sfn.Condition.string_matches("$.target", "dynamodb://*"),
                    ),
                    prepare_state="DdbRestorePrepare",
                    prepare=functions.ddb_restore_prepare,
                    prepare_result={
                        "restore_id": "$.Payload.restore_id",
                        "recovery_point": "$.Payload.recovery_point",
                        "vault_bucket": "$.Payload.vault_bucket",
                        "work_list_key": "$.Payload.work_list_key",
                        "parts": "$.Payload.parts",
                        "table_created": "$.Payload.table_created",
                        "worker_concurrency": "$.Payload.worker_concurrency",
                    },
                    map_state="DdbRestoreParts",
                    work_list_key="$.prepared.work_list_key",
                    item_selector={"restore_id": "$.prepared.restore_id", "item": "$$.Map.Item.Value"},
                    worker_state="DdbRestoreWorker",
                    worker=functions.ddb_restore_worker,
                    finish_state="DdbRestoreFinish",
                    finish=functions.ddb_restore_finish,
                ),
            ),
        )
