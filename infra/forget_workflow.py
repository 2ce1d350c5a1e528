"""Forget inside the Maintenance state machine: a chain of the steps of vaultline/runs/forget_steps.py, described
in docs/state-machines.md ("Maintenance", "Forget"); change both together.

::

    ForgetPlan -> ForgetRead (Distributed Map over batches of recovery points; an item loops on its cursor) ->
    ForgetDecide (Distributed Map over partitions of the sources, looping) -> ForgetSummary -> <next>
       any error -> <failed> (the run's staging expires with the staging lifecycle rule)

Only the decide items delete, and each deletion is a whole decision of the keep rules on every point of a source,
so a failed or repeated run leaves the vault as a shorter forget would: the next run decides on what is left.
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
from vaultline.runs.forget_models import (
    ForgetDecideEvent,
    ForgetDecideResult,
    ForgetPlanned,
    ForgetReadEvent,
    ForgetReadResult,
)

PLANNED = "$.forget_run"

FORGET_FUNCTIONS = (
    r.MAINTENANCE_FORGET_PLAN,
    r.MAINTENANCE_FORGET_READ,
    r.MAINTENANCE_FORGET_DECIDE,
    r.MAINTENANCE_FORGET_SUMMARY,
)


class ForgetChain(Construct):
    """The forget states of the Maintenance machine: ``first`` starts them, they go on to ``then`` when done and to
    ``failed`` on any error, with the error at ``$.error``."""

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
        self.functions = [functions[spec] for spec in FORGET_FUNCTIONS]
        plan = invoke(self, "Plan", functions[r.MAINTENANCE_FORGET_PLAN], state_name="ForgetPlan", result_path=PLANNED)
        maps = RunMaps(self, prefix="Forget", vault=vault, run=ForgetPlanned, at=PLANNED)
        read = maps.map(
            "Read",
            key=path(ForgetPlanned, "read_work_list_key", at=PLANNED),
            processor=maps.looping("Read", functions[r.MAINTENANCE_FORGET_READ], ForgetReadEvent, ForgetReadResult),
        )
        decide = maps.map(
            "Decide",
            key=path(ForgetPlanned, "decide_work_list_key", at=PLANNED),
            processor=maps.looping(
                "Decide", functions[r.MAINTENANCE_FORGET_DECIDE], ForgetDecideEvent, ForgetDecideResult
            ),
        )
        summary = invoke(
            self,
            "Summary",
            functions[r.MAINTENANCE_FORGET_SUMMARY],
            state_name="ForgetSummary",
            result_path=result_path,
        )
        catch_all((plan, read, decide, summary), failed)
        plan.next(read).next(decide).next(summary).next(then)
        self.first: sfn.IChainable = plan


__all__ = ["FORGET_FUNCTIONS", "ForgetChain"]
