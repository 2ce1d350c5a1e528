"""DynamoDB backup and restore workflow steps, as plain functions the Lambda handlers call.

Each backup step runs one piece of `vaultline.operations.table_backup` (the CLI runs the same pieces in a loop) on
the staged run (`vaultline.runs.protocol.StagedRun`):

Backup (scan mode): :func:`prepare` opens the run and stages a work list of segments -> a Map over it runs
:func:`segment_worker` per segment; a worker whose time budget runs low returns ``done: false`` and a ``next`` item
(same segment, next part, cursor) that the state machine loops back into the worker -> :func:`commit`.

Backup (export mode): :func:`prepare` starts ExportTableToPointInTime into staging -> the state machine polls
:func:`export_status` until it returns ``status: COMPLETED`` with the work list (one data file, or one parent
segment to merge, each) -> the same Map and :func:`segment_worker` -> :func:`commit`.

Restore: :func:`restore_prepare` (create or check the target table, stage one work item per segment part) -> Map of
:func:`restore_worker` -> :func:`restore_finish`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from vaultline.operations.table_backup import (
    SegmentPart,
    TableReader,
    commit_table,
    export_work,
    open_run,
    start_run,
    store_segment,
)
from vaultline.operations.table_restore import prepare_target, restore_work, work_items, write_items_to_table
from vaultline.repository import locks
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.manifest import load_recovery_point, resolve_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs.models import Committed, PrepareEvent, filled_from
from vaultline.runs.protocol import StagedRun, clean_map_results, s3_storage
from vaultline.runs.table_models import (
    ExportStatus,
    ExportStatusEvent,
    SegmentSummary,
    SegmentWorkerEvent,
    TableBackupRequest,
    TableCommitEvent,
    TablePrepared,
    TableRestoreFinished,
    TableRestoreFinishEvent,
    TableRestoreItem,
    TableRestorePrepared,
    TableRestoreRequest,
    TableRestoreStaged,
    TableRestoreSummary,
    TableRestoreWorkerEvent,
    TableStagedRun,
)
from vaultline.sources.dynamodb.export import export_status as describe_export
from vaultline.sources.dynamodb.model import table_info
from vaultline.sources.dynamodb.table import table_client
from vaultline.sources.dynamodb.urls import parse_table_url

# A worker stops reading when less than this is left of its Lambda time: enough to flush its last packs and index.
RESERVE_MS = 60_000


def _backup(vault: Vault, rp_id: str) -> StagedRun[TableStagedRun]:
    return StagedRun(vault, rp_id, TableStagedRun)


def prepare(vault: Vault, event: PrepareEvent) -> TablePrepared:
    """Open the run (describe and size the table), take the shared vault lock (held until Commit or Abort, as for
    an S3 run), stage the run and, in scan mode, the work list; in export mode start the export."""
    request = TableBackupRequest.model_validate(event.request)
    ddb = table_client(parse_table_url(request.source.url))
    table = open_run(
        ddb,
        request.source.url,
        request.source.options,
        worker_concurrency=request.worker_concurrency,
        plan=request.plan,
        tags=request.tags,
        compression_level=request.compression_level,
    )
    staged = _backup(vault, table.recovery_point)
    lock = locks.acquire(vault.storage, "backup", exclusive=False, owner=event.execution or staged.id)
    with staged.undone_on_failure(lock):
        work = start_run(vault, ddb, table)
        work_list_key = staged.write_work_list(work) if work is not None else None
        run = TableStagedRun(**dict(table), execution=event.execution, lock_id=lock.id)
        staged.write(run)
    return TablePrepared(
        recovery_point=run.recovery_point,
        vault_bucket=s3_storage(vault).bucket,
        mode=run.options.mode,
        work_list_key=work_list_key,
        segments=run.total_segments,
        export_arn=run.export_arn,
        worker_concurrency=request.worker_concurrency,
    )


def export_status(vault: Vault, event: ExportStatusEvent) -> ExportStatus:
    """Poll the export; once COMPLETED, stage its work list."""
    staged = _backup(vault, event.prepared.recovery_point)
    run = staged.read()
    status = str(describe_export(table_client(parse_table_url(run.url)), str(run.export_arn)).get("ExportStatus"))
    if status != "COMPLETED":
        return ExportStatus(status=status)
    work = export_work(vault, run)
    key = staged.write_work_list(work)
    staged.write(run)
    files = len(run.change_files) if run.incremental else len(work)
    return ExportStatus(status=status, work_list_key=key, files=files)


def segment_worker(
    vault: Vault,
    event: SegmentWorkerEvent,
    remaining_ms: Callable[[], int] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    ddb: Any = None,
) -> SegmentSummary:
    """Store one part of one segment (:func:`~vaultline.operations.table_backup.store_segment`) until the segment
    ends or ``remaining_ms()`` drops below RESERVE_MS (then return ``done: false`` and ``next``). Re-running the
    same part rewrites the same result: safe."""
    staged = _backup(vault, event.recovery_point)
    run = staged.read()
    staged.refresh_lock(run.lock_id)
    reader = TableReader(vault, run, sleep=sleep, remaining_ms=remaining_ms, reserve_ms=RESERVE_MS, ddb=ddb)
    with BlobWriter(vault, run.compression_level) as writer:
        part = store_segment(vault, run, event.item, writer, reader)
        part.stats.add_written(writer.flush())
    staged.put_result(f"{part.segment:05d}-{part.part:04d}", part)
    return filled_from(SegmentSummary, part, bytes=part.entry.size)


class _StagedParts:
    """The run's staged parts, listed and read anew on each iteration (Commit walks them twice and holds none)."""

    def __init__(self, staged: StagedRun[TableStagedRun]) -> None:
        self._staged = staged

    def __iter__(self) -> Iterator[SegmentPart]:
        return self._staged.present_results(SegmentPart)


