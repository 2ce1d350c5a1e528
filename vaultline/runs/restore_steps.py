"""Restore workflow steps: Prepare, Worker, Finish (Abort is shared with the backup workflow)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pydantic import BaseModel

from vaultline.model import VaultlineModel
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.manifest import ObjectEntry, resolve_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs.backup_parts import cut_parts
from vaultline.runs.models import (
    BackupBatch,
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


class RestoreBatch(VaultlineModel):
    batch: int
    recovery_point: str
    entries: list[ObjectEntry]
    overwrite: Overwrite = "never"


def _run(vault: Vault, restore_id: str) -> StagedRun[BaseModel]:
    # A restore's run has no run document: each batch names its recovery point and overwrite rule.
    return StagedRun(vault, restore_id, BaseModel)


def prepare(vault: Vault, event: PrepareEvent, access_log_bucket: str | None = None) -> RestorePrepared:
    """Resolve the recovery point, check the target exists, stage batches of entries to restore as the selection
    streams by. A target in the vault's bucket or in ``access_log_bucket`` (the deployed stack's, from the
    function's settings) is refused."""
    request = RestoreRequest.model_validate(event.request)
    rp = resolve_recovery_point(vault, request.recovery_point)
    refuse_vault_buckets(request.target, vault, access_log_bucket)  # before anything is written
    S3Target(request.target)  # fails now, clearly, if the target bucket is missing
    run = StagedRun.new_restore(vault, BaseModel, rp.id)
    staged = StagedSelection()
    for number, batch in enumerate(
        restore_batches(select_entries(vault, rp, request.include), request.worker_concurrency)
    ):
        run.put_batch(
            number, RestoreBatch(batch=number, recovery_point=rp.id, entries=batch, overwrite=request.overwrite)
        )
        staged.add(batch)
    # The batches' keys follow from their numbers: the work list is written from the count alone.
    work = [WorkItem(batch=number, key=run.batch_key(number)) for number in range(staged.batches)]
    return RestorePrepared(
        restore_id=run.id,
        recovery_point=rp.id,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=run.write_work_list(work),
        batches=staged.batches,
        objects=staged.objects,
        bytes=staged.bytes,
        worker_concurrency=request.worker_concurrency,
    )


@dataclass
class StagedSelection:
    """What a restore's Prepare has staged so far: batches, objects and their bytes."""

    batches: int = 0
    objects: int = 0
    bytes: int = 0

    def add(self, batch: list[ObjectEntry]) -> None:
        self.batches += 1
        self.objects += len(batch)
        self.bytes += sum(entry.size for entry in batch)


def restore_batches(selection: Iterable[ObjectEntry], workers: int) -> Iterator[list[ObjectEntry]]:
    """The selection cut into batches as it streams by, as a backup's Prepare cuts the objects it reads (the same
    limits, and a small selection spread over ``workers``): memory holds one batch and the look-ahead of
    ``min(workers, SPREAD_WORKERS) * BATCH_MAX_OBJECTS`` entries that sizes a small restore's batches, never the
    selection."""
    # Every selected entry is one to read: none has a parent to carry, so only batches come out.
    for part in cut_parts(((entry, None) for entry in selection), retag=False, workers=workers):
        if isinstance(part, BackupBatch):
            yield part.read


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
    """Check every batch reported (by listing, before any is read), add up as the summaries stream by, clear
    staging."""
    prepared = event.prepared
    run = _run(vault, prepared.restore_id)
    names = [item_name(n) for n in range(prepared.batches)]
    run.check_results(names, f"restore {run.id}")
    totals = {"objects": 0, "bytes": 0, "skipped_existing": 0, "skipped_unchanged": 0}
    for result in run.iter_results(RestoreBatchSummary, names):  # a stream: one summary in memory at a time
        for field in totals:
            totals[field] += getattr(result, field)
    run.finish(event.map)
    return RestoreFinished(
        restore_id=run.id,
        recovery_point=prepared.recovery_point or prepared.restore_id.split("-", 1)[1].rsplit("-", 1)[0],
        target=event.target,
        **totals,
    )
