"""Restore workflow steps: Prepare, Worker, Finish (Abort is shared with the backup workflow)."""

from __future__ import annotations

import os

from pydantic import BaseModel

from vaultline.errors import IntegrityError
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.layout import run_prefix
from vaultline.repository.manifest import ObjectEntry, resolve_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs.backup_steps import batches
from vaultline.runs.models import (
    PrepareEvent,
    RestoreBatchSummary,
    RestoreFinished,
    RestoreFinishEvent,
    RestorePrepared,
    RestoreRequest,
    RestoreWorkerEvent,
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
)
from vaultline.targets import Overwrite, S3Target
from vaultline.targets.guard import refuse_vault_buckets


class RestoreBatch(BaseModel):
    batch: int
    recovery_point: str
    entries: list[ObjectEntry]
    overwrite: Overwrite = "never"


def prepare(vault: Vault, event: PrepareEvent) -> RestorePrepared:
    """Resolve the recovery point, check the target exists, stage batches of entries to restore."""
    request = RestoreRequest.model_validate(event.request)
    rp = resolve_recovery_point(vault, request.recovery_point)
    refuse_vault_buckets(request.target, vault)  # before anything is written (vaultline/targets/guard.py)
    S3Target(request.target)  # fails now, clearly, if the target bucket is missing
    restore_id = f"restore-{rp.id}-{os.urandom(4).hex()}"
    prefix = run_prefix(restore_id)
    entries = select_entries(vault, rp, request.include)
    work = []
    for number, batch in enumerate(batches(entries, request.worker_concurrency)):
        key = f"{prefix}batches/{number:06d}.json"
        staged = RestoreBatch(batch=number, recovery_point=rp.id, entries=batch, overwrite=request.overwrite)
        put_sealed(vault, key, staged)
        work.append(WorkItem(batch=number, key=key).model_dump())
    work_list_key = f"{prefix}work-list.json"
    put_work_list(vault, work_list_key, work)
    return RestorePrepared(
        restore_id=restore_id,
        recovery_point=rp.id,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=full_key(vault, work_list_key),
        batches=len(work),
        objects=len(entries),
        bytes=sum(e.size for e in entries),
        worker_concurrency=request.worker_concurrency,
    )


def work(vault: Vault, event: RestoreWorkerEvent) -> RestoreBatchSummary:
    """Restore one batch; rewriting an object that a failed attempt already wrote is harmless."""
    batch = get_sealed(vault, event.item.key, RestoreBatch)
    # A retried worker finds the objects its failed attempt wrote: with overwrite never they count as skipped.
    outcome = restore_entries(vault, batch.entries, S3Target(event.target), overwrite=batch.overwrite)
    stats = outcome.stats
    summary = RestoreBatchSummary(
        batch=event.item.batch,
        objects=stats.objects,
        bytes=stats.bytes,
        skipped_existing=stats.skipped_existing,
        skipped_unchanged=stats.skipped_unchanged,
    )
    put_sealed(vault, f"{run_prefix(event.restore_id)}results/{event.item.batch:06d}.json", summary)
    return summary


def finish(vault: Vault, event: RestoreFinishEvent) -> RestoreFinished:
    """Check every batch reported, add up, clear staging."""
    prepared = event.prepared
    prefix = run_prefix(prepared.restore_id)
    results = [get_sealed(vault, o.key, RestoreBatchSummary) for o in vault.storage.list(f"{prefix}results/")]
    missing = sorted(set(range(prepared.batches)) - {r.batch for r in results})
    if missing:
        raise IntegrityError(f"restore {prepared.restore_id}: batches {missing[:10]} did not report")
    clean_run(vault, prepared.restore_id)
    clean_map_results(vault, event.map)
    return RestoreFinished(
        restore_id=prepared.restore_id,
        recovery_point=prepared.recovery_point or prepared.restore_id.split("-", 1)[1].rsplit("-", 1)[0],
        target=event.target,
        objects=sum(r.objects for r in results),
        bytes=sum(r.bytes for r in results),
        skipped_existing=sum(r.skipped_existing for r in results),
        skipped_unchanged=sum(r.skipped_unchanged for r in results),
    )
