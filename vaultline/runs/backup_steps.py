"""Backup workflow steps: Prepare, Worker, Commit, Abort (Abort is shared by every workflow).

Each step opens its run through the staged-run protocol (:mod:`vaultline.runs.protocol`); the backup itself is
:mod:`vaultline.operations.backup`'s, the commit :mod:`vaultline.repository.commit`'s.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from vaultline.operations.backup import (
    BackupOptions,
    BatchOutcome,
    backup_objects,
    header_extra,
    recover_unindexed_packs,
)
from vaultline.repository import locks
from vaultline.repository.blob_writer import BlobWriter, WriteStats
from vaultline.repository.commit import commit_stored, store_entries
from vaultline.repository.entry_streams import join_with_parent, merge_by_key
from vaultline.repository.manifest import (
    ISSUES_REPORTED,
    BackupStats,
    Entry,
    EntryLine,
    Issues,
    ObjectEntry,
    RecoveryPoint,
    iter_entry_lines,
    latest_for_source,
)
from vaultline.repository.vault import Vault
from vaultline.runs.backup_parts import cut_parts
from vaultline.runs.models import (
    Aborted,
    AbortEvent,
    BackupBatch,
    BackupRequest,
    BackupRun,
    BackupWorkerEvent,
    BatchResult,
    BatchSummary,
    CarriedPart,
    CommitEvent,
    Committed,
    Prepared,
    PrepareEvent,
    WorkItem,
    filled_from,
)
from vaultline.runs.protocol import RunLock, StagedRun, clean_map_results, item_name, s3_storage
from vaultline.sources import KeyFilter, S3Source
from vaultline.sources.read_ahead import ReadAhead

T = TypeVar("T")

CARRIED = "carried"  # the name of Prepare's carried parts among the results: carried-000000, ...


def carried_name(number: int) -> str:
    """The result name of carried part ``number``: after every batch's (digits sort before letters)."""
    return f"{CARRIED}-{item_name(number)}"


def _source(request: BackupRequest) -> S3Source:
    spec = request.source
    return S3Source(spec.url, KeyFilter(spec.include, spec.exclude), role_arn=spec.role_arn, inventory=spec.inventory)


def _options(request: BackupRequest) -> BackupOptions:
    return BackupOptions(archived_objects=request.archived_objects, tags_refresh=request.tags_refresh)


def _run(vault: Vault, rp_id: str) -> StagedRun[BackupRun]:
    return StagedRun(vault, rp_id, BackupRun)


def prepare(vault: Vault, event: PrepareEvent) -> Prepared:
    """Open a recovery point: list the source, compare it with the parent as both stream by, and stage each part
    as it is cut: batches of objects to read or retag (the work list), parts of unchanged objects carried over."""
    request = BackupRequest.model_validate(event.request)
    source = _source(request)
    started = datetime.now(UTC)
    run = StagedRun.new_backup(vault, BackupRun, started)
    # A shared lock for the whole run, taken before the index is read: a prune (exclusive) cannot delete
    # garbage blobs this run's workers will find in the index and reuse. Workers refresh it; Commit and
    # Abort release it; a run that dies without either leaves a lock that goes stale in 30 minutes.
    lock = locks.acquire(vault.storage, "backup", exclusive=False, owner=event.execution or run.id)
    with run.undone_on_failure(lock):
        vault.forget_index()
        recover_unindexed_packs(vault)
        parent = latest_for_source(vault, source.url)
        options = _options(request)
        retag = options.tags_due(parent)
        # The parent's entries stay lines: most of them pass to the new manifest unchanged, never decoded whole.
        parent_entries = iter_entry_lines(vault, parent) if parent else ()
        changed = ParentChunks()
        joined = join_with_parent(source.list(), parent_entries, f"listing of {source.url}", on_changed=changed.add)
        staged = stage_parts(run, joined, retag, request.worker_concurrency, changed)
        run.write(
            BackupRun(
                recovery_point=run.id,
                source=request.source,
                plan=request.plan,
                tags=request.tags,
                compression_level=request.compression_level,
                parent=parent.id if parent else None,
                started=started,
                batches=staged.batches,
                carried_parts=staged.carried_parts,
                execution=event.execution,
                lock_id=lock.id,
                archived_objects=options.archived_objects,
                tags_age=options.tags_age(parent, retag),
            )
        )
        # The batches' keys follow from their numbers: the work list is written from the count alone.
        work_list_key = run.write_work_list(
            [WorkItem(batch=number, key=run.batch_key(number)) for number in range(staged.batches)]
        )
    return Prepared(
        recovery_point=run.id,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=work_list_key,
        batches=staged.batches,
        objects=staged.objects,
        worker_concurrency=request.worker_concurrency,
    )


# Parent-entry chunks held by Prepare between the join and the staging of their batch (16 bytes each): the
# look-ahead's changed objects can be many and large, so past this many the rest go without the hint (their workers
# ask the index instead: slower, never wrong).
PARENT_CHUNKS_HELD = 4_000_000


