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

from collections.abc import Callable
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from pydantic import BaseModel

from infra import constants as c
from infra import registry as r
from infra.functions import Functions
from infra.logs import LogKey
from infra.looping_map import LoopStates, looping_item
from infra.nag import acknowledge, logical_id
from infra.paths import PREPARED, all_fields, fields_of, path, selector
from infra.tasks import WorkList, catch_all, invoke, prepare, put_event, state_machine, work_list_map
from infra.vault import VaultResources
from vaultline.runs.maintenance_models import RetentionEvent
from vaultline.runs.models import (
    BackupWorkerEvent,
    Prepared,
    RestorePrepared,
    RestoreRequest,
    RestoreWorkerEvent,
)
from vaultline.runs.table_models import (
    ExportStatus,
    SegmentSummary,
    SegmentWorkerEvent,
    TableBackupRequest,
    TablePrepared,
    TableRestorePrepared,
    TableRestoreRequest,
    TableRestoreWorkerEvent,
)

# Where the branches keep what the DynamoDB steps return: the export poll's status, and a segment worker's summary.
WORK = "$.work"
# The map's item, as Step Functions' context object names it.
MAP_ITEM = "$$.Map.Item.Value"

# Every function the backup and restore machines run (the Retention step's only where the stack may delete).
WORKFLOW_FUNCTIONS = (
    r.BACKUP_PREPARE,
    r.BACKUP_WORKER,
    r.BACKUP_COMMIT,
    r.ABORT,
    r.DDB_BACKUP_PREPARE,
    r.DDB_EXPORT_STATUS,
    r.DDB_SEGMENT_WORKER,
    r.DDB_BACKUP_COMMIT,
    r.RESTORE_PREPARE,
    r.RESTORE_WORKER,
    r.RESTORE_FINISH,
    r.DDB_RESTORE_PREPARE,
    r.DDB_RESTORE_WORKER,
    r.DDB_RESTORE_FINISH,
)


@dataclass(frozen=True)
class TableShape:
    """The DynamoDB branch of a workflow (docs/state-machines.md, "DynamoDB")."""

    choice_state: str  # "SourceType" | "TargetType"
    condition: sfn.Condition  # true: the DynamoDB branch; false: the S3 path
    prepare_state: str
    prepare: lambda_.IFunction
    prepare_result: dict[str, str]
    map_state: str
    work: WorkList
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
    work: WorkList
    worker: lambda_.IFunction
    finish_state: str  # "Commit" | "Finish"
    finish: lambda_.IFunction
    finish_result_path: str
    abort: lambda_.IFunction
    succeeded_detail_type: str
    failed_detail_type: str
    table: TableShape | None = None
    # Backup only: the plan's keep rules applied after a successful commit (retention_state).
    retention: lambda_.IFunction | None = None


