"""DynamoDB backup and restore workflow steps, as plain functions the Lambda handlers call.

Backup (scan mode): :func:`prepare` describes the table, sizes TotalSegments and stages a work list of segments ->
a Map over it runs :func:`segment_worker` per segment; a worker whose time budget runs low returns ``done: false``
and a ``next`` item (same segment, next part, cursor) that the state machine loops back into the worker ->
:func:`commit` merges every part into the manifest.

Backup (export mode): :func:`prepare` starts ExportTableToPointInTime into staging -> the state machine polls
:func:`export_status` until it returns ``status: COMPLETED`` with a work list of data files -> the same Map and
:func:`segment_worker` ingest one file each -> :func:`commit`.

Restore: :func:`restore_prepare` (create or check the target table, stage one work item per segment part) -> Map of
:func:`restore_worker` -> :func:`restore_finish`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from vaultline.errors import IntegrityError
from vaultline.operations.backup import recover_unindexed_packs
from vaultline.operations.table_backup import commit_table_backup, segments_for, stats_for_parts
from vaultline.operations.table_restore import prepare_target, write_entries_to_table
from vaultline.repository import locks
from vaultline.repository.blob_reader import ChunkReader
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.layout import run_prefix
from vaultline.repository.manifest import (
    BackupStats,
    ObjectEntry,
    iter_entries,
    latest_for_source,
    load_recovery_point,
    new_recovery_point_id,
    resolve_recovery_point,
)
from vaultline.repository.vault import Vault
from vaultline.runs.backup_steps import refresh_run_lock
from vaultline.runs.models import Committed, PrepareEvent
from vaultline.runs.staging import (
    clean_map_results,
    clean_run,
    full_key,
    get_sealed,
    put_sealed,
    put_work_list,
    s3_storage,
    undone_on_failure,
)
from vaultline.sources.dynamodb.export import (
    apply_to_stream,
    change_set,
    data_file_keys,
    full_export_lines,
    incremental_window,
    new_items,
    read_export_file,
    start_export,
)
from vaultline.sources.dynamodb.export import export_status as describe
from vaultline.sources.dynamodb.model import BackupOptions, TableBackupInfo, table_info
from vaultline.sources.dynamodb.scan import ScanCursor, ScanOptions, scan_segment, store_items
from vaultline.sources.dynamodb.table import TableSnapshot, describe_table, parse_table_url, table_client
from vaultline.sources.dynamodb.throttle import Backoff, RateLimiter

# A worker stops reading when less than this is left of its Lambda time: enough to flush its last packs and index.
RESERVE_MS = 60_000


class _Event(BaseModel):
    model_config = {"extra": "ignore"}


class TableSourceSpec(_Event):
    """A DynamoDB source in a plan."""

    type: Literal["dynamodb"] = "dynamodb"
    url: str = Field(pattern=r"^dynamodb://[A-Za-z0-9_.\-]{3,255}(\?.*)?$")
    options: BackupOptions = Field(default_factory=BackupOptions)


class TableBackupRequest(_Event):
    """The backup state machine's input for a DynamoDB source."""

    plan: str | None = None
    source: TableSourceSpec
    compression_level: int | None = Field(default=None, ge=1, le=22)
    worker_concurrency: int = Field(default=10, ge=1, le=1000)
    tags: dict[str, str] = Field(default_factory=dict)


class SegmentWorkItem(_Event):
    """One map item: a scan segment (with a cursor when continuing) or an export data file."""

    segment: int = Field(ge=0)
    cursor: ScanCursor = Field(default_factory=ScanCursor)
    file: str | None = None
    # Incremental export: merge the change files into the parent's stream of this segment number.
    merge: bool = False


class TableStagedRun(BaseModel):
    """What the workers and Commit need, written by Prepare to ``staging/<rp>/run.json``."""

    recovery_point: str
    url: str
    options: BackupOptions
    snapshot: TableSnapshot
    total_segments: int
    plan: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    compression_level: int | None = None
    parent: str | None = None
    started: str
    execution: str | None = None
    export_arn: str | None = None
    export_time: datetime | None = None
    lock_id: str | None = None
    # The plan's read limit split over the segments that run at once (the map's concurrency), in RCU/s.
    read_rate_per_worker: float | None = None
    export_type: Literal["FULL_EXPORT", "INCREMENTAL_EXPORT"] | None = None
    # Incremental export: the change files every merging worker reads, and the parent's segment count (the merged
    # recovery point has one more segment: the items created since the parent, stored by Commit).
    change_files: list[str] = Field(default_factory=list)
    parent_segments: int = 0


