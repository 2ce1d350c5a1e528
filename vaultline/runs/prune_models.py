"""The models of the Maintenance state machine's prune steps (docs/state-machines.md, "Maintenance"): what each
step reads and returns. The state machine (infra/prune_workflow.py) derives its paths from the same models."""

from __future__ import annotations

from pydantic import Field

from vaultline.operations.prune import FinishCursor, MarkItem, MarkResult, SweepItem, SweepResult
from vaultline.runs.maintenance_models import PruneResult
from vaultline.runs.models import StepModel


class PruneStarted(StepModel):
    """Start's result, kept at ``$.prune_run`` (``$.prune`` is the input's flag): the run, and the work lists of
    the mark and plan maps."""

    run_id: str
    vault_bucket: str
    mark_work_list_key: str
    mark_items: int
    plan_work_list_key: str
    partitions: int
    # The maps' MaxConcurrency (a Distributed Map reads it from the state).
    concurrency: int = Field(default=10, ge=1, le=1000)


class PruneRunEvent(StepModel):
    """What Decide, Finish and Abort read: the state, whose ``prune_run`` is Start's result."""

    prune_run: PruneStarted


class PruneMarkEvent(StepModel):
    run_id: str
    item: MarkItem


class PlanItem(StepModel):
    partition: int = Field(ge=0, le=255)


class PrunePlanEvent(StepModel):
    run_id: str
    item: PlanItem


class PruneDecided(StepModel):
    """Decide's result, kept at ``$.prune_decided``: the sweep's work list."""

    sweep_work_list_key: str
    sweep_items: int


class PruneSweepEvent(StepModel):
    run_id: str
    item: SweepItem


class PruneFinished(StepModel):
    """Finish's result, kept at ``$.prune_finish``: done with the prune's result, or the cursor to go on from."""

    done: bool
    next: FinishCursor | None = None
    result: PruneResult | None = None


class PruneFinishEvent(PruneRunEvent):
    """Finish's event: the run, and (looping) where the previous invocation stopped (``$.prune_finish.next``)."""

    prune_finish: PruneFinished | None = None


class PruneAborted(StepModel):
    run_id: str | None
    staging_objects_deleted: int


# The map items' results are the engine's own models (their ``done`` and ``next`` drive the item loops).
__all__ = [
    "MarkResult",
    "PlanItem",
    "PruneAborted",
    "PruneDecided",
    "PruneFinishEvent",
    "PruneFinished",
    "PruneMarkEvent",
    "PrunePlanEvent",
    "PruneRunEvent",
    "PruneStarted",
    "PruneSweepEvent",
    "SweepResult",
]
