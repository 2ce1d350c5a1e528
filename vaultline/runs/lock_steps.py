"""The lock extension steps of the Maintenance state machine, as plain functions the Lambda handlers call.

Each runs one step of :mod:`vaultline.operations.lock_extension` (whose module docstring gives the order, what is
extended and why, and the ceilings; ``vaultline lock extend`` runs the same steps in one process): :func:`plan`
stages the mark and extend work lists -> a Map of :func:`mark` over batches of recovery points (items loop on
their cursor) -> a Map of :func:`extend` over partitions of the referenced packs (looping) -> :func:`summary`
adds up and cleans the run's staging. A failed run leaves only its staging, which the staging lifecycle rule
expires; the next run extends whatever is still due.
"""

from __future__ import annotations

from collections.abc import Callable

from vaultline.operations import lock_extension as engine
from vaultline.repository.vault import Vault
from vaultline.runs.lock_models import LockExtendEvent, LockMarkEvent, LockPlanned, LockRunEvent
from vaultline.runs.maintenance_models import MaintenanceInput
from vaultline.runs.protocol import s3_storage, stage_work_list

Remaining = Callable[[], int]


def plan(vault: Vault, event: MaintenanceInput) -> LockPlanned:
    """Fix the run's dates and stage both maps' work lists (empty when the vault locks nothing)."""
    run, marks, partitions = engine.plan(vault, event.lock)
    return LockPlanned(
        run_id=run.run_id,
        enabled=run.enabled,
        vault_bucket=s3_storage(vault).bucket,
        mark_work_list_key=stage_work_list(vault, run.run_id, "mark", marks),
        mark_items=len(marks),
        extend_work_list_key=stage_work_list(vault, run.run_id, "extend", partitions),
        partitions=len(partitions),
    )


def mark(vault: Vault, event: LockMarkEvent, remaining_ms: Remaining | None = None) -> engine.LockMarkResult:
    return engine.mark(vault, event.run_id, event.item, remaining_ms)


def extend(vault: Vault, event: LockExtendEvent, remaining_ms: Remaining | None = None) -> engine.LockExtendResult:
    return engine.extend(vault, event.run_id, event.item, remaining_ms)


def summary(vault: Vault, event: LockRunEvent) -> engine.LockExtensionReport:
    """Prove every item finished, add up, clean the staging (``$.results.lock``)."""
    if not event.lock_run.enabled:
        engine.abort(vault, event.lock_run.run_id)  # only the empty work lists
        return engine.LockExtensionReport(enabled=False)
    return engine.summary(vault, event.lock_run.run_id)
