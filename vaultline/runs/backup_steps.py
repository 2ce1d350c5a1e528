"""Backup workflow steps: Prepare, Worker, Commit, Abort (Abort is shared by every workflow).

Each step opens its run through the staged-run protocol (:mod:`vaultline.runs.protocol`); the backup itself is
:mod:`vaultline.operations.backup`'s, the commit :mod:`vaultline.repository.commit`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from vaultline.operations.backup import (
    BackupOptions,
    backup_objects,
    header_extra,
    load_previous,
    recover_unindexed_packs,
    unchanged_entry,
)
from vaultline.repository import locks
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.commit import finish_recovery_point
from vaultline.repository.manifest import ISSUES_REPORTED, BackupStats, Issues, ObjectEntry, latest_for_source
from vaultline.repository.vault import Vault
from vaultline.runs.models import (
    Aborted,
    AbortEvent,
    BackupRequest,
    BackupRun,
    BackupWorkerEvent,
    BatchResult,
    BatchSummary,
    CommitEvent,
    Committed,
    Prepared,
    PrepareEvent,
    WorkItem,
    filled_from,
)
from vaultline.runs.protocol import RunLock, StagedRun, clean_map_results, item_name, s3_storage
from vaultline.sources import KeyFilter, S3Source

# A batch is sized so one worker finishes it well inside its 15 minutes even at modest throughput; objects larger
# than the byte budget get a batch of their own.
BATCH_MAX_OBJECTS = 500
BATCH_MAX_BYTES = 2 * 1024**3
BATCH_MIN_OBJECTS = 25
BATCH_MIN_BYTES = 64 * 1024**2
CARRIED_BATCH = -1  # the result that holds unchanged objects carried over from the parent
CARRIED = "carried"  # its result's name


def _source(request: BackupRequest) -> S3Source:
    spec = request.source
    return S3Source(spec.url, KeyFilter(spec.include, spec.exclude), role_arn=spec.role_arn)


def batches(listed: list[ObjectEntry], workers: int = 1, read: bool = True) -> Iterator[list[ObjectEntry]]:
    """Group objects into batches bounded by count and bytes, and spread over at least ``workers`` batches when
    there are enough objects (25 or more each): a small bucket should not run on one worker of ten.

    ``read=False`` batches objects that are not read (only their tags are): their sizes do not count."""
    if not read:
        listed = [e.model_copy(update={"size": 0}) for e in listed]
    total_bytes = sum(e.size for e in listed)
    spread = max(1, min(workers, len(listed) // BATCH_MIN_OBJECTS))
    max_objects = min(BATCH_MAX_OBJECTS, -(-len(listed) // spread))
    max_bytes = min(BATCH_MAX_BYTES, max(BATCH_MIN_BYTES, -(-total_bytes // spread)))
    batch: list[ObjectEntry] = []
    size = 0
    for entry in listed:
        if batch and (len(batch) >= max_objects or size + entry.size > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch


def _options(request: BackupRequest) -> BackupOptions:
    return BackupOptions(archived_objects=request.archived_objects, tags_refresh=request.tags_refresh)


def _run(vault: Vault, rp_id: str) -> StagedRun[BackupRun]:
    return StagedRun(vault, rp_id, BackupRun)


def prepare(vault: Vault, event: PrepareEvent) -> Prepared:
    """Open a recovery point: list the source, carry unchanged objects over, stage batches of the rest."""
    request = BackupRequest.model_validate(event.request)
    source = _source(request)
    started = datetime.now(UTC)
    run = StagedRun.new_backup(vault, BackupRun, started)
    # A shared lock for the whole run, taken before the index is read: a prune (exclusive) cannot delete
    # garbage blobs this run's workers will find in the index and reuse. Workers refresh it; Commit and
    # Abort release it; a run that dies without either leaves a lock that goes stale in 30 minutes.
    lock = locks.acquire(vault.storage, "backup", exclusive=False, owner=event.execution or run.id)
    with run.undone_on_failure(lock):
        vault.reload_index()
        recover_unindexed_packs(vault)
        parent = latest_for_source(vault, source.url)
        previous = load_previous(vault, parent)
        options = _options(request)
        retag = options.tags_due(parent)

        carried = BatchResult(batch=CARRIED_BATCH, entries=[], stats=BackupStats())
        changed: list[ObjectEntry] = []
        unchanged: list[ObjectEntry] = []
        for item in source.list():
            before = unchanged_entry(previous, item)
            if before is None:
                changed.append(item)
            elif retag:
                unchanged.append(before)  # a worker reads its tags again; its chunks are reused
            else:
                carried.entries.append(before)
                carried.stats.objects += 1
                carried.stats.objects_unchanged += 1
                carried.stats.bytes += item.size
        run.put_result(CARRIED, carried)

        staged = [
            BatchResult(batch=number, entries=batch, stats=BackupStats())
            for number, batch in enumerate(batches(changed, request.worker_concurrency))
        ]
        staged += [
            BatchResult(batch=number, entries=[], retag=batch, stats=BackupStats())
            for number, batch in enumerate(batches(unchanged, request.worker_concurrency, read=False), len(staged))
        ]
        work = [WorkItem(batch=result.batch, key=run.put_batch(result.batch, result)) for result in staged]
        run.write(
            BackupRun(
                recovery_point=run.id,
                source=request.source,
                plan=request.plan,
                tags=request.tags,
                compression_level=request.compression_level,
                parent=parent.id if parent else None,
                started=started,
                batches=len(work),
                execution=event.execution,
                lock_id=lock.id,
                archived_objects=options.archived_objects,
                tags_age=options.tags_age(parent, retag),
            )
        )
        work_list_key = run.write_work_list(work)
    return Prepared(
        recovery_point=run.id,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=work_list_key,
        batches=len(work),
        objects=len(changed) + len(unchanged) + len(carried.entries),
        worker_concurrency=request.worker_concurrency,
    )


def work(vault: Vault, event: BackupWorkerEvent) -> BatchSummary:
    """Back up one batch. Safe to run again: chunks already stored are found in the index and skipped."""
    run = _run(vault, event.recovery_point)
    document = run.read()
    run.refresh_lock(document.lock_id)
    batch = run.get_staged(event.item.key, BatchResult)
    source = _source(BackupRequest(source=document.source))
    options = BackupOptions(archived_objects=document.archived_objects)
    with BlobWriter(vault, document.compression_level) as writer:
        outcome = backup_objects(vault, source, batch.entries, {}, writer, options=options)
        # Unchanged objects: the listing is the parent entry itself, so only the tags are read.
        retagged = backup_objects(
            vault, source, batch.retag, {e.key: e for e in batch.retag}, writer, options=options, refresh_tags=True
        )
        written = writer.flush()
    outcome.entries += retagged.entries
    outcome.issues += retagged.issues
    outcome.stats.merge(retagged.stats)
    stats = outcome.stats
    stats.add_written(written)
    result = BatchResult(batch=event.item.batch, entries=outcome.entries, stats=stats, issues=outcome.issues)
    result_key = run.put_result(item_name(event.item.batch), result)
    kinds = [i.kind for i in outcome.issues]
    return BatchSummary(
        batch=event.item.batch,
        objects=stats.objects,
        bytes_read=stats.bytes_read,
        bytes_stored=stats.bytes_stored,
        result_key=run.bucket_key(result_key),
        archived=kinds.count("archived"),
        vanished=kinds.count("vanished"),
    )


def commit(vault: Vault, event: CommitEvent) -> Committed:
    """Merge every batch result into the manifest and write it last; then clear the staging area."""
    run = _run(vault, event.prepared.recovery_point)
    document = run.read()
    # Never commit a recovery point that silently lacks a batch.
    names = [*(item_name(n) for n in range(document.batches)), CARRIED]
    results = run.results(BatchResult, names, f"recovery point {run.id}")
    stats = BackupStats()
    for result in results:
        stats.merge(result.stats)
    issues = [issue for result in results for issue in result.issues]
    source = _source(BackupRequest(source=document.source))
    draft = document.draft(source.url, source.kind, stats, header_extra(issues, document.tags_age))
    with BlobWriter(vault, document.compression_level) as writer:
        header = finish_recovery_point(vault, writer, draft, (e for result in results for e in result.entries))
    run.finish(event.map, document.lock_id)
    return filled_from(Committed, header, recovery_point=run.id, issues=Issues.of(issues, ISSUES_REPORTED))


def abort(vault: Vault, event: AbortEvent) -> Aborted:
    """Clean a failed run's staging area (a backup's or a restore's, of either source kind). Packs it uploaded stay
    as unreferenced garbage for prune; no manifest was written, so no recovery point exists."""
    prepared = event.prepared or {}
    run_id = prepared.get("recovery_point") or prepared.get("restore_id")
    cleaned = StagedRun(vault, str(run_id), RunLock).abort(event.map) if run_id else 0
    if not run_id:
        clean_map_results(vault, event.map)
    error = event.error or {}
    return Aborted(run=run_id, staging_objects_deleted=cleaned, error=error.get("Error"), cause=error.get("Cause"))
