"""Copying one recovery point in bounded steps, on the staged-run protocol (`vaultline.runs.protocol`): what a Copy
state machine runs, Prepare -> a Distributed Map of :func:`item` over the staged batches -> :func:`commit`.

- :func:`prepare` skips a recovery point the target holds already; otherwise it takes a shared lock on the target
  (a prune there must not delete what the items dedup against), cuts the recovery point's entries into batches
  (`vaultline.operations.copy.copy_batches`, with the reference copy's target ids) and stages each, the work list
  and the run document in the **source** vault's staging (the target receives only packs, index objects, its lock
  and, last, the manifest).
- :func:`item` reads its batch's chunks from the source's packs, writes those the target lacks through its own
  blob writer (flushed: packs, then an index object) and stages the batch's entries with target ids. Running one
  again is harmless: it dedups against what the first run indexed and replaces its result.
- :func:`commit` proves every item left its result, streams the results in item order into the target's entry
  stream, writes the manifest (the commit point), releases the target's lock and clears the staging.
- :func:`abort` releases the target's lock and clears the staging of a failed run.

Ceilings: Prepare streams the entry stream once (as a backup's Prepare streams the parent's) and holds one batch
and the work list (one small entry per batch: a batch is up to ``BATCH_CHUNKS`` chunks to read, about 1 GiB of
data at the default chunk sizes); an item holds one batch and ``RANGES_IN_FLIGHT`` ranges of source packs;
commit holds one result at a time. The CLI (`vaultline copy`) resolves the same batches in one process without
staging them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from vaultline.errors import VaultError
from vaultline.operations.copy import (
    CopyBatch,
    CopyCounters,
    already_copied,
    check_target_version,
    commit_copy,
    copy_batch,
    copy_batches,
    copy_pool,
    reference_for,
)
from vaultline.repository import locks
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.commit import store_entries
from vaultline.repository.manifest import ObjectEntry, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs.copy_models import (
    CopiedEntries,
    CopyCommitEvent,
    CopyCommitResult,
    CopyItemEvent,
    CopyItemResult,
    CopyPlanned,
    CopyPrepareEvent,
    CopyRun,
    CopyWorkItem,
)
from vaultline.runs.protocol import StagedRun, item_name, s3_storage


def new_copy_id(recovery_point: str) -> str:
    """A copy run's id: unique, and it names what it copies."""
    return f"copy-{recovery_point}-{os.urandom(4).hex()}"


def _run(source: Vault, run_id: str) -> StagedRun[CopyRun]:
    return StagedRun(source, run_id, CopyRun)


def prepare(source: Vault, target: Vault, event: CopyPrepareEvent) -> CopyPlanned:
    """Stage the copy of ``event.recovery_point`` (see the module doc); a recovery point already in the target is
    ``skipped`` with nothing staged. RecoveryPointNotFound for an unknown one; VaultLocked while the target prunes."""
    if source.config.vault_id == target.config.vault_id:
        raise VaultError(f"copy: {target.url} is the source vault itself")
    rp = load_recovery_point(source, event.recovery_point)
    if already_copied(source, target, rp):
        return CopyPlanned(recovery_point=rp.id, skipped=True)
    check_target_version(target, rp)
    lock = locks.acquire(target.storage, "copy", exclusive=False)
    run = _run(source, new_copy_id(rp.id))
    try:
        target.forget_index()  # read after the lock: what a prune removed before it is not trusted
        reference = reference_for(source, target, rp, None)
        work = [
            CopyWorkItem(item=number, key=run.put_batch(number, batch))
            for number, batch in enumerate(copy_batches(source, target, rp, reference))
        ]
        work_list_key = run.write_work_list(work)
        run.write(
            CopyRun(
                recovery_point=rp.id,
                target_url=target.url,
                target_vault_id=target.config.vault_id,
                target_lock=lock.id,
                reference=reference,
                items=len(work),
            )
        )
    except BaseException:
        run.clean()
        locks.release(target.storage, lock.id)
        raise
    return CopyPlanned(
        run_id=run.id,
        recovery_point=rp.id,
        vault_bucket=s3_storage(source).bucket,
        work_list_key=work_list_key,
        items=len(work),
    )


def _document(source: Vault, target: Vault, run_id: str) -> tuple[StagedRun[CopyRun], CopyRun]:
    run = _run(source, run_id)
    document = run.read()
    if document.target_vault_id != target.config.vault_id:
        raise VaultError(f"copy run {run_id} copies into {document.target_url}, not into {target.url}")
    return run, document


def item(source: Vault, target: Vault, event: CopyItemEvent) -> CopyItemResult:
    """Copy one staged batch: its chunks the target lacks, flushed to the target's packs and index; stage its
    entries with target ids. Keeps the target's lock fresh (a long map outlives its staleness)."""
    run, document = _document(source, target, event.run_id)
    # The lock is the target's: the protocol's refresh, asked of a handle on the target vault.
    StagedRun(target, run.id, CopyRun).refresh_lock(document.target_lock)
    batch = run.get_staged(event.item.key, CopyBatch)
    counters = CopyCounters()
    with BlobWriter(target) as writer, copy_pool() as pool:
        entries = copy_batch(source, target, batch, writer, pool, counters)
        written = writer.flush()
    run.put_result(
        item_name(event.item.item),
        CopiedEntries(entries=entries, chunks_copied=written.new_blobs, bytes_transferred=written.stored_bytes),
    )
    return CopyItemResult(
        item=event.item.item,
        chunks_copied=written.new_blobs,
        chunks_present=written.duplicate_blobs,
        bytes_transferred=written.stored_bytes,
        bytes_read=counters.bytes_read,
    )


def commit(source: Vault, target: Vault, event: CopyCommitEvent) -> CopyCommitResult:
    """Prove every item left its result, write the target's entry stream from them in item order, then the
    manifest (the commit point); release the target's lock and clear the run."""
    planned = event.copying
    if planned.skipped or planned.run_id is None:
        return CopyCommitResult(recovery_point=planned.recovery_point, copied=False)
    run, document = _document(source, target, planned.run_id)
    names = [item_name(n) for n in range(document.items)]
    run.check_results(names, f"copy {run.id}")
    rp = load_recovery_point(source, document.recovery_point)
    totals = CopiedEntries()

    def entries() -> Iterator[ObjectEntry]:
        for result in run.iter_results(CopiedEntries, names):
            totals.chunks_copied += result.chunks_copied
            totals.bytes_transferred += result.bytes_transferred
            yield from result.entries

    target.forget_index()  # the items' index objects: the entry stream's blobs dedup against them
    with BlobWriter(target) as writer:
        stored = store_entries(target, writer, entries(), f"copy of {rp.id}")
        commit_copy(source, target, rp, writer, stored)
        totals.chunks_copied += writer.stats.new_blobs
        totals.bytes_transferred += writer.stats.stored_bytes
    run.clean()
    locks.release(target.storage, document.target_lock)
    return CopyCommitResult(
        recovery_point=rp.id,
        copied=True,
        entries=stored.count,
        chunks_copied=totals.chunks_copied,
        bytes_transferred=totals.bytes_transferred,
    )


def abort(source: Vault, target: Vault, run_id: str) -> int:
    """End a failed copy run: release the target's lock, delete what the run staged; return how many staging
    objects were deleted. Packs the items wrote stay in the target as garbage for its prune (no manifest names
    them)."""
    run = _run(source, run_id)
    try:
        document = run.read()
    except VaultError:
        document = None
    if document is not None:
        locks.release(target.storage, document.target_lock)
    return run.clean()
