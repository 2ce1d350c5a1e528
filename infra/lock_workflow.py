"""Lock extension inside the Maintenance state machine: a chain of the steps of vaultline/runs/lock_steps.py,
described in docs/state-machines.md ("Maintenance", "Lock extension"); change both together.

::

    LockPlan -> LockMark (Distributed Map over batches of recovery points; an item loops on its cursor) ->
    LockExtend (Distributed Map over partitions of the referenced packs, looping) -> LockSummary -> <next>
       any error -> <failed> (the run's staging expires with the staging lifecycle rule)

Nothing here deletes or shortens: each item moves retention dates forward only, so a failed or repeated run is
harmless, and the next one extends whatever is still due.
"""

from __future__ import annotations

from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import registry as r
from infra.functions import Functions
from infra.looping_map import RunMaps
from infra.paths import path
from infra.tasks import catch_all, invoke
from infra.vault import Vault
from vaultline.runs.lock_models import LockExtendEvent, LockExtendResult, LockMarkEvent, LockMarkResult, LockPlanned

PLANNED = "$.lock_run"

LOCK_FUNCTIONS = (
    r.MAINTENANCE_LOCK_PLAN,
    r.MAINTENANCE_LOCK_MARK,
    r.MAINTENANCE_LOCK_EXTEND,
    r.MAINTENANCE_LOCK_SUMMARY,
)


class LockChain(Construct):
    """The lock extension states of the Maintenance machine: ``first`` starts them, they go on to ``then`` when
    done and to ``failed`` on any error, with the error at ``$.error``."""

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
        self.functions = [functions[spec] for spec in LOCK_FUNCTIONS]
        plan = invoke(self, "Plan", functions[r.MAINTENANCE_LOCK_PLAN], state_name="LockPlan", result_path=PLANNED)
        maps = RunMaps(self, prefix="Lock", vault=vault, run=LockPlanned, at=PLANNED)
        mark = maps.map(
            "Mark",
            key=path(LockPlanned, "mark_work_list_key", at=PLANNED),
            processor=maps.looping("Mark", functions[r.MAINTENANCE_LOCK_MARK], LockMarkEvent, LockMarkResult),
        )
        extend = maps.map(
            "Extend",
            key=path(LockPlanned, "extend_work_list_key", at=PLANNED),
            processor=maps.looping("Extend", functions[r.MAINTENANCE_LOCK_EXTEND], LockExtendEvent, LockExtendResult),
        )
        summary = invoke(
            self, "Summary", functions[r.MAINTENANCE_LOCK_SUMMARY], state_name="LockSummary", result_path=result_path
        )
        catch_all((plan, mark, extend, summary), failed)
        plan.next(mark).next(extend).next(summary).next(then)
        self.first: sfn.IChainable = plan


__all__ = ["LOCK_FUNCTIONS", "LockChain"]