class TablePrepared(_Event):
    """Prepare's result (``$.prepared``). In export mode the work list exists only once export_status completes."""

    recovery_point: str
    vault_bucket: str
    mode: Literal["scan", "export"]
    work_list_key: str | None = None
    segments: int
    export_arn: str | None = None
    # The map reads its MaxConcurrency here, from the validated request, not from the raw input (which may omit it).
    worker_concurrency: int = Field(ge=1, le=1000)


class SegmentWorkerEvent(_Event):
    recovery_point: str
    item: SegmentWorkItem


class SegmentPartResult(BaseModel):
    """A worker's stored part, in staging for Commit."""

    segment: int
    part: int
    entry: ObjectEntry
    items: int
    read_units: float
    done: bool
    stats: BackupStats
    # Incremental export merges: the keys of the change set this segment applied (base64 of key_of's bytes).
    applied: list[str] = Field(default_factory=list)


class SegmentSummary(_Event):
    """What a worker returns: small; when ``done`` is false the state machine invokes the worker with ``next``."""

    segment: int
    part: int
    items: int
    bytes: int
    read_units: float
    done: bool
    next: SegmentWorkItem | None = None


class ExportStatusEvent(_Event):
    prepared: TablePrepared


class ExportStatus(_Event):
    status: str
    work_list_key: str | None = None
    files: int = 0


class TableCommitEvent(_Event):
    map: dict[str, Any] | None = None
    prepared: TablePrepared


def _run(vault: Vault, rp_id: str) -> TableStagedRun:
    return get_sealed(vault, f"{run_prefix(rp_id)}run.json", TableStagedRun)


def prepare(vault: Vault, event: PrepareEvent) -> TablePrepared:
    """Describe the table, size the scan (TableSizeBytes 0 = unknown, still at least one segment), stage the run
    and, in scan mode, the work list; in export mode start the export."""
    request = TableBackupRequest.model_validate(event.request)
    ref = parse_table_url(request.source.url)
    ddb = table_client(ref)
    snapshot = describe_table(ddb, ref.name)
    options = request.source.options
    read_rate = options.read_units_per_second(snapshot)  # a share of an on-demand table fails before the lock
    total_segments = segments_for(snapshot, options.segments)
    started = datetime.now(UTC)
    rp_id = new_recovery_point_id(started)
    # The same shared vault lock as an S3 run (see backup_steps.prepare): held until Commit or Abort.
    lock = locks.acquire(vault.storage, "backup", exclusive=False, owner=event.execution or rp_id)
    with undone_on_failure(vault, rp_id, lock):
        vault.reload_index()
        recover_unindexed_packs(vault)
        parent = latest_for_source(vault, ref.url)
        run = TableStagedRun(
            lock_id=lock.id,
            recovery_point=rp_id,
            url=ref.url,
            options=options,
            snapshot=snapshot,
            total_segments=total_segments,
            read_rate_per_worker=read_rate / min(total_segments, request.worker_concurrency) if read_rate else None,
            plan=request.plan,
            tags=request.tags,
            compression_level=request.compression_level,
            parent=parent.id if parent else None,
            started=started.isoformat(),
            execution=event.execution,
        )
        prefix = run_prefix(rp_id)
        work_list_key = None
        if options.mode == "export":
            # Incremental when the parent is an export 15 minutes to 24 hours old: only the changes are exported,
            # and workers merge them into the parent's streams. Otherwise a full export, one stream per data file.
            parent_info = table_info(parent) if parent is not None and options.incremental else None
            window = incremental_window(parent_info, started) if parent_info else None
            run.export_arn, run.export_type, run.export_time = start_export(ddb, vault, snapshot, rp_id, window)
            if run.export_type == "INCREMENTAL_EXPORT" and parent is not None:
                run.parent_segments = parent.entry_count  # the manifest header counts its entries
        else:
            items = [SegmentWorkItem(segment=s).model_dump(mode="json") for s in range(run.total_segments)]
            put_work_list(vault, f"{prefix}work-list.json", items)
            work_list_key = full_key(vault, f"{prefix}work-list.json")
        put_sealed(vault, f"{prefix}run.json", run)
    return TablePrepared(
        recovery_point=rp_id,
        vault_bucket=s3_storage(vault).bucket,
        mode=options.mode,
        work_list_key=work_list_key,
        segments=run.total_segments,
        export_arn=run.export_arn,
        worker_concurrency=request.worker_concurrency,
    )


