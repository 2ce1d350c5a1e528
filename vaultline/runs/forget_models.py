"""The models of the Maintenance state machine's forget steps (docs/state-machines.md, "Forget"): what each step
reads and returns. The state machine (infra/forget_workflow.py) derives its paths from the same models."""

from __future__ import annotations

from pydantic import Field

from vaultline.operations.forget_run import ForgetDecideItem, ForgetDecideResult, ForgetReadItem, ForgetReadResult
from vaultline.runs.models import StepModel


class ForgetPlanned(StepModel):
    """ForgetPlan's result, kept at ``$.forget_run``: the run and the work lists of its two maps (both empty when
    no plan source has keep rules)."""

    run_id: str
    vault_bucket: str
    read_work_list_key: str
    read_items: int
    decide_work_list_key: str
    partitions: int
    # The maps' MaxConcurrency (a Distributed Map reads it from the state).
    concurrency: int = Field(default=10, ge=1, le=1000)


class ForgetReadEvent(StepModel):
    run_id: str
    item: ForgetReadItem


class ForgetDecideEvent(StepModel):
    run_id: str
    item: ForgetDecideItem


class ForgetRunEvent(StepModel):
    """What ForgetSummary reads: the state, whose ``forget_run`` is ForgetPlan's result."""

    forget_run: ForgetPlanned


# The map items' results are the engine's own models.
__all__ = [
    "ForgetDecideEvent",
    "ForgetDecideResult",
    "ForgetPlanned",
    "ForgetReadEvent",
    "ForgetReadResult",
    "ForgetRunEvent",
]
