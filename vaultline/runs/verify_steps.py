"""The Maintenance state machine's Verify stage, on the staged-run protocol (`vaultline.runs.protocol`):

:func:`plan` (state ``Verify``) walks the index and the listings with :class:`~vaultline.operations.check.CheckPlan`,
stages each batch of packs to read and of recovery points to check, then the work list and the run document ->
a Distributed Map runs :func:`item` per batch; an item whose time budget runs low returns ``done: false`` and a
``next`` event (same item, a cursor with what it found so far) that the state machine loops back into it ->
:func:`summary` proves every item left its result, adds them up and clears the run.

The CLI's ``vaultline check`` runs the same pieces in one process (:func:`~vaultline.operations.check.check_vault`).
Nothing here writes outside the run's staging prefix and its lock: a crash anywhere leaves only staging, which the
next run does not read (each run has its own id) and the staging lifecycle rule expires.

The plan takes the vault's shared lock, as a backup's Prepare does, so that a prune (exclusive) cannot delete packs
under a running verify, which would report them missing: a failed plan releases it itself, the items refresh it, the
summary releases it, and the state machine's ``VerifyAbort`` (the shared Abort function) releases it when an item
or the summary fails; a run that dies without any of them leaves a lock that goes stale in 30 minutes.

Example::

    planned = plan(vault, MaintenanceInput(verify={"subset": "1/7"}))
    for work in json.loads(vault.storage.get(...work list...)):
        ...  # item(vault, VerifyItemEvent(run_id=planned.run_id, item=work)) until done
    result = summary(vault, VerifySummaryEvent(verifying=planned))
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from vaultline.operations import prune_records as rec
from vaultline.operations.check import (
    CheckPlan,
    Findings,
    PackBatch,
    PointBatch,
    check_points,
    verify_packs,
)
from vaultline.repository import locks
from vaultline.repository.vault import Vault
from vaultline.runs.maintenance_models import (
    MAX_LISTED,
    MaintenanceInput,
    VerifyItemEvent,
    VerifyItemResult,
    VerifyPlanned,
    VerifyResult,
    VerifyRun,
    VerifySummaryEvent,
    VerifyWorkItem,
)
from vaultline.runs.protocol import StagedRun, item_name, s3_storage

# An item stops starting work when less than this is left of its Lambda time: the packs in flight (four of
# 16 MiB) and writing its result take seconds; the margin covers a slow S3 read.
RESERVE_MS = 60_000
STAGING_THREADS = 16  # batches staged at once by the plan: one PUT each, latency-bound


def new_verify_id(now: datetime | None = None) -> str:
    """A verify run's id: unique, sortable by start time, and it says what it is."""
    return f"verify-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"


def _run(vault: Vault, run_id: str) -> StagedRun[VerifyRun]:
    return StagedRun(vault, run_id, VerifyRun)


def plan(vault: Vault, event: MaintenanceInput) -> VerifyPlanned:
    """Plan this run's verify: stage one batch per work item (packs of the chosen subset, then recovery points),
    the work list and the run document (written last: items of recovery points read the missing packs from it).

    Ceilings: the packs listing (40 bytes a pack) beside one index object at a time (``CheckPlan``), and the work
    list held until it is written (one small entry per 64 packs or 32 recovery points).
    """
    subset = event.verify.pack_subset()
    run = _run(vault, new_verify_id())
    lock = locks.acquire(vault.storage, "verify", exclusive=False, owner=run.id)
    with run.undone_on_failure(lock):
        check = CheckPlan(vault, subset=subset, listed=MAX_LISTED)
        work: list[VerifyWorkItem] = []
        with ThreadPoolExecutor(max_workers=STAGING_THREADS, thread_name_prefix="vl-verify-plan") as pool:
            staging: deque[Future[str]] = deque()
            for number, batch in enumerate(check.batches()):
                staging.append(pool.submit(run.put_batch, number, batch))
                work.append(VerifyWorkItem(item=number, kind=batch.kind, key=run.batch_key(number)))
                if len(staging) >= 2 * STAGING_THREADS:
                    staging.popleft().result()
            for future in staging:
                future.result()
        work_list_key = run.write_work_list(work)
        run.write(
            VerifyRun(
                subset=str(subset),
                items=len(work),
                packs=check.packs,
                blobs=check.blobs,
                findings=check.findings,
                missing_packs=sorted(check.missing),
                lock_id=lock.id,
            )
        )
    return VerifyPlanned(
        run_id=run.id,
        vault_bucket=s3_storage(vault).bucket,
        work_list_key=work_list_key,
        items=len(work),
        pack_items=sum(1 for w in work if w.kind == "packs"),
        worker_concurrency=event.verify.worker_concurrency,
    )


def item(vault: Vault, event: VerifyItemEvent, remaining_ms: Callable[[], int] | None = None) -> VerifyItemResult:
    """Verify one batch from the event's cursor on until it is done (its findings become the item's result) or
    ``remaining_ms()`` drops below RESERVE_MS (return ``done: false`` and the ``next`` event). Every invocation
    makes progress (at least one pack, or some entries); running one again is harmless: it writes only its result."""
    run = _run(vault, event.run_id)
    work = event.item
    document = run.read()
    # A lock that went stale means a prune may have run since the plan listed the packs: stop rather than report.
    run.refresh_lock(document.lock_id)

    def more() -> bool:
        return remaining_ms is None or remaining_ms() > RESERVE_MS

    if work.kind == "packs":
        cursor = verify_packs(vault, run.get_staged(work.key, PackBatch), event.cursor, more)
    else:
        # What the item spills (marked ids, damage) lives under its own part of the run's staging, which the
        # summary or the abort clears with the rest of the run.
        staging = rec.Staging(vault, run.id).within(f"points-{item_name(work.item)}")
        batch = run.get_staged(work.key, PointBatch)
        cursor = check_points(vault, batch, set(document.missing_packs), staging, event.cursor, more)
    found = cursor.findings
    counts = {"packs_read": found.packs_read, "objects": found.objects, "error_count": found.error_count}
    if cursor.done:
        run.put_result(item_name(work.item), found)
        return VerifyItemResult(item=work.item, done=True, **counts)
    following = VerifyItemEvent(run_id=event.run_id, item=work, cursor=cursor)
    return VerifyItemResult(item=work.item, done=False, next=following, **counts)


def summary(vault: Vault, event: VerifySummaryEvent) -> VerifyResult:
    """Prove every item left its result (IntegrityError naming the missing ones otherwise: a verify that lost
    an item must not report a sound vault), add them to the plan's findings, clear the run. Errors found are
    the result (``ok`` false), not a failed step: they reach the event, the metrics and the integrity alarm."""
    planned = event.verifying
    run = _run(vault, planned.run_id)
    document = run.read()
    names = [item_name(n) for n in range(document.items)]
    run.check_results(names, f"verify {run.id}")
    total = Findings()
    total.add(document.findings)
    for found in run.iter_results(Findings, names):
        total.add(found)
    run.finish(event.verify_map, document.lock_id)
    return VerifyResult(
        ok=total.ok,
        subset=document.subset,
        recovery_points=total.recovery_points,
        objects=total.objects,
        items=document.items,
        packs_read=total.packs_read,
        bytes_read=total.bytes_read,
        errors=total.errors[:MAX_LISTED],
        error_count=total.error_count,
        warnings=total.warnings[:MAX_LISTED],
        warning_count=total.warning_count,
    )