def export_status(vault: Vault, event: ExportStatusEvent) -> ExportStatus:
    """Poll the export; once COMPLETED, stage a work list of its data files (one segment each)."""
    run = _run(vault, event.prepared.recovery_point)
    ddb = table_client(parse_table_url(run.url))
    status = str(describe(ddb, str(run.export_arn)).get("ExportStatus"))
    if status != "COMPLETED":
        return ExportStatus(status=status)
    files = data_file_keys(vault, run.recovery_point)
    key = f"{run_prefix(run.recovery_point)}work-list.json"
    if run.export_type == "INCREMENTAL_EXPORT":
        # One merging worker per parent segment; Commit stores the items no segment held as one more segment.
        run.change_files = files
        work = [SegmentWorkItem(segment=n, merge=True) for n in range(run.parent_segments)]
        run.total_segments = run.parent_segments + 1
    else:
        work = [SegmentWorkItem(segment=n, file=f) for n, f in enumerate(files)]
        run.total_segments = len(files)
    put_work_list(vault, key, [item.model_dump(mode="json") for item in work])
    put_sealed(vault, f"{run_prefix(run.recovery_point)}run.json", run)
    return ExportStatus(status=status, work_list_key=full_key(vault, key), files=len(files))


def segment_worker(
    vault: Vault,
    event: SegmentWorkerEvent,
    remaining_ms: Callable[[], int] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    ddb: Any = None,
) -> SegmentSummary:
    """Store one part of one segment: scan from the cursor until the segment ends or ``remaining_ms()`` drops below
    RESERVE_MS (then return ``done: false`` and ``next``), or ingest one export data file. Re-running the same
    part rewrites the same result: safe."""
    run = _run(vault, event.recovery_point)
    refresh_run_lock(vault, run.lock_id, run.recovery_point)
    item = event.item
    options = run.options
    applied: list[bytes] = []
    with BlobWriter(vault, run.compression_level) as writer:
        if item.merge:
            entry, count, applied = _merge_segment(vault, run, item.segment, writer)
            units, following = 0.0, None
        elif item.file is not None:
            lines = full_export_lines(read_export_file(vault, item.file))
            entry, count = store_items(writer, item.segment, 0, lines, list(run.snapshot.key_types))
            units, following = 0.0, None
        else:
            ddb = ddb or table_client(parse_table_url(run.url))
            scan = ScanOptions(
                consistent_read=options.consistent_read,
                page_limit=options.page_size,
                limiter=RateLimiter(run.read_rate_per_worker, sleep=sleep),
                backoff=Backoff(sleep=sleep),
                remaining_ms=remaining_ms,
                reserve_ms=RESERVE_MS,
                key_names=list(run.snapshot.key_types),
            )
            result = scan_segment(ddb, run.snapshot.name, item.segment, run.total_segments, writer, item.cursor, scan)
            entry, count, units, following = result.entry, result.items, result.read_units, result.next
        written = writer.flush()
    stats = stats_for_parts([(entry, count)])
    stats.add_written(written)
    part = item.cursor.part
    put_sealed(
        vault,
        f"{run_prefix(run.recovery_point)}results/{item.segment:05d}-{part:04d}.json",
        SegmentPartResult(
            segment=item.segment,
            part=part,
            entry=entry,
            items=count,
            read_units=units,
            done=following is None,
            stats=stats,
            applied=[key.decode() for key in applied],
        ),
    )
    return SegmentSummary(
        segment=item.segment,
        part=part,
        items=count,
        bytes=entry.size,
        read_units=units,
        done=following is None,
        next=SegmentWorkItem(segment=item.segment, cursor=following) if following else None,
    )


def _changes(vault: Vault, run: TableStagedRun) -> dict[bytes, bytes | None]:
    """The incremental export's change set, by key (every merging worker and Commit read it whole)."""
    key_names = list(run.snapshot.key_types)
    changes: dict[bytes, bytes | None] = {}
    for key in run.change_files:
        changes.update(change_set(read_export_file(vault, key), key_names))
    return changes


