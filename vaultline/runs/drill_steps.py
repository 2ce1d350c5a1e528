"""The Maintenance state machine's Drill stage, on the staged-run protocol (`vaultline.runs.protocol`), shaped like
the Verify stage (`vaultline.runs.verify_steps`):

:func:`plan` (state ``Drill``) samples a recovery point, names a fresh scratch prefix and stages its entries in
batches (:func:`~vaultline.operations.drill.drill_batches`), the work list and the run document -> a Distributed Map
runs :func:`item` per batch (restore into scratch, read back, compare), looping an item on its cursor when its time
budget runs low -> :func:`summary` proves every item reported, adds them up, deletes the scratch copy and the run.

The CLI's ``vaultline drill`` runs the same pieces in one process (:func:`~vaultline.operations.drill.restore_drill`).
A crash leaves the scratch copy (the scratch bucket's lifecycle rule expires it the next day) and the run's staging
(the staging lifecycle rule); nothing a recovery point needs is written.

Ceilings: the plan holds the work list until it writes it (one small entry per 1,000 objects); see
vaultline/operations/drill.py for one object's and the clean-up's.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from vaultline.errors import UsageError
from vaultline.operations.drill import (
    DrillTally,
    clean_scratch,
    drill_batches,
    drill_entries,
    sample_recovery_point,
    scratch_url,
)
from vaultline.repository.vault import Vault
from vaultline.runs.maintenance_models import (
    DrillBatch,
    DrillItemEvent,
    DrillItemResult,
    DrillPlanned,
    DrillResult,
    DrillRun,
    DrillSummaryEvent,
    DrillWorkItem,
    MaintenanceInput,
)
from vaultline.runs.protocol import StagedRun, item_name, s3_storage

RESERVE_MS = 120_000  # a slice (up to 256 MiB restored, read back and hashed) must finish in what is left
STAGING_THREADS = 16


def _run(vault: Vault, run_id: str) -> StagedRun[DrillRun]:
    return StagedRun(vault, run_id, DrillRun)


def plan(vault: Vault, event: MaintenanceInput) -> DrillPlanned:
    """Sample the recovery point (or take ``drill.recovery_point``), stage its entries in batches, the work list
    and the run document."""
    options = event.drill
    if not options.scratch:
        raise UsageError("drill.scratch is required: the s3://bucket/prefix a restore drill may write under")
    started = time.time()
    rp = sample_recovery_point(vault, options.recovery_point)
    run = _run(vault, f"drill-{rp.id}-{os.urandom(4).hex()}")
    scratch = scratch_url(options.scratch, rp.id)
    work: list[DrillWorkItem] = []
    with ThreadPoolExecutor(max_workers=STAGING_THREADS, thread_name_prefix="vl-drill-plan") as pool:
        staging: deque[Future[str]] = deque()
        for number, entries in enumerate(drill_batches(vault, rp)):
            staging.append(pool.submit(run.put_batch, number, DrillBatch(entries=entries)))
            work.append(DrillWorkItem(item=number, key=run.batch_key(number)))
            if len(staging) >= 2 * STAGING_THREADS:
                staging.popleft().result()
        for future in staging:
            future.result()
    work_list_key = run.write_work_list(work)
    run.write(DrillRun(recovery_point=rp.id, scratch=scratch, items=len(work), started=started))
    return DrillPlanned(
        run_id=run.id,
        recovery_point=rp.id,
        scratch=scratch,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=work_list_key,
        items=len(work),
        worker_concurrency=options.worker_concurrency,
    )


def item(vault: Vault, event: DrillItemEvent, remaining_ms: Callable[[], int] | None = None) -> DrillItemResult:
    """Restore and compare one batch from the event's cursor on, until done (the tally becomes the item's result)
    or ``remaining_ms()`` drops below RESERVE_MS (``done: false`` and the ``next`` event)."""
    run = _run(vault, event.run_id)
    document = run.read()
    batch = run.get_staged(event.item.key, DrillBatch)

    def more() -> bool:
        return remaining_ms is None or remaining_ms() > RESERVE_MS

    cursor = drill_entries(vault, batch.entries, document.scratch, event.cursor, more)
    counts = {"verified": cursor.tally.verified, "mismatch_count": cursor.tally.mismatch_count}
    if cursor.done:
        run.put_result(item_name(event.item.item), cursor.tally)
        return DrillItemResult(item=event.item.item, done=True, **counts)
    following = DrillItemEvent(run_id=event.run_id, item=event.item, cursor=cursor)
    return DrillItemResult(item=event.item.item, done=False, next=following, **counts)


def summary(vault: Vault, event: DrillSummaryEvent) -> DrillResult:
    """Prove every item reported (IntegrityError otherwise), add them up, delete the scratch copy and the run."""
    run = _run(vault, event.drilling.run_id)
    document = run.read()
    names = [item_name(n) for n in range(document.items)]
    run.check_results(names, f"drill {run.id}")
    tally = DrillTally()
    for found in run.iter_results(DrillTally, names):
        tally.add(found)
    clean_scratch(document.scratch)
    run.finish(event.drill_map)
    return DrillResult(
        ok=tally.mismatch_count == 0,
        recovery_point=document.recovery_point,
        scratch=document.scratch,
        objects=tally.objects,
        bytes=tally.bytes,
        verified=tally.verified,
        mismatches=tally.mismatches,
        mismatch_count=tally.mismatch_count,
        cleaned_up=True,
        seconds=round(time.time() - document.started, 3),
    )
