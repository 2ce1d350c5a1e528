"""Prune inside the Maintenance state machine: a chain of the steps of vaultline/runs/prune_steps.py, described in
docs/state-machines.md ("Maintenance", "Prune"); change both together.

::

    PruneStart -> PruneMark (Distributed Map over batches; an item loops on its cursor) -> PrunePlan (Distributed
    Map over partitions) -> PruneDecide -> PruneSweep (Distributed Map over pack batches, looping) -> PruneFinish
    (loops on its cursor) -> PruneResult -> <next>
       any error after Start -> PruneAbort (release the lock, clean the staging) -> <failed>

Start takes the vault's exclusive lock and raises ``VaultLocked`` while a backup holds the shared one (retried by
name for about half an hour); every later step proves it still holds that lock.
"""

from __future__ import annotations

from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import registry as r
from infra.functions import Functions
from infra.looping_map import RunMaps
from infra.paths import path
from infra.tasks import catch_all, invoke, locked_retry
from infra.vault import Vault
from vaultline.runs.prune_models import (
    MarkResult,
    PruneDecided,
    PruneFinished,
    PruneMarkEvent,
    PruneStarted,
    PruneSweepEvent,
    SweepResult,
)

STARTED = "$.prune_run"
DECIDED = "$.prune_decided"
FINISHED = "$.prune_finish"

PRUNE_FUNCTIONS = (
    r.MAINTENANCE_PRUNE,
    r.MAINTENANCE_PRUNE_MARK,
    r.MAINTENANCE_PRUNE_PLAN,
    r.MAINTENANCE_PRUNE_DECIDE,
    r.MAINTENANCE_PRUNE_SWEEP,
    r.MAINTENANCE_PRUNE_FINISH,
    r.MAINTENANCE_PRUNE_ABORT,
)


class PruneChain(Construct):
    """The prune states of the Maintenance machine: ``first`` starts them, they go on to ``then`` when done and
    to ``failed`` (after PruneAbort, once a run exists) on any error, with the error at ``$.error``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Functions,
        vault: Vault,
        result_path: str,
        then: sfn.IChainable,
        failed: sfn.IChainable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.functions = [functions[spec] for spec in PRUNE_FUNCTIONS]
        start = invoke(self, "Start", functions[r.MAINTENANCE_PRUNE], state_name="PruneStart", result_path=STARTED)
        # A running backup holds the vault's shared lock; prune needs it exclusively. Wait for the backup.
        locked_retry(start)
        maps = RunMaps(self, prefix="Prune", vault=vault, run=PruneStarted, at=STARTED)
        mark = maps.map(
            "Mark",
            key=path(PruneStarted, "mark_work_list_key", at=STARTED),
            processor=maps.looping("Mark", functions[r.MAINTENANCE_PRUNE_MARK], PruneMarkEvent, MarkResult),
        )
        plan_item = invoke(
            self, "PlanItem", functions[r.MAINTENANCE_PRUNE_PLAN], state_name="PrunePlanPartition", idempotent=True
        )
        plan = maps.map("Plan", key=path(PruneStarted, "plan_work_list_key", at=STARTED), processor=plan_item)
        decide = invoke(
            self, "Decide", functions[r.MAINTENANCE_PRUNE_DECIDE], state_name="PruneDecide", result_path=DECIDED
        )
        sweep = maps.map(
            "Sweep",
            key=path(PruneDecided, "sweep_work_list_key", at=DECIDED),
            processor=maps.looping("Sweep", functions[r.MAINTENANCE_PRUNE_SWEEP], PruneSweepEvent, SweepResult),
        )
        finish = invoke(
            self, "Finish", functions[r.MAINTENANCE_PRUNE_FINISH], state_name="PruneFinish", result_path=FINISHED
        )
        result = sfn.Pass(
            self,
            "Result",
            state_name="PruneResult",
            input_path=path(PruneFinished, "result", at=FINISHED),
            result_path=result_path,
        )
        abort = invoke(
            self,
            "Abort",
            functions[r.MAINTENANCE_PRUNE_ABORT],
            state_name="PruneAbort",
            # The error stays at $.error for the failure event; the abort's own summary is not needed.
            result_path=sfn.JsonPath.DISCARD,
        )
        abort.next(failed)
        catch_all((start,), failed)
        catch_all((mark, plan, decide, sweep, finish), abort)
        # Abort's own failure still ends in the failure event (the lock then goes stale, the staging expires).
        abort.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.abort_error")

        start.next(mark)
        mark.next(plan)
        plan.next(decide)
        decide.next(sweep)
        sweep.next(finish)
        finish.next(
            sfn.Choice(self, "FinishDone", state_name="PruneFinishDone")
            .when(sfn.Condition.boolean_equals(path(PruneFinished, "done", at=FINISHED), True), result)
            .otherwise(finish)
        )
        result.next(then)
        self.first: sfn.IChainable = start


__all__ = ["PRUNE_FUNCTIONS", "PruneChain"]
