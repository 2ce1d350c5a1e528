"""Restore workflow steps: Prepare, Worker, Finish (Abort is shared with the backup workflow)."""

from __future__ import annotations

from pydantic import BaseModel

from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.manifest import ObjectEntry, resolve_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs.backup_parts import batches
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
from vaultline.runs.protocol import StagedRun, item_name, s3_storage
from vaultline.targets import Overwrite, S3Target
from vaultline.targets.guard import refuse_vault_buckets


class RestoreBatch(BaseModel):
    batch: int
    recovery_point: str
    entries: list[ObjectEntry]
    overwrite: Overwrite = "never"


def _run(vault: Vault, restore_id: str) -> StagedRun[BaseModel]:
    # A restore's run has no run document: each batch names its recovery point and overwrite rule.
    return StagedRun(vault, restore_id, BaseModel)


def prepare(vault: Vault, event: PrepareEvent, access_log_bucket: str | None = None) -> RestorePrepared:
    """Resolve the recovery point, check the target exists, stage batches of entries to restore. A target in the
    vault's bucket or in ``access_log_bucket`` (the deployed stack's, from the function's settings) is refused."""
    request = RestoreRequest.model_validate(event.request)
    rp = resolve_recovery_point(vault, request.recovery_point)
    refuse_vault_buckets(request.target, vault, access_log_bucket)  # before anything is written
    S3Target(request.target)  # fails now, clearly, if the target bucket is missing
    run = StagedRun.new_restore(vault, BaseModel, rp.id)
    # Still held whole here, to size the batches (the restore Prepare's ceiling; the CLI's restore streams).
    entries = list(select_entries(vault, rp, request.include))
    staged = [
        RestoreBatch(batch=number, recovery_point=rp.id, entries=batch, overwrite=request.overwrite)
        for number, batch in enumerate(batches(entries, request.worker_concurrency))
    ]
    work = [WorkItem(batch=batch.batch, key=run.put_batch(batch.batch, batch)) for batch in staged]
    return RestorePrepared(
        restore_id=run.id,
        recovery_point=rp.id,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=run.write_work_list(work),
        batches=len(work),
        objects=len(entries),
        bytes=sum(e.size for e in entries),
        worker_concurrency=request.worker_concurrency,
    )


def work(vault: Vault, event: RestoreWorkerEvent) -> RestoreBatchSummary:
    """Restore one batch; rewriting an object that a failed attempt already wrote is harmless."""
    run = _run(vault, event.restore_id)
    batch = run.get_staged(event.item.key, RestoreBatch)
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
    run.put_result(item_name(event.item.batch), summary)
    return summary


def finish(vault: Vault, event: RestoreFinishEvent) -> RestoreFinished:
    """Check every batch reported, add up, clear staging."""
    prepared = event.prepared
    run = _run(vault, prepared.restore_id)
    names = [item_name(n) for n in range(prepared.batches)]
    results = run.results(RestoreBatchSummary, names, f"restore {run.id}")
    run.finish(event.map)
    return RestoreFinished(
        restore_id=run.id,
        recovery_point=prepared.recovery_point or prepared.restore_id.split("-", 1)[1].rsplit("-", 1)[0],
        target=event.target,
        objects=sum(r.objects for r in results),
        bytes=sum(r.bytes for r in results),
        skipped_existing=sum(r.skipped_existing for r in results),
        skipped_unchanged=sum(r.skipped_unchanged for r in results),
    )