@dataclass
class ParentChunks:
    """The parent entries' chunks of changed objects, by key, from the join until their batch is staged."""

    held: int = 0
    by_key: dict[str, bytes] = field(default_factory=dict)

    def add(self, item: ObjectEntry, before: ObjectEntry | EntryLine) -> None:
        # A changed object's parent entry is decoded whole here only: changed objects are the few.
        chunks = before.chunks if isinstance(before, ObjectEntry) else before.entry().chunks
        if self.held + len(chunks) <= PARENT_CHUNKS_HELD:
            self.by_key[item.key] = b"".join(bytes.fromhex(chunk)[:16] for chunk in chunks)
            self.held += len(chunks)

    def take(self, entries: list[ObjectEntry]) -> str:
        """The base64 of the chunks of ``entries`` (``BackupBatch.parent_chunks``), no longer held."""
        keys = [self.by_key.pop(entry.key, b"") for entry in entries]
        self.held -= sum(len(k) for k in keys) // 16
        return base64.b64encode(b"".join(keys)).decode()


@dataclass(frozen=True)
class StagedParts:
    """What Prepare staged: how many batches (the work items) and carried parts, and how many objects in all."""

    batches: int
    carried_parts: int
    objects: int


def stage_parts(
    run: StagedRun[BackupRun],
    joined: Iterable[tuple[ObjectEntry, ObjectEntry | EntryLine | None]],
    retag: bool,
    workers: int,
    changed: ParentChunks | None = None,
) -> StagedParts:
    """Cut the joined listing into parts and stage each as it is cut: a batch as a work item's input, a carried
    part directly as a result (Commit merges it with the workers'). Memory holds one part of each kind."""
    batches = carried_parts = objects = 0
    for part in cut_parts(joined, retag, workers):
        if isinstance(part, BackupBatch):
            if changed is not None:
                part.parent_chunks = changed.take(part.read)
            run.put_batch(part.batch, part)
            batches += 1
            objects += len(part.read) + len(part.retag)
        else:
            run.put_result(carried_name(part.batch), part)
            carried_parts += 1
            objects += part.stats.objects
    return StagedParts(batches, carried_parts, objects)


def work(vault: Vault, event: BackupWorkerEvent) -> BatchSummary:
    """Back up one batch. Safe to run again: chunks already stored are found in the index and skipped.

    Each of the step's own requests costs a round trip, and one after another they were half of a small batch's
    time: the independent ones go together (:class:`_WorkerInputs` at the start; the index object and the result at
    the end, once every pack is stored), and the lock's refresh runs beside the backup."""
    run = _run(vault, event.recovery_point)
    with ThreadPoolExecutor(max_workers=5, thread_name_prefix="vl-worker-step") as pool:
        inputs = _WorkerInputs(pool, vault, run, event.item.key)
        document, batch = inputs.document, inputs.batch
        source = _source(BackupRequest(source=document.source))
        options = BackupOptions(archived_objects=document.archived_objects)
        # The batch's objects are opened a few ahead of the chunker: their GETs' latency overlaps compression.
        with BlobWriter(vault, document.compression_level) as writer, ReadAhead(source, batch.read) as ahead:
            inputs.loaded()
            writer.assume_stored(batch.parent_chunk_keys())
            outcome = backup_objects(vault, ahead, batch.read, {}, writer, options=options)
            # Unchanged objects: the listing is the parent entry itself, so only the tags are read.
            retagged = backup_objects(
                vault, source, batch.retag, {e.key: e for e in batch.retag}, writer, options=options, refresh_tags=True
            )
            written = writer.store_packs()
            # Nothing that claims the packs is written before the lock is known to be held (RunLock.refresh_lock).
            inputs.refreshed()
            result = _batch_result(event.item.batch, run, batch, outcome, retagged, written)
            # Every pack the result counts is stored: the result and the index object naming the packs may be
            # written together. Commit reads the result only once every worker has returned, so after this
            # worker's index object too; a worker that fails between the two is run again (its result replaced)
            # or the run aborted, and a recovery point never names a blob that no index object lists.
            indexing = pool.submit(writer.flush)
            result_key = _first_error(pool.submit(run.put_result, item_name(event.item.batch), result), indexing)
            indexing.result()
    kinds = [i.kind for i in result.issues]
    return BatchSummary(
        batch=event.item.batch,
        objects=result.stats.objects,
        bytes_read=result.stats.bytes_read,
        bytes_stored=result.stats.bytes_stored,
        result_key=run.bucket_key(result_key),
        archived=kinds.count("archived"),
        vanished=kinds.count("vanished"),
    )