class Workflow(Construct):
    """One STANDARD state machine of the Prepare -> Distributed Map -> Commit shape, with Abort on any failure."""

    def __init__(
        self, scope: Construct, construct_id: str, *, shape: WorkflowShape, vault: VaultResources, log_key: LogKey
    ) -> None:
        super().__init__(scope, construct_id)
        self.shape = shape
        kind = shape.kind

        # A backup's Prepare takes the vault's shared lock: overlapping a prune, it waits for the prune's
        # exclusive one, as prune waits for backups. (A restore takes no lock.)
        first = prepare(self, "Prepare", shape.prepare, result=shape.prepare_result, takes_lock=kind == "Backup")
        # The whole selected item is the event; the function's return value is the item's result. A worker is
        # idempotent (packs are content-addressed), so even a timed-out attempt may run again.
        worker = invoke(self, "Worker", shape.worker, state_name=f"{kind}Worker", idempotent=True)
        batches = work_list_map(
            self, "Batches", state_name=f"{kind}Batches", vault=vault, work=shape.work, processor=worker
        )
        finish = invoke(self, shape.finish_state, shape.finish, result_path=shape.finish_result_path)

        succeeded = put_event(
            self,
            f"{kind}Succeeded",
            shape.succeeded_detail_type,
            sfn.TaskInput.from_json_path_at(shape.finish_result_path),
        )
        done = sfn.Succeed(self, "Done")
        succeeded.next(done)
        # Commit (S3 and DynamoDB) -> Retention -> the success event; Retention's failure does not fail the backup.
        after_finish: sfn.IChainable = succeeded
        if shape.retention:
            after_finish = retention_state(self, shape.retention, succeeded)

        abort = invoke(self, "Abort", shape.abort, result_path="$.aborted")
        failed_event = put_event(self, f"{kind}Failed", shape.failed_detail_type, sfn.TaskInput.from_json_path_at("$"))
        failed = sfn.Fail(
            self,
            "Failed",
            error=f"{kind}Failed",
            cause=f"The {kind.lower()} failed and was aborted; the '{shape.failed_detail_type}' event has the error.",
        )
        # If recording the failure fails too, still announce it: an unreported failed backup is the worst outcome.
        abort.add_catch(failed_event, errors=[sfn.Errors.ALL], result_path="$.abort_error")
        abort.next(failed_event).next(failed)

        catch_all((first, batches, finish), abort)

        s3_path = first.next(batches).next(finish).next(after_finish)
        definition: sfn.IChainable = s3_path
        if shape.table:
            table_prepare = self._table_branch(shape.table, vault, abort, after_finish)
            # Anything that is not the DynamoDB branch takes the S3 path, whose Prepare validates the input: an
            # unknown source type still ends in Abort and the failure event rather than a silent Choice error.
            definition = (
                sfn.Choice(self, shape.table.choice_state).when(shape.table.condition, table_prepare).otherwise(first)
            )

        self.log_group = log_key.log_group(self, "Logs", logs.RetentionDays.THREE_MONTHS)
        self.state_machine = state_machine(
            self,
            comment=(
                f"Vaultline {kind.lower()}: S3 or DynamoDB; Prepare, Distributed Map, {shape.finish_state}; "
                "Abort on failure"
            ),
            definition=definition,
            log_group=self.log_group,
        )
        # The ItemReader reads and the ResultWriter writes SSE-KMS objects of the vault: CDK grants S3, not KMS.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[vault.key.key_arn])
        )
        self._acknowledge_findings(vault)

    def _acknowledge_findings(self, vault: VaultResources) -> None:
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
                vault.partition_finding("/*"),
                f"Resource::{executions}:*",
                f"Resource::{executions}/*:*",
                *(f"Resource::<{logical_id(function)}.Arn>:*" for function in functions),
            ],
        )

    def _table_branch(
        self, table: TableShape, vault: VaultResources, abort: sfn.IChainable, succeeded: sfn.IChainable
    ) -> sfn.IChainable:
        """DdbPrepare [-> export poll] -> Distributed Map of segment workers -> DdbCommit|DdbRestoreFinish."""
        first = prepare(
            self,
            "DdbPrepareState",
            table.prepare,
            state_name=table.prepare_state,
            result=table.prepare_result,
            takes_lock=self.shape.kind == "Backup",
        )
        processor: sfn.IChainable
        if table.loop:
            # Backup: a segment worker loops on its cursor (the same segment, the next part), so a segment of any
            # size fits 15-minute invocations.
            states = LoopStates(
                "DdbWorker", "DdbNextPart", "DdbSegmentStored", "DdbSegmentDone", worker_state=table.worker_state
            )
            processor = looping_item(
                self,
                table.worker,
                states=states,
                event=SegmentWorkerEvent,
                result=SegmentSummary,
                carry=("recovery_point",),
                resume={"item": ()},
            )
        else:
            processor = invoke(self, "DdbWorker", table.worker, state_name=table.worker_state, idempotent=True)

        segments = work_list_map(
            self, "DdbMap", state_name=table.map_state, vault=vault, work=table.work, processor=processor
        )
        finish = invoke(
            self, "DdbFinish", table.finish, state_name=table.finish_state, result_path=self.shape.finish_result_path
        )
        catch_all((first, segments, finish), abort)
        segments.next(finish).next(succeeded)

        if table.export_status is None:
            first.next(segments)
            return first

        # Scan mode staged its work list in Prepare; export mode has one once the export is COMPLETED. Either way
        # the map reads the key from $.work.
        scan_work = sfn.Pass(
            self,
            "DdbScanWorkList",
            parameters=fields_of(
                ExportStatus,
                status="READY",
                work_list_key=sfn.JsonPath.string_at(path(TablePrepared, "work_list_key", at=PREPARED)),
            ),
            result_path=WORK,
        )
        # A poll only reads the export's status: any attempt may run again.
        status = invoke(self, "DdbExportStatus", table.export_status, result_path=WORK, idempotent=True)
        catch_all((status,), abort)
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
        export_status = path(ExportStatus, "status", at=WORK)
        status.next(
            sfn.Choice(self, "DdbExportDone")
            .when(sfn.Condition.string_equals(export_status, "COMPLETED"), segments)
            .when(sfn.Condition.string_equals(export_status, "IN_PROGRESS"), polls_count)
            .otherwise(export_failed)
        )
        first.next(
            sfn.Choice(self, "DdbMode")
            .when(
                sfn.Condition.string_equals(path(TablePrepared, "mode", at=PREPARED), "export"),
                polls_start.next(status),
            )
            .otherwise(scan_work.next(segments))
        )
        return first


def retention_state(scope: Construct, function: lambda_.IFunction, next_state: sfn.IChainable) -> sfn.TaskStateBase:
    """The backup's ``Retention`` state, between Commit and the success event: forget the committed source's
    recovery points that the plan's keep rules (``$.retention``, from the backup's input) do not keep; the result
    goes to ``$.retention_result`` (not over the rules: the output still says which rules were applied).

    A failure here never fails the backup, whose recovery point is committed: the error goes to
    ``$.retention_error`` and the execution goes on to ``next_state`` (the next maintenance run forgets them).
    """
    state = invoke(scope, "Retention", function, result_path="$.retention_result")
    state.add_catch(next_state, errors=[sfn.Errors.ALL], result_path="$.retention_error")
    state.next(next_state)
    return state


