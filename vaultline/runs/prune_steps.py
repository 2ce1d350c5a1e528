"""The prune steps of the Maintenance state machine, as plain functions the Lambda handlers call.

Each runs one step of :mod:`vaultline.operations.prune` (whose module docstring gives the order and the crash
safety; the CLI runs the same steps in one process): :func:`start` takes the exclusive lock and stages the mark and
plan work lists -> a Map of :func:`mark` (items loop on their cursor) -> a Map of :func:`plan` over partitions ->
:func:`decide` stages the sweep's work list -> a Map of :func:`sweep` (looping) -> :func:`finish` (looping on its
cursor) releases the lock. Any failure -> :func:`abort` releases the lock and cleans the run's staging.
"""

from __future__ import annotations

from collections.abc import Callable

from vaultline.operations import prune as engine
from vaultline.repository.vault import Vault
from vaultline.runs.maintenance_models import MAX_LISTED, MaintenanceInput, PruneResult
from vaultline.runs.models import filled_from
from vaultline.runs.protocol import s3_storage, stage_work_list
from vaultline.runs.prune_models import (
    PlanItem,
    PruneAborted,
    PruneDecided,
    PruneFinished,
    PruneFinishEvent,
    PruneMarkEvent,
    PrunePlanEvent,
    PruneRunEvent,
    PruneStarted,
    PruneSweepEvent,
)

Remaining = Callable[[], int]


def start(vault: Vault, event: MaintenanceInput, owner: str | None = None) -> PruneStarted:
    """Take the exclusive lock (VaultLocked while a backup runs: the state machine retries), stage the work."""
    run, items = engine.start(vault, engine.PruneOptions(repack_threshold=event.repack_threshold), owner=owner)
    mark_key = stage_work_list(vault, run.run_id, "mark", items)
    partitions = [PlanItem(partition=p) for p in range(1 << run.bits)]
    plan_key = stage_work_list(vault, run.run_id, "plan", partitions)
    return PruneStarted(
        run_id=run.run_id,
        vault_bucket=s3_storage(vault).bucket,
        mark_work_list_key=mark_key,
        mark_items=len(items),
        plan_work_list_key=plan_key,
        partitions=len(partitions),
    )


def mark(vault: Vault, event: PruneMarkEvent, remaining_ms: Remaining | None = None) -> engine.MarkResult:
    return engine.mark(vault, event.run_id, event.item, remaining_ms)


def plan(vault: Vault, event: PrunePlanEvent) -> engine.PlanResult:
    return engine.plan(vault, event.run_id, event.item.partition)


def decide(vault: Vault, event: PruneRunEvent) -> PruneDecided:
    _, items = engine.decide(vault, event.prune_run.run_id)
    key = stage_work_list(vault, event.prune_run.run_id, "sweep", items)
    return PruneDecided(sweep_work_list_key=key, sweep_items=len(items))


def sweep(vault: Vault, event: PruneSweepEvent, remaining_ms: Remaining | None = None) -> engine.SweepResult:
    result = engine.sweep(vault, event.run_id, event.item, remaining_ms)
    # The Map keeps only what the loop needs; the lists stay in staging for Finish.
    return result.model_copy(update={"new_packs": [], "deletes": [], "held": result.held[:MAX_LISTED]})


def finish(vault: Vault, event: PruneFinishEvent, remaining_ms: Remaining | None = None) -> PruneFinished:
    cursor = event.prune_finish.next if event.prune_finish else None
    done = engine.finish(vault, event.prune_run.run_id, cursor, remaining_ms)
    if done.report is None:
        return PruneFinished(done=False, next=done.next)
    return PruneFinished(done=True, result=prune_result(done.report))


def prune_result(report: engine.PruneReport) -> PruneResult:
    """The step result of a prune's report (lists capped, counts complete)."""
    deleted = report.packs_deleted + report.unindexed_packs_deleted
    return filled_from(PruneResult, report, packs_deleted=deleted, held=report.held[:MAX_LISTED])


def abort(vault: Vault, event: PruneRunEvent) -> PruneAborted:
    """Release the run's lock and delete its staging (the maps' result files expire with the staging rule)."""
    return PruneAborted(
        run_id=event.prune_run.run_id, staging_objects_deleted=engine.abort(vault, event.prune_run.run_id)
    )
