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

The Copy state machine's steps take its input (:class:`CopyRequest`): :func:`open_copy_target` opens the target
through the named role (S3 and the KMS unwrap of its data key both act as that role), :func:`prepare_request`
resolves which recovery point to copy, and :func:`commit` applies the target's own keep rules (``keep``) to the
copied source's recovery points there, forget only: pruning the data is the target's own maintenance.

Ceilings: :func:`prepare_request` streams the source's recovery point headers once (one held at a time) to find a
source's newest; Prepare streams the entry stream once (as a backup's Prepare streams the parent's) and holds one batch
and the work list (one small entry per batch: a batch is up to ``BATCH_CHUNKS`` chunks to read, about 1 GiB of
data at the default chunk sizes); an item holds one batch and ``RANGES_IN_FLIGHT`` ranges of source packs;
commit holds one result at a time, and its forget the target's headers of the copied source (as the backups'
Retention step does). The CLI (`vaultline copy`) resolves the same batches in one process without
staging them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from vaultline.aws import client, role_client
from vaultline.errors import RecoveryPointNotFound, UsageError, VaultError
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
from vaultline.repository.manifest import ObjectEntry, iter_recovery_points, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs.copy_models import (
    CopiedEntries,
    CopyAborted,
    CopyAbortEvent,
    CopyCommitEvent,
    CopyCommitResult,
    CopyItemEvent,
    CopyItemResult,
    CopyPlanned,
    CopyPrepareEvent,
    CopyRequest,
    CopyRun,
    CopyTarget,
    CopyWorkItem,
)
from vaultline.runs.protocol import StagedRun, item_name, s3_storage
from vaultline.storage import S3Storage


def open_copy_target(target: CopyTarget) -> Vault:
    """The target vault of a Copy machine: read, written and unlocked as ``target.role_arn`` when one is named
    (its S3 and KMS clients both act as that role, refreshing the session as it nears expiry), otherwise with the
    functions' own credentials. VaultNotFound when no vault is there (``vaultline init`` it first)."""
    if not target.vault.startswith("s3://"):
        raise UsageError(f"copy target {target.vault!r} is not an s3:// vault URL")
    bucket, _, prefix = target.vault[len("s3://") :].partition("/")
    role = target.role_arn
    if role is None:
        return Vault.open(S3Storage(bucket, prefix, client("s3", target.region)))
    return Vault.open(
        S3Storage(bucket, prefix, role_client("s3", role, target.region)),
        kms=lambda region: role_client("kms", role, region or target.region),
    )


def newest_of_source(source: Vault, name: str) -> str:
    """The id of ``name``'s newest recovery point in ``source`` (RecoveryPointNotFound when it has none)."""
    newest: tuple[str, str] | None = None
    for rp in iter_recovery_points(source):
        if rp.source == name and (newest is None or (rp.time.isoformat(), rp.id) > newest):
            newest = (rp.time.isoformat(), rp.id)
    if newest is None:
        raise RecoveryPointNotFound(f"{source.url} holds no recovery points of source {name}")
    return newest[1]


def prepare_request(source: Vault, target: Vault, request: CopyRequest) -> CopyPlanned:
    """The Copy machine's Prepare: the request's recovery point, or its source's newest, staged by :func:`prepare`."""
    if (request.recovery_point is None) == (request.source is None):
        raise UsageError("a copy request names exactly one of recovery_point and source")
    rp = request.recovery_point or newest_of_source(source, request.source or "")
    return prepare(source, target, CopyPrepareEvent(recovery_point=rp))


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
        skipped = CopyCommitResult(recovery_point=planned.recovery_point, copied=False, target=target.url)
        return _apply_keep(source, target, event, skipped)
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
    committed = CopyCommitResult(
        recovery_point=rp.id,
        copied=True,
        target=target.url,
        entries=stored.count,
        chunks_copied=totals.chunks_copied,
        bytes_transferred=totals.bytes_transferred,
    )
    return _apply_keep(source, target, event, committed)


def _apply_keep(source: Vault, target: Vault, event: CopyCommitEvent, result: CopyCommitResult) -> CopyCommitResult:
    """Forget the target's recovery points of the copied one's source that ``event.keep`` does not keep (after the
    manifest: a forget that fails leaves the copy complete, and the next copy applies the rules again)."""
    # Only the commit applies keep rules: the other copy steps (each a Lambda function) import neither the forget
    # (and the prune under it) nor every maintenance step's model for them.
    from vaultline.operations.forget_run import forget_staged
    from vaultline.runs.maintenance_models import MAX_LISTED
    from vaultline.runs.maintenance_steps import retention_policy

    policy = retention_policy(event.keep)
    if policy is None:
        return result
    name = load_recovery_point(source, result.recovery_point).source
    # Staged in a temporary directory: the commit writes no staging in the target.
    report = forget_staged(target, [(name, policy)], scratch=True)
    forgotten = report.removed[:MAX_LISTED]
    return result.model_copy(update={"forgotten": forgotten, "forgotten_count": report.removed_count})


def abort_event(source: Vault, target: Vault, event: CopyAbortEvent) -> CopyAborted:
    """The Copy machine's Abort: end the run Prepare staged, if it staged one (a failed Prepare cleans up itself)."""
    run_id = event.copying.run_id if event.copying else None
    if run_id is None:
        return CopyAborted()
    return CopyAborted(run_id=run_id, cleaned=abort(source, target, run_id))


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