def _work(
    event: type[BaseModel], prepared: type[BaseModel], run: str, key: str | None = None, **extra: str
) -> WorkList:
    """A map's work list as Prepare's result describes it: its key (unless ``key`` is another path to it) and the
    workers' concurrency; each item becomes the worker's ``event``: the run's id, the map's item and ``extra``."""
    return WorkList(
        key=key or path(prepared, "work_list_key", at=PREPARED),
        concurrency=path(prepared, "worker_concurrency", at=PREPARED),
        item_selector=fields_of(event, **{run: path(prepared, run, at=PREPARED)}, **extra, item=MAP_ITEM),
    )


def _when_present(field: str, test: Callable[[str], sfn.Condition]) -> sfn.Condition:
    """``test`` on the input's ``field``, and false when the input has no such field (a Choice on an absent
    variable fails the execution instead of taking its Default)."""
    return sfn.Condition.and_(sfn.Condition.is_present(field), test(field))


class Workflows(Construct):
    """The backup and the restore state machine."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Functions,
        vault: VaultResources,
        export_poll_seconds: int = c.EXPORT_POLL_SECONDS,
        retention: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)

        def workflow(shape: WorkflowShape) -> Workflow:
            return Workflow(self, shape.kind, shape=shape, vault=vault, log_key=functions.log_key)

        self.backup = workflow(backup_shape(functions, export_poll_seconds, retention=retention))
        self.restore = workflow(restore_shape(functions))


def backup_shape(
    functions: Functions, export_poll_seconds: int = c.EXPORT_POLL_SECONDS, *, retention: bool = True
) -> WorkflowShape:
    """The backup workflow: an S3 source's batches, or a DynamoDB source's scan segments (after its export).

    Without ``retention`` (a vault in its own account, where only the vault account deletes) there is no Retention
    step: the vault account's maintenance forgets by the plans' keep rules."""
    return WorkflowShape(
        kind="Backup",
        prepare=functions[r.BACKUP_PREPARE],
        prepare_result=selector(Prepared, all_fields(Prepared)),
        work=_work(BackupWorkerEvent, Prepared, "recovery_point"),
        worker=functions[r.BACKUP_WORKER],
        finish_state="Commit",
        finish=functions[r.BACKUP_COMMIT],
        finish_result_path=path(RetentionEvent, "committed"),
        abort=functions[r.ABORT],
        retention=functions[r.APPLY_RETENTION] if retention else None,
        succeeded_detail_type=c.BACKUP_SUCCEEDED,
        failed_detail_type=c.BACKUP_FAILED,
        table=TableShape(
            choice_state="SourceType",
            condition=_when_present(
                path(TableBackupRequest, "source", "type"), lambda field: sfn.Condition.string_equals(field, "dynamodb")
            ),
            prepare_state="DdbPrepare",
            prepare=functions[r.DDB_BACKUP_PREPARE],
            prepare_result=selector(TablePrepared, all_fields(TablePrepared)),
            export_status=functions[r.DDB_EXPORT_STATUS],
            export_poll_seconds=export_poll_seconds,
            map_state="DdbSegments",
            work=_work(
                SegmentWorkerEvent, TablePrepared, "recovery_point", key=path(ExportStatus, "work_list_key", at=WORK)
            ),
            worker_state="DdbSegmentWorker",
            worker=functions[r.DDB_SEGMENT_WORKER],
            loop=True,
            finish_state="DdbCommit",
            finish=functions[r.DDB_BACKUP_COMMIT],
        ),
    )


def restore_shape(functions: Functions) -> WorkflowShape:
    """The restore workflow: batches of objects into S3, or parts of segments into a DynamoDB table."""
    return WorkflowShape(
        kind="Restore",
        prepare=functions[r.RESTORE_PREPARE],
        prepare_result=selector(
            RestorePrepared,
            ("restore_id", "vault_bucket", "work_list_key", "batches", "objects", "worker_concurrency"),
        ),
        work=_work(RestoreWorkerEvent, RestorePrepared, "restore_id", target=path(RestoreRequest, "target")),
        worker=functions[r.RESTORE_WORKER],
        finish_state="Finish",
        finish=functions[r.RESTORE_FINISH],
        finish_result_path="$.finished",
        abort=functions[r.ABORT],
        succeeded_detail_type=c.RESTORE_SUCCEEDED,
        failed_detail_type=c.RESTORE_FAILED,
        table=TableShape(
            choice_state="TargetType",
            condition=_when_present(
                path(TableRestoreRequest, "target"), lambda field: sfn.Condition.string_matches(field, "dynamodb://*")
            ),
            prepare_state="DdbRestorePrepare",
            prepare=functions[r.DDB_RESTORE_PREPARE],
            prepare_result=selector(TableRestorePrepared, all_fields(TableRestorePrepared)),
            map_state="DdbRestoreParts",
            work=_work(TableRestoreWorkerEvent, TableRestorePrepared, "restore_id"),
            worker_state="DdbRestoreWorker",
            worker=functions[r.DDB_RESTORE_WORKER],
            finish_state="DdbRestoreFinish",
            finish=functions[r.DDB_RESTORE_FINISH],
        ),
    )
