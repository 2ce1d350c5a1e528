"""The forget steps of the Maintenance state machine, as plain functions the Lambda handlers call.

Each runs one step of :mod:`vaultline.operations.forget_run` (whose module docstring gives the order, the crash
safety and the ceilings): :func:`plan` stages the read and decide work lists -> a Map of :func:`read` over batches
of recovery points (items loop on their cursor) -> a Map of :func:`decide` over partitions of the sources
(looping) -> :func:`summary` adds up and cleans the run's staging (``$.results.forget``).
"""

from __future__ import annotations

from collections.abc import Callable

from vaultline.operations import forget_run as engine
from vaultline.operations.retention import RetentionPolicy
from vaultline.repository.vault import Vault
from vaultline.runs.forget_models import ForgetDecideEvent, ForgetPlanned, ForgetReadEvent, ForgetRunEvent
from vaultline.runs.maintenance_models import ForgetResult, MaintenanceInput
from vaultline.runs.maintenance_steps import retention_policy
from vaultline.runs.protocol import s3_storage, stage_work_list

Remaining = Callable[[], int]


def policies(event: MaintenanceInput) -> list[tuple[str, RetentionPolicy | None]]:
    """Each plan source with its plan's keep rules as a policy (None: the plan keeps everything), in plan order."""
    return [(item.source, retention_policy(item.rules)) for item in event.policies]


def plan(vault: Vault, event: MaintenanceInput) -> ForgetPlanned:
    """Fix the run's moment and rounds, stage both maps' work lists (empty when no source has keep rules)."""
    run, reads, decides = engine.plan(vault, policies(event))
    return ForgetPlanned(
        run_id=run.run_id,
        vault_bucket=s3_storage(vault).bucket,
        read_work_list_key=stage_work_list(vault, run.run_id, "read", reads),
        read_items=len(reads),
        decide_work_list_key=stage_work_list(vault, run.run_id, "decide", decides),
        partitions=len(decides),
    )


def read(vault: Vault, event: ForgetReadEvent, remaining_ms: Remaining | None = None) -> engine.ForgetReadResult:
    return engine.read(vault, event.run_id, event.item, remaining_ms)


def decide(vault: Vault, event: ForgetDecideEvent, remaining_ms: Remaining | None = None) -> engine.ForgetDecideResult:
    return engine.decide(vault, event.run_id, event.item, remaining_ms)


def summary(vault: Vault, event: ForgetRunEvent) -> ForgetResult:
    """Prove every item finished, add up, clean the staging (``$.results.forget``)."""
    return engine.summary(vault, event.forget_run.run_id)
