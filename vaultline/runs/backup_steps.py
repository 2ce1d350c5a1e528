"""Backup workflow steps: Prepare, Worker, Commit, Abort."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, ValidationError

from vaultline.errors import IntegrityError, ObjectMissing, VaultError, VaultlineError
from vaultline.operations.backup import (
    BackupOptions,
    backup_objects,
    finish_recovery_point,
    load_previous,
    recover_unindexed_packs,
)
from vaultline.repository import locks
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.layout import run_prefix
from vaultline.repository.manifest import (
    ISSUES_REPORTED,
    BackupStats,
    Issues,
    ObjectEntry,
    ObjectIssue,
    latest_for_source,
    load_recovery_point,
    new_recovery_point_id,
)
from vaultline.repository.vault import Vault
from vaultline.runs.models import (
    Aborted,
    AbortEvent,
    BackupRequest,
    BackupWorkerEvent,
    BatchResult,
    BatchSummary,
    CommitEvent,
    Committed,
    Prepared,
    PrepareEvent,
    StagedRun,
    WorkItem,
)
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
from vaultline.sources import KeyFilter, S3Source

# A batch is sized so one worker finishes it well inside its 15 minutes even at modest throughput; objects larger
# than the byte budget get a batch of their own.
BATCH_MAX_OBJECTS = 500
BATCH_MAX_BYTES = 2 * 1024**3
BATCH_MIN_OBJECTS = 25
BATCH_MIN_BYTES = 64 * 1024**2
CARRIED_BATCH = -1  # the result that holds unchanged objects carried over from the parent


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


class RunLock(BaseModel):
    """The part of any staged run document that Abort needs."""

    model_config = ConfigDict(extra="ignore")
    lock_id: str | None = None


def prepare(vault: Vault, event: PrepareEvent) -> Prepared:
    """Open a recovery point: list the source, carry unchanged objects over, stage batches of the rest."""
    request = BackupRequest.model_validate(event.request)
    source = _source(request)
    started = datetime.now(UTC)
    rp_id = new_recovery_point_id(started)
    prefix = run_prefix(rp_id)
    # A shared lock for the whole run, taken before the index is read: a prune (exclusive) cannot delete
    # garbage blobs this run's workers will find in the index and reuse. Workers refresh it; Commit and
    # Abort release it; a run that dies without either leaves a lock that goes stale in 30 minutes.
    lock = locks.acquire(vault.storage, "backup", exclusive=False, owner=event.execution or rp_id)
    with undone_on_failure(vault, rp_id, lock):
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
            before = previous.get(item.key)
            if before is None or not before.same_content(item):
                changed.append(item)
            elif retag:
                unchanged.append(before)  # a worker reads its tags again; its chunks are reused
            else:
                carried.entries.append(before)
                carried.stats.objects += 1
                carried.stats.objects_unchanged += 1
                carried.stats.bytes += item.size
        put_sealed(vault, f"{prefix}results/carried.json", carried)

        staged = [
            BatchResult(batch=0, entries=batch, stats=BackupStats())
            for batch in batches(changed, request.worker_concurrency)
        ] + [
            BatchResult(batch=0, entries=[], retag=batch, stats=BackupStats())
            for batch in batches(unchanged, request.worker_concurrency, read=False)
        ]
        work: list[dict[str, object]] = []
        for number, result in enumerate(staged):
            key = f"{prefix}batches/{number:06d}.json"
            put_sealed(vault, key, result.model_copy(update={"batch": number}))
            work.append(WorkItem(batch=number, key=key).model_dump())
        run = StagedRun(
            recovery_point=rp_id,
            source=request.source,
            plan=request.plan,
            tags=request.tags,
            compression_level=request.compression_level,
            parent=parent.id if parent else None,
            started=started.isoformat(),
            batches=len(work),
            execution=event.execution,
            lock_id=lock.id,
            archived_objects=options.archived_objects,
            tags_age=options.tags_age(parent, retag),
        )
        put_sealed(vault, f"{prefix}run.json", run)
        work_list_key = f"{prefix}work-list.json"
        put_work_list(vault, work_list_key, work)
    return Prepared(
        recovery_point=rp_id,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=full_key(vault, work_list_key),
        batches=len(work),
        objects=len(changed) + len(unchanged) + len(carried.entries),
        worker_concurrency=request.worker_concurrency,
    )


def refresh_run_lock(vault: Vault, lock_id: str | None, run_id: str) -> None:
    """Keep the run's shared lock fresh while its workers run (a long map outlives the 30-minute staleness).

    A lock that is gone was removed as stale, so a prune may have run since Prepare read the index: going on
    could commit references to deleted blobs, so the run fails (and Abort cleans up) instead.
    """
    if not lock_id:
        return
    key = locks.LOCK_PREFIX + lock_id
    try:
        info = locks.LockInfo.model_validate_json(vault.storage.get(key))
    except ObjectMissing:
        raise VaultError(f"{vault.url}: backup {run_id} lost its lock {key}; run it again") from None
    locks.refresh(vault.storage, locks.Lock(id=lock_id, info=info))


def work(vault: Vault, event: BackupWorkerEvent) -> BatchSummary:
    """Back up one batch. Safe to run again: chunks already stored are found in the index and skipped."""
    prefix = run_prefix(event.recovery_point)
    run = get_sealed(vault, f"{prefix}run.json", StagedRun)
    refresh_run_lock(vault, run.lock_id, run.recovery_point)
    batch = get_sealed(vault, event.item.key, BatchResult)
    source = _source(BackupRequest(source=run.source))
    options = BackupOptions(archived_objects=run.archived_objects)
    with BlobWriter(vault, run.compression_level) as writer:
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
    result_key = f"{prefix}results/{event.item.batch:06d}.json"
    put_sealed(
        vault,
        result_key,
        BatchResult(batch=event.item.batch, entries=outcome.entries, stats=stats, issues=outcome.issues),
    )
    kinds = [i.kind for i in outcome.issues]
    return BatchSummary(
        batch=event.item.batch,
        objects=stats.objects,
        bytes_read=stats.bytes_read,
        bytes_stored=stats.bytes_stored,
        result_key=full_key(vault, result_key),
        archived=kinds.count("archived"),
        vanished=kinds.count("vanished"),
    )


def commit(vault: Vault, event: CommitEvent) -> Committed:
    """Merge every batch result into the manifest and write it last; then clear the staging area."""
    rp_id = event.prepared.recovery_point
    prefix = run_prefix(rp_id)
    run = get_sealed(vault, f"{prefix}run.json", StagedRun)
    results = [get_sealed(vault, o.key, BatchResult) for o in vault.storage.list(f"{prefix}results/")]
    seen = {r.batch for r in results}
    missing = [n for n in [CARRIED_BATCH, *range(run.batches)] if n not in seen]
    if missing:
        # Never commit a recovery point that silently lacks a batch.
        raise IntegrityError(f"recovery point {rp_id}: results of batches {missing[:10]} are missing from staging")
    stats = BackupStats()
    entries: list[ObjectEntry] = []
    issues: list[ObjectIssue] = []
    for result in results:
        stats.merge(result.stats)
        entries.extend(result.entries)
        issues.extend(result.issues)
    started = datetime.fromisoformat(run.started)
    stats.seconds = round((datetime.now(UTC) - started).total_seconds(), 3)
    source = _source(BackupRequest(source=run.source))
    parent = load_recovery_point(vault, run.parent) if run.parent else None
    with BlobWriter(vault, run.compression_level) as writer:
        header = finish_recovery_point(
            vault,
            writer,
            rp_id,
            source,
            started,
            entries,
            stats,
            parent,
            run.plan,
            run.tags,
            issues=issues,
            tags_age=run.tags_age,
        )
    clean_run(vault, rp_id)
    clean_map_results(vault, event.map)
    if run.lock_id:
        locks.release(vault.storage, run.lock_id)
    return Committed(
        recovery_point=rp_id,
        source=header.source,
        plan=header.plan,
        stats=header.stats,
        status=header.status,
        issues=Issues.of(issues, ISSUES_REPORTED),
    )


def abort(vault: Vault, event: AbortEvent) -> Aborted:
    """Clean a failed run's staging area. Packs it uploaded stay as unreferenced garbage for prune; no manifest
    was written, so no recovery point exists."""
    prepared = event.prepared or {}
    run_id = prepared.get("recovery_point") or prepared.get("restore_id")
    if run_id:
        # Prepare may have failed before it staged the run. S3 and DynamoDB runs stage different run.json
        # documents; both carry the lock id.
        with contextlib.suppress(VaultlineError, ValidationError):
            run = get_sealed(vault, f"{run_prefix(str(run_id))}run.json", RunLock)
            if run.lock_id:
                locks.release(vault.storage, run.lock_id)
    cleaned = clean_run(vault, str(run_id)) if run_id else 0
    clean_map_results(vault, event.map)
    error = event.error or {}
    return Aborted(run=run_id, staging_objects_deleted=cleaned, error=error.get("Error"), cause=error.get("Cause"))