def _merge_segment(
    vault: Vault, run: TableStagedRun, segment: int, writer: BlobWriter
) -> tuple[ObjectEntry, int, list[bytes]]:
    """The parent's stream number ``segment`` with the change set applied in place (unchanged stretches keep their
    chunks): its entry, item count and the change keys it applied."""
    if not run.parent:
        raise IntegrityError(f"recovery point {run.recovery_point}: an incremental merge without a parent")
    parent = load_recovery_point(vault, run.parent)
    entry = next((e for n, e in enumerate(iter_entries(vault, parent)) if n == segment), None)
    if entry is None:
        raise IntegrityError(f"recovery point {run.parent} has no segment {segment} to merge changes into")
    key_names = list(run.snapshot.key_types)
    reader = ChunkReader(vault)
    try:
        lines, applied = apply_to_stream(reader.stream(entry.chunks), _changes(vault, run), key_names)
    finally:
        reader.close()
    stored, count = store_items(writer, segment, 0, lines, key_names)
    return stored, count, applied


def commit(vault: Vault, event: TableCommitEvent) -> Committed:
    """Check every segment's parts form a complete chain, merge them into the manifest, write it last."""
    rp_id = event.prepared.recovery_point
    prefix = run_prefix(rp_id)
    run = _run(vault, rp_id)
    results = [get_sealed(vault, o.key, SegmentPartResult) for o in vault.storage.list(f"{prefix}results/")]
    by_segment: dict[int, list[SegmentPartResult]] = {}
    for result in sorted(results, key=lambda r: (r.segment, r.part)):
        by_segment.setdefault(result.segment, []).append(result)
    incremental = run.export_type == "INCREMENTAL_EXPORT"
    # An incremental run's last segment (the items created since the parent) is Commit's own, below.
    worker_segments = run.parent_segments if incremental else run.total_segments
    incomplete = [
        s
        for s in range(worker_segments)
        if [r.part for r in by_segment.get(s, [])] != list(range(len(by_segment.get(s, []))))
        or not by_segment.get(s)
        or not by_segment[s][-1].done
    ]
    if incomplete:
        # Never commit a recovery point that silently lacks part of a table.
        raise IntegrityError(f"recovery point {rp_id}: segments {incomplete[:10]} are incomplete in staging")
    stats = BackupStats()
    entries: list[ObjectEntry] = []
    units = 0.0
    for segment in range(worker_segments):
        for result in by_segment[segment]:
            stats.merge(result.stats)
            entries.append(result.entry)
            units += result.read_units
    # Workers counted their chunks; commit_table_backup adds only the entry stream's own.
    info = TableBackupInfo(
        table=run.snapshot,
        mode=run.options.mode,
        total_segments=max(1, run.total_segments),
        read_capacity_units=round(units, 3),
        consistent_read=run.options.consistent_read,
        export_arn=run.export_arn,
        export_type=run.export_type or ("FULL_EXPORT" if run.export_arn else None),
        export_time=run.export_time,
    )
    parent = load_recovery_point(vault, run.parent) if run.parent else None
    with BlobWriter(vault, run.compression_level) as writer:
        if incremental:
            applied = {
                key.encode() for segment in range(worker_segments) for r in by_segment[segment] for key in r.applied
            }
            created = new_items(_changes(vault, run), applied)
            entry, count = store_items(writer, worker_segments, 0, created, list(run.snapshot.key_types))
            stats.merge(stats_for_parts([(entry, count)]))
            entries.append(entry)
        header = commit_table_backup(
            vault,
            writer,
            rp_id,
            run.url,
            datetime.fromisoformat(run.started),
            entries,
            stats,
            parent,
            info,
            run.plan,
            run.tags,
        )
    clean_run(vault, rp_id)
    clean_map_results(vault, event.map)
    if run.lock_id:
        locks.release(vault.storage, run.lock_id)
    return Committed(recovery_point=rp_id, source=header.source, plan=header.plan, stats=header.stats)


# -- restore ------------------------------------------------------------------------------------------------------


class TableRestoreRequest(_Event):
    recovery_point: str
    target: str = Field(pattern=r"^dynamodb://.+")
    write_rate: float | None = Field(default=None, gt=0, description="write capacity units per second, all workers")
    worker_concurrency: int = Field(default=10, ge=1, le=1000)


