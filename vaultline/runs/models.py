"""Typed events and results of the state-machine steps (validated on the way in, small on the way out)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from vaultline.model import VaultlineModel
from vaultline.plans import ROLE_ARN
from vaultline.repository.commit import RecoveryPointRun
from vaultline.repository.manifest import BackupStats, Entry, EntryLine, Issues, ObjectEntry, ObjectIssue
from vaultline.sources.s3_inventory_model import InventoryReport
from vaultline.sources.s3_options import ArchivedObjects, TagsRefresh
from vaultline.targets import Overwrite


class StepModel(VaultlineModel):
    """The base of every step's event and result model: Step Functions adds fields a step does not use (ItemSelector
    context, errors, the results of earlier steps), so they are ignored rather than refused."""

    model_config = ConfigDict(extra="ignore")


Model = TypeVar("Model", bound=BaseModel)


def filled_from(model: type[Model], source: object, **fields: Any) -> Model:
    """A ``model`` (a step's result) from what an operation reported: every field of ``model`` that ``source`` has
    an attribute of the same name for takes its value, then ``fields`` add or override (validated as usual)."""
    shared = {name: getattr(source, name) for name in model.model_fields if hasattr(source, name)}
    return model.model_validate(shared | fields)


class SourceSpec(StepModel):
    type: Literal["s3"] = "s3"
    url: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    # A bucket in another account is read through a role there; the stack may only assume the planned roles.
    role_arn: str | None = Field(default=None, pattern=ROLE_ARN)
    # Listed from the newest report of this S3 Inventory configuration instead of by ListObjects.
    inventory: InventoryReport | None = None


class BackupInput(StepModel):
    """What the backup state machine's input carries for every source kind (a plan sets it once for its sources);
    each kind's request narrows ``source`` to its own spec."""

    plan: str | None = None
    source: StepModel
    compression_level: int | None = Field(default=None, ge=1, le=22)
    worker_concurrency: int = Field(default=10, ge=1, le=1000)
    tags: dict[str, str] = Field(default_factory=dict)


class BackupRequest(BackupInput):
    """The backup state machine's input: what a schedule or `vaultline plan run` sends."""

    source: SourceSpec
    archived_objects: ArchivedObjects = "skip"
    tags_refresh: TagsRefresh = "always"


class PrepareEvent(StepModel):
    request: dict[str, Any]
    execution: str | None = None


class WorkItem(StepModel):
    """One item of a work list: a batch file in staging."""

    batch: int
    key: str


class Prepared(StepModel):
    """What Prepare returns (and the state machine keeps at ``$.prepared``)."""

    recovery_point: str
    vault_bucket: str
    work_list_key: str
    batches: int
    objects: int
    # The map reads its MaxConcurrency here, from the validated request, not from the raw input (which may omit it).
    worker_concurrency: int = Field(ge=1, le=1000)


class BackupWorkerEvent(StepModel):
    recovery_point: str
    item: WorkItem


class BackupBatch(VaultlineModel):
    """A worker's input, staged by Prepare: a stretch of the listing in key order (batches follow each other in key
    order and never overlap), bounded in objects and bytes."""

    batch: int
    # Changed or new objects, as listed: read and stored.
    read: list[ObjectEntry] = Field(default_factory=list)
    # Parent entries of unchanged objects whose tags this batch re-reads (chunks reused, nothing else read).
    retag: list[ObjectEntry] = Field(default_factory=list)
    # The chunks of the parent entries of the changed objects in ``read``: stored (the run's shared lock keeps
    # prune out), so the worker dedups against them without an index lookup. The first 16 bytes of each chunk id,
    # concatenated, base64: 22 characters a chunk, a third of what the parent entries spell.
    parent_chunks: str = ""

    def parent_chunk_keys(self) -> set[bytes]:
        """The 16-byte keys of :attr:`parent_chunks`."""
        raw = base64.b64decode(self.parent_chunks)
        return {raw[at : at + 16] for at in range(0, len(raw), 16)}


class BatchResult(VaultlineModel):
    """A worker's part of a recovery point's entries, stored in staging for Commit to merge. Its entries and issues
    are sorted by key."""

    batch: int
    entries: list[ObjectEntry]
    stats: BackupStats
    issues: list[ObjectIssue] = Field(default_factory=list)


class CarriedPart(VaultlineModel):
    """A part of the unchanged objects that Prepare carried over from the parent, staged beside the workers'
    results for Commit to merge: their entry lines exactly as the parent's manifest held them (in key order, one
    per line), so that neither step decodes and re-encodes what does not change."""

    batch: int
    lines: str = ""
    stats: BackupStats
    # What a Prepare before entry lines staged (its entries decoded): a run under way across an upgrade commits.
    entries: list[ObjectEntry] = Field(default_factory=list)

    @classmethod
    def of(cls, batch: int, carried: list[EntryLine]) -> CarriedPart:
        """The part of ``carried`` (key-sorted), with its figures."""
        stats = BackupStats(
            objects=len(carried), objects_unchanged=len(carried), bytes=sum(line.size for line in carried)
        )
        return cls(batch=batch, lines=b"\n".join(line.line for line in carried).decode(), stats=stats)

    def entry_lines(self, what: str) -> Iterator[Entry]:
        """The part's entries in key order, as lines to carry into the manifest."""
        yield from self.entries
        for line in self.lines.split("\n") if self.lines else ():
            yield EntryLine.parse(line.encode(), what)


class BatchSummaryBase(StepModel):
    """What a map worker returns to the Map state about its batch, in any workflow: kept small, the details stay in
    staging for the last step."""

    batch: int
    objects: int


class BatchSummary(BatchSummaryBase):
    """A backup worker's batch: what it read and stored (its entries stay in staging)."""

    bytes_read: int
    bytes_stored: int
    result_key: str
    archived: int = 0
    vanished: int = 0


class BackupRun(RecoveryPointRun):
    """The run document of an S3 backup: everything its workers and Commit need, written by Prepare."""

    source: SourceSpec
    batches: int
    # Parts of unchanged objects carried over from the parent, staged by Prepare beside the batches' results.
    carried_parts: int = 0
    execution: str | None = None
    lock_id: str | None = None
    archived_objects: ArchivedObjects = "skip"
    tags_age: int | None = None


class CommitEvent(StepModel):
    prepared: Prepared
    map: dict[str, Any] | None = None


class Committed(StepModel):
    """Commit's result, and so the detail of the backup's success event."""

    recovery_point: str
    source: str
    plan: str | None
    stats: BackupStats
    status: Literal["completed", "completed_with_issues"] = "completed"
    # Counts of every skipped object; ``objects`` names the first few (the manifest header names more).
    issues: Issues = Field(default_factory=Issues)


class AbortEvent(StepModel):
    prepared: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    map: dict[str, Any] | None = None


class Aborted(StepModel):
    run: str | None
    staging_objects_deleted: int
    error: str | None = None
    cause: str | None = None


class RestoreRequest(StepModel):
    recovery_point: str
    target: str = Field(pattern=r"^s3://.+")
    include: list[str] = Field(default_factory=list)
    worker_concurrency: int = Field(default=10, ge=1, le=1000)
    # An object already at the target is kept (never), rewritten when its content differs (if-changed), or always
    # rewritten; AWS Backup's default, so a restore can never destroy data by default.
    overwrite: Overwrite = "never"


class RestorePrepared(StepModel):
    restore_id: str
    vault_bucket: str
    work_list_key: str
    batches: int
    objects: int
    recovery_point: str | None = None
    bytes: int = 0
    # The map reads its MaxConcurrency here, from the validated request, not from the raw input (which may omit it).
    worker_concurrency: int = Field(ge=1, le=1000)


class RestoreWorkerEvent(StepModel):
    restore_id: str
    target: str
    item: WorkItem


class RestoreBatchSummary(BatchSummaryBase):
    """A restore worker's batch: what it wrote and skipped (Finish sums them from staging)."""

    bytes: int
    skipped_existing: int = 0
    skipped_unchanged: int = 0


class RestoreFinishEvent(StepModel):
    prepared: RestorePrepared
    target: str
    map: dict[str, Any] | None = None


class RestoreFinished(StepModel):
    restore_id: str
    recovery_point: str
    target: str
    objects: int
    bytes: int
    skipped_existing: int = 0
    skipped_unchanged: int = 0