class _WorkerInputs:
    """What a worker reads before it backs up anything, read together on ``pool``: the run document and the batch
    (read at once), the index and the Object Lock settings (loaded into the vault, waited for by :meth:`loaded`),
    and the refresh of the run's lock, started once the document names it (waited for by :meth:`refreshed`).
    Each wait raises a failure as the serial reads raised it: the run document's first, then a lost lock's, then
    the batch's, the index's, the Object Lock settings'."""

    def __init__(self, pool: ThreadPoolExecutor, vault: Vault, run: StagedRun[BackupRun], batch_key: str) -> None:
        reading = pool.submit(run.read)
        self._staged = pool.submit(run.get_staged, batch_key, BackupBatch)
        self._index = pool.submit(lambda: vault.lookup)
        self._lock_settings = pool.submit(vault.load_lock_settings)
        self.document = reading.result()
        self._refreshing = pool.submit(run.refresh_lock, self.document.lock_id)
        self.batch = _first_error(self._staged, self._refreshing)

    def loaded(self) -> None:
        """Wait for the index and the Object Lock settings: before the first chunk asks the index (a lazy load
        beside this one would read it twice), while the batch's first objects are being read."""
        _first_error(self._index, self._refreshing)
        _first_error(self._lock_settings, self._refreshing, self._index)

    def refreshed(self) -> None:
        """Wait for the lock's refresh (RunLock.refresh_lock: a lost lock fails the step)."""
        self._refreshing.result()


def _first_error(future: Future[T], *earlier: Future[Any]) -> T:
    """``future``'s result; if it failed, the error of the first of ``earlier`` (requests made beside it that a
    serial step made before it) that failed, else its own: a parallel read fails as the serial one did."""
    try:
        return future.result()
    except BaseException:
        for before in earlier:
            before.result()
        raise


def _batch_result(
    number: int,
    run: StagedRun[BackupRun],
    batch: BackupBatch,
    outcome: BatchOutcome,
    retagged: BatchOutcome,
    written: WriteStats,
) -> BatchResult:
    """The batch's result: both lists keep the batch's key order, so merged they are one key-sorted part for
    Commit."""
    entries = list(merge_by_key([outcome.entries, retagged.entries], f"recovery point {run.id} batch {batch.batch}"))
    issues = sorted([*outcome.issues, *retagged.issues], key=lambda issue: issue.key)
    stats = outcome.stats
    stats.merge(retagged.stats)
    stats.add_written(written)
    return BatchResult(batch=number, entries=entries, stats=stats, issues=issues)


def commit(vault: Vault, event: CommitEvent) -> Committed:
    """Merge the batches' results and the carried parts, as streams, into the manifest and write it last; then
    clear the staging area."""
    run = _run(vault, event.prepared.recovery_point)
    document = run.read()
    header, issues = commit_parts(vault, run, document)
    run.finish(event.map, document.lock_id)
    return filled_from(Committed, header, recovery_point=run.id, issues=issues.first(ISSUES_REPORTED))


def commit_parts(vault: Vault, run: StagedRun[BackupRun], document: BackupRun) -> tuple[RecoveryPoint, Issues]:
    """Check that every part of the run is staged, merge them by key into the entry stream (one part of each kind
    in memory, and the parts being read ahead) and commit the recovery point; return it and its issues."""
    what = f"recovery point {run.id}"
    batch_names = [item_name(number) for number in range(document.batches)]
    carried_names = [carried_name(number) for number in range(document.carried_parts)]
    # Never commit a recovery point that silently lacks a part: the run's results are listed before any is read.
    run.check_results([*batch_names, *carried_names], what)
    parts = _PartsRead()
    results = parts.entries(run.iter_results(BatchResult, batch_names))
    carried = parts.carried(run.iter_results(CarriedPart, carried_names), what)
    entries: Iterator[Entry] = merge_by_key([results, carried], what)
    source = _source(BackupRequest(source=document.source))
    with BlobWriter(vault, document.compression_level) as writer:
        stored = store_entries(vault, writer, entries, what)
        # Every part has been read: its figures and issues are complete.
        draft = document.draft(source.url, source.kind, parts.stats, header_extra(parts.issues, document.tags_age))
        return commit_stored(vault, writer, draft, stored), parts.issues


class _PartsRead:
    """What Commit adds up from the parts as it merges them: their figures and issues (the first of them by key)."""

    def __init__(self) -> None:
        self.stats = BackupStats()
        self.issues = Issues()

    def entries(self, parts: Iterable[BatchResult]) -> Iterator[Entry]:
        for part in parts:
            self.stats.merge(part.stats)
            self.issues = self.issues.plus(part.issues)
            yield from part.entries

    def carried(self, parts: Iterable[CarriedPart], what: str) -> Iterator[Entry]:
        for part in parts:
            self.stats.merge(part.stats)
            yield from part.entry_lines(what)


def abort(vault: Vault, event: AbortEvent) -> Aborted:
    """Clean a failed run's staging area (a backup's or a restore's, of either source kind). Packs it uploaded stay
    as unreferenced garbage for prune; no manifest was written, so no recovery point exists."""
    prepared = event.prepared or {}
    # A backup's, a restore's, or a maintenance verify's run (Maintenance hands it as ``{"run_id": ...}``).
    run_id = prepared.get("recovery_point") or prepared.get("restore_id") or prepared.get("run_id")
    cleaned = StagedRun(vault, str(run_id), RunLock).abort(event.map) if run_id else 0
    if not run_id:
        clean_map_results(vault, event.map)
    error = event.error or {}
    return Aborted(run=run_id, staging_objects_deleted=cleaned, error=error.get("Error"), cause=error.get("Cause"))
