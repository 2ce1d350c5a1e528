"""Typed events, results and run documents of the DynamoDB backup and restore steps (`vaultline.runs.table_steps`).

A work item of the backup's segment map is the engine's :class:`~vaultline.operations.table_backup.SegmentWork`,
its staged result a :class:`~vaultline.operations.table_backup.SegmentPart`, and its run document the engine's
:class:`~vaultline.operations.table_backup.TableRun` with what only the state machine needs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from vaultline.model import VaultlineModel
from vaultline.operations.table_backup import SegmentWork, TableRun
from vaultline.runs.models import BackupInput, StepModel
from vaultline.sources.dynamodb.model import BackupOptions

# -- backup -------------------------------------------------------------------------------------------------------


class TableSourceSpec(StepModel):
    """A DynamoDB source of the backup's input (what ``vaultline.plans.plan_input`` sends)."""

    type: Literal["dynamodb"] = "dynamodb"
    url: str = Field(pattern=r"^dynamodb://[A-Za-z0-9_.\-]{3,255}(\?.*)?$")
    options: BackupOptions = Field(default_factory=BackupOptions)


class TableBackupRequest(BackupInput):
    """The backup state machine's input for a DynamoDB source."""

    source: TableSourceSpec


class TableStagedRun(TableRun):
    """The run document Prepare stages (``staging/<rp>/run.json``): the engine's run, and the run's lock."""

    execution: str | None = None
    lock_id: str | None = None


class TablePrepared(StepModel):
    """Prepare's result (``$.prepared``). In export mode the work list exists only once export_status completes."""

    recovery_point: str
    vault_bucket: str
    mode: Literal["scan", "export"]
    work_list_key: str | None = None
    segments: int
    export_arn: str | None = None
    # The map reads its MaxConcurrency here, from the validated request, not from the raw input (which may omit it).
    worker_concurrency: int = Field(ge=1, le=1000)


class SegmentWorkerEvent(StepModel):
    recovery_point: str
    item: SegmentWork


class SegmentSummary(StepModel):
    """What a worker returns: small; when ``done`` is false the state machine invokes the worker with ``next``."""

    segment: int
    part: int
    items: int
    bytes: int
    read_units: float
    done: bool
    next: SegmentWork | None = None


class ExportStatusEvent(StepModel):
    prepared: TablePrepared


class ExportStatus(StepModel):
    status: str
    work_list_key: str | None = None
    files: int = 0


class TableCommitEvent(StepModel):
    map: dict[str, Any] | None = None
    prepared: TablePrepared


# -- restore ------------------------------------------------------------------------------------------------------


class TableRestoreRequest(StepModel):
    recovery_point: str
    target: str = Field(pattern=r"^dynamodb://.+")
    write_rate: float | None = Field(default=None, gt=0, description="write capacity units per second, all workers")
    worker_concurrency: int = Field(default=10, ge=1, le=1000)


class TableRestorePrepared(StepModel):
    restore_id: str
    recovery_point: str
    vault_bucket: str
    work_list_key: str
    parts: int
    table_created: bool
    # The map reads its MaxConcurrency here, from the validated request, not from the raw input (which may omit it).
    worker_concurrency: int = Field(ge=1, le=1000)


class TableRestoreItem(StepModel):
    part: int
    # A stream's entry key, or a layered segment's key prefix (``segment/00003/``).
    entry_key: str


class TableRestoreWorkerEvent(StepModel):
    restore_id: str
    item: TableRestoreItem


class TableRestoreStaged(VaultlineModel):
    """The restore's run document."""

    recovery_point: str
    target: str
    key_names: list[str]
    write_rate: float | None
    parts: int
    table_created: bool


class TableRestoreSummary(StepModel):
    part: int
    items: int
    write_units: float


class TableRestoreFinishEvent(StepModel):
    map: dict[str, Any] | None = None
    prepared: TableRestorePrepared


class TableRestoreFinished(StepModel):
    restore_id: str
    recovery_point: str
    target: str
    items: int
    table_created: bool