def commit(vault: Vault, event: TableCommitEvent) -> Committed:
    """Commit the table from every staged part (:func:`~vaultline.operations.table_backup.commit_table` refuses
    incomplete chains), then clean the run and release its lock."""
    staged = _backup(vault, event.prepared.recovery_point)
    run = staged.read()
    with BlobWriter(vault, run.compression_level) as writer:
        header = commit_table(vault, run, _StagedParts(staged), writer, TableReader(vault, run))
    staged.clean()
    clean_map_results(vault, event.map)
    if run.lock_id:
        locks.release(vault.storage, run.lock_id)
    return Committed(recovery_point=header.id, source=header.source, plan=header.plan, stats=header.stats)


# -- restore ------------------------------------------------------------------------------------------------------


def _restore(vault: Vault, restore_id: str) -> StagedRun[TableRestoreStaged]:
    return StagedRun(vault, restore_id, TableRestoreStaged)


def restore_prepare(vault: Vault, event: PrepareEvent) -> TableRestorePrepared:
    """Resolve the recovery point, create the target table from its description (or check the existing table's key
    schema, refusing a mismatch before anything is written), stage one work item per segment part."""
    request = TableRestoreRequest.model_validate(event.request)
    rp = resolve_recovery_point(vault, request.recovery_point)
    snapshot = table_info(rp).table
    ref = parse_table_url(request.target)
    keys = restore_work(vault, rp)  # a layered recovery point's chains are checked before the table is made
    created = prepare_target(table_client(ref), ref.name, snapshot)
    staged = StagedRun.new_restore(vault, TableRestoreStaged, rp.id)
    staged.write(
        TableRestoreStaged(
            recovery_point=rp.id,
            target=ref.url,
            key_names=list(snapshot.key_types),
            write_rate=request.write_rate,
            parts=len(keys),
            table_created=created,
        )
    )
    work_list_key = staged.write_work_list([TableRestoreItem(part=n, entry_key=key) for n, key in enumerate(keys)])
    return TableRestorePrepared(
        restore_id=staged.id,
        recovery_point=rp.id,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=work_list_key,
        parts=len(keys),
        table_created=created,
        worker_concurrency=request.worker_concurrency,
    )


def restore_worker(
    vault: Vault, event: TableRestoreWorkerEvent, sleep: Callable[[float], None] = time.sleep, ddb: Any = None
) -> TableRestoreSummary:
    """Write the items of one segment part; writing them again after a failed attempt is harmless (same items)."""
    staged = _restore(vault, event.restore_id)
    run = staged.read()
    rp = load_recovery_point(vault, run.recovery_point)
    items = work_items(vault, rp, event.item.entry_key)
    ref = parse_table_url(run.target)
    rate = run.write_rate / max(1, run.parts) if run.write_rate else None
    stats = write_items_to_table(items, ddb or table_client(ref), ref.name, run.key_names, rate, sleep)
    summary = TableRestoreSummary(part=event.item.part, items=stats.items, write_units=stats.write_capacity_units)
    staged.put_result(f"{event.item.part:06d}", summary)
    return summary


def restore_finish(vault: Vault, event: TableRestoreFinishEvent) -> TableRestoreFinished:
    """Prove every part reported, add up, clear staging."""
    prepared = event.prepared
    staged = _restore(vault, prepared.restore_id)
    run = staged.read()
    parts = [f"{part:06d}" for part in range(prepared.parts)]
    results = staged.results(TableRestoreSummary, parts, f"restore {prepared.restore_id}")
    staged.clean()
    clean_map_results(vault, event.map)
    return TableRestoreFinished(
        restore_id=prepared.restore_id,
        recovery_point=run.recovery_point,
        target=run.target,
        items=sum(r.items for r in results),
        table_created=run.table_created,
    )
