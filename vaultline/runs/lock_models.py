"""The models of the Maintenance state machine's lock extension steps (docs/state-machines.md, "Maintenance"): what
each step reads and returns. The state machine (infra/lock_workflow.py) derives its paths from the same models."""

from __future__ import annotations

from pydantic import Field

from vaultline.operations.lock_extension import (
    LockExtendItem,
    LockExtendResult,
    LockExtensionReport,
    LockMarkItem,
    LockMarkResult,
)
from vaultline.runs.models import StepModel


class LockPlanned(StepModel):
    """LockPlan's result, kept at ``$.lock_run``: the run and the work lists of its two maps (empty, and
    ``enabled`` false, when the vault locks nothing)."""

    run_id: str
    enabled: bool
    vault_bucket: str
    mark_work_list_key: str
    mark_items: int
    extend_work_list_key: str
    partitions: int
    # The maps' MaxConcurrency (a Distributed Map reads it from the state).
    concurrency: int = Field(default=10, ge=1, le=1000)


class LockMarkEvent(StepModel):
    run_id: str
    item: LockMarkItem


class LockExtendEvent(StepModel):
    run_id: str
    item: LockExtendItem


class LockRunEvent(StepModel):
    """What LockSummary reads: the state, whose ``lock_run`` is LockPlan's result."""

    lock_run: LockPlanned


# The map items' results and the summary are the engine's own models.
__all__ = [
    "LockExtendEvent",
    "LockExtendResult",
    "LockExtensionReport",
    "LockMarkEvent",
    "LockMarkResult",
    "LockPlanned",
    "LockRunEvent",
]