class TableRestorePrepared(_Event):
    restore_id: str
    recovery_point: str
    vault_bucket: str
    work_list_key: str
    parts: int
    table_created: bool
    # The map reads its MaxConcurrency here, from the validated request, not from the raw input (which may omit it).
    worker_concurrency: int = Field(ge=1, le=1000)


class TableRestoreItem(_Event):
    part: int
    entry_key: str


class TableRestoreWorkerEvent(_Event):
    restore_id: str
    item: TableRestoreItem


class TableRestoreStaged(BaseModel):
    recovery_point: str
    target: str
    key_names: list[str]
    write_rate: float | None
    parts: int
    table_created: bool


class TableRestoreSummary(_Event):
    part: int
    items: int
    write_units: float


class TableRestoreFinishEvent(_Event):
    map: dict[str, Any] | None = None
    prepared: TableRestorePrepared


class TableRestoreFinished(_Event):
    restore_id: str
    recovery_point: str
    target: str
    items: int
    table_created: bool


def restore_prepare(vault: Vault, event: PrepareEvent) -> TableRestorePrepared:
    """Resolve the recovery point, create the target table from its description (or check the existing table's key
    schema, refusing a mismatch before anything is written), stage one work item per segment part."""
    request = TableRestoreRequest.model_validate(event.request)
    rp = resolve_recovery_point(vault, request.recovery_point)
    snapshot = table_info(rp).table
    ref = parse_table_url(request.target)
    created = prepare_target(table_client(ref), ref.name, snapshot)
    restore_id = f"restore-{rp.id}-{os.urandom(4).hex()}"
    prefix = run_prefix(restore_id)
    entries = [e.key for e in iter_entries(vault, rp) if e.chunks]
    staged = TableRestoreStaged(
        recovery_point=rp.id,
        target=ref.url,
        key_names=list(snapshot.key_types),
        write_rate=request.write_rate,
        parts=len(entries),
        table_created=created,
    )
    put_sealed(vault, f"{prefix}run.json", staged)
    put_work_list(vault, f"{prefix}work-list.json", [{"part": n, "entry_key": k} for n, k in enumerate(entries)])
    return TableRestorePrepared(
        restore_id=restore_id,
        recovery_point=rp.id,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=full_key(vault, f"{prefix}work-list.json"),
        parts=len(entries),
        table_created=created,
        worker_concurrency=request.worker_concurrency,
    )


def restore_worker(
    vault: Vault, event: TableRestoreWorkerEvent, sleep: Callable[[float], None] = time.sleep, ddb: Any = None
) -> TableRestoreSummary:
    """Write the items of one segment part; writing them again after a failed attempt is harmless (same items)."""
    prefix = run_prefix(event.restore_id)
    staged = get_sealed(vault, f"{prefix}run.json", TableRestoreStaged)
    rp = load_recovery_point(vault, staged.recovery_point)
    entries = [e for e in iter_entries(vault, rp) if e.key == event.item.entry_key]
    ref = parse_table_url(staged.target)
    rate = staged.write_rate / max(1, staged.parts) if staged.write_rate else None
    stats = write_entries_to_table(vault, entries, ddb or table_client(ref), ref.name, staged.key_names, rate, sleep)
    summary = TableRestoreSummary(part=event.item.part, items=stats.items, write_units=stats.write_capacity_units)
    put_sealed(vault, f"{prefix}results/{event.item.part:06d}.json", summary)
    return summary


def restore_finish(vault: Vault, event: TableRestoreFinishEvent) -> TableRestoreFinished:
    """Check every part reported, add up, clear staging."""
    prepared = event.prepared
    prefix = run_prefix(prepared.restore_id)
    staged = get_sealed(vault, f"{prefix}run.json", TableRestoreStaged)
    results = [get_sealed(vault, o.key, TableRestoreSummary) for o in vault.storage.list(f"{prefix}results/")]
    missing = sorted(set(range(prepared.parts)) - {r.part for r in results})
    if missing:
        raise IntegrityError(f"restore {prepared.restore_id}: parts {missing[:10]} did not report")
    clean_run(vault, prepared.restore_id)
    clean_map_results(vault, event.map)
    return TableRestoreFinished(
        restore_id=prepared.restore_id,
        recovery_point=staged.recovery_point,
        target=staged.target,
        items=sum(r.items for r in results),
        table_created=staged.table_created,
    )
