"""The Maintenance state machine (STANDARD) and what serves it: the drills' scratch bucket, its daily schedule, its
notifications and the integrity alarm, each its own construct. The shape is a contract with functions/maintenance_*.py
and is described in docs/state-machines.md ("Maintenance"); change both together.

::

    <Forget chain> -> PruneEnabled? -> <Prune chain> -> <Lock chain> -> Compact -> Verify
           -> <VerifyItems: Distributed Map> -> VerifySummary -> DrillEnabled? -> Drill
           -> <DrillItems: Distributed Map> -> DrillSummary
           -> MaintenanceSucceeded -> Done
       \\___________ any error (Catch States.ALL -> $.error) ____________/
                         -> MaintenanceFailed (event) -> Failed

The forget chain (infra/forget_workflow.py) is ForgetPlan, Distributed Maps of read items (batches of recovery
point headers) and decide items (partitions of the sources: the keep rules applied, the dropped manifests deleted),
and ForgetSummary, which stores the result at ``$.results.forget``.
The prune chain (infra/prune_workflow.py) is Start, Distributed Maps of mark, plan and sweep items, Decide and
Finish; an error after Start goes through PruneAbort (which releases the exclusive lock) to MaintenanceFailed.
The lock chain (infra/lock_workflow.py) is LockPlan, Distributed Maps of mark and extend items, and LockSummary: it
extends the Object Lock retention of what the live recovery points need and lapses before the next run
(vaultline/operations/lock_extension.py), and stores its counts at ``$.results.lock``.
Compact (vaultline/runs/maintenance_steps.py) writes a new sharded index generation, as ``vaultline index compact``
does, so the next backup's workers load its filter rather than the whole index; it writes nothing when the current
generation is complete. It takes the shared lock, which only an exclusive one (another run's prune) refuses: it waits
that out as the backups' Prepare does. Verify plans the check (vaultline/runs/verify_steps.py) and stages its work
list in the vault; each map item verifies a batch of packs or recovery points and loops on its own cursor when its
time budget runs low; VerifySummary proves every item reported and stores the result at ``$.results.verify``. The
drill has the same shape (vaultline/runs/drill_steps.py): its plan stages batches of a sampled recovery point's
entries, its items restore them into scratch and compare, its summary deletes the scratch copy and stores
``$.results.drill``.

Every step gets the whole state and stores its result at ``$.results.<step>``; ``$.results`` is the success event's
detail. PruneStart takes the vault's exclusive lock and raises ``VaultLocked`` while a backup holds the shared one:
that error is retried for about half an hour with backoff, on its own retrier.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from pydantic import BaseModel

from infra import constants as c
from infra import registry as r
from infra.drill_scratch import DrillScratch
from infra.forget_workflow import FORGET_FUNCTIONS, ForgetChain
from infra.functions import Functions
from infra.lock_workflow import LOCK_FUNCTIONS, LockChain
from infra.looping_map import LoopStates, looping_item
from infra.nag import acknowledge, logical_id
from infra.observability import IntegrityAlarm, notify_outcomes
from infra.paths import fields_of, path
from infra.prune_workflow import PRUNE_FUNCTIONS, PruneChain
from infra.schedules import MaintenanceSchedule
from infra.settings import StackSettings
from infra.tasks import (
    WorkList,
    catch_all,
    flag_set,
    invoke,
    locked_retry,
    put_event,
    state_machine,
    work_list_map,
)
from infra.vault import Vault
from infra.workflows import MAP_ITEM
from vaultline.plans import PlansFile
from vaultline.runs.maintenance_models import (
    DrillItemEvent,
    DrillItemResult,
    DrillPlanned,
    MaintenanceInput,
    VerifyItemEvent,
    VerifyItemResult,
    VerifyPlanned,
)
from vaultline.runs.requests import maintenance_input

# Every function the machine runs (its chains' included): what a stack that runs maintenance must create.
MAINTENANCE_FUNCTIONS = (
    *FORGET_FUNCTIONS,
    *PRUNE_FUNCTIONS,
    *LOCK_FUNCTIONS,
    r.MAINTENANCE_COMPACT,
    r.MAINTENANCE_VERIFY_PLAN,
    r.MAINTENANCE_VERIFY_ITEM,
    r.MAINTENANCE_VERIFY_SUMMARY,
    r.ABORT,
    r.MAINTENANCE_DRILL_PLAN,
    r.MAINTENANCE_DRILL_ITEM,
    r.MAINTENANCE_DRILL_SUMMARY,
)

# Where the state keeps the verify's and the drill's plans, their maps' outputs, and a map item's last result.
VERIFYING = "$.verifying"
VERIFY_MAP = "$.verify_map"
DRILLING = "$.drilling"
DRILL_MAP = "$.drill_map"


class Maintenance(Construct):
    """Forget, prune, verify a subset and (optionally) drill a restore; scheduled daily; results as metrics
    (from the functions, namespace ``Vaultline``) and a ``vaultline`` event."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Functions,
        vault: Vault,
        plans: PlansFile,
        settings: StackSettings,
        topic: sns.ITopic,
        dead_letters: sqs.IQueue,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.compact = functions[r.MAINTENANCE_COMPACT]
        self.functions = functions
        self.vault = vault
        self.verify_plan = functions[r.MAINTENANCE_VERIFY_PLAN]
        self.verify_item = functions[r.MAINTENANCE_VERIFY_ITEM]
        self.verify_summary = functions[r.MAINTENANCE_VERIFY_SUMMARY]
        self.abort = functions[r.ABORT]
        self.drill_plan = functions[r.MAINTENANCE_DRILL_PLAN]
        self.drill_item = functions[r.MAINTENANCE_DRILL_ITEM]
        self.drill_summary = functions[r.MAINTENANCE_DRILL_SUMMARY]

        self.scratch = DrillScratch(self, "DrillScratch", vault=vault, item=self.drill_item, summary=self.drill_summary)
        self.log_group = functions.log_key.log_group(self, "Logs", logs.RetentionDays.THREE_MONTHS)
        self.state_machine = self._state_machine()
        self.schedule = MaintenanceSchedule(
            self,
            "Schedule",
            state_machine=self.state_machine,
            execution_input=maintenance_input(
                plans, drill=settings.maintenance_drill, scratch=self.scratch.url, verify_parts=c.VERIFY_PARTS
            ),
            expression=settings.maintenance_schedule,
            dead_letters=dead_letters,
            key=key,
        )
        notify_outcomes(
            self,
            topic,
            machines=[self.state_machine],
            machines_named="maintenance",
            detail_types=[c.MAINTENANCE_SUCCEEDED, c.MAINTENANCE_FAILED],
            events_named="maintenance",
        )
        self.integrity_alarm = IntegrityAlarm(self, "IntegrityAlarm", topic=topic).alarm

    def _state_machine(self) -> sfn.StateMachine:
        compact = invoke(self, "Compact", self.compact, result_path="$.results.compact")
        # Compaction's shared lock is refused only while a prune (of another execution, or the CLI) holds the
        # exclusive one: that prune ends, so wait it out rather than skip the verify and drill behind it.
        locked_retry(compact)
        verify = invoke(self, "Verify", self.verify_plan, result_path=VERIFYING)
        # The plan takes the shared lock (a prune of the CLI's may hold the exclusive one): wait it out, as Compact.
        locked_retry(verify)
        verify_items = self._item_map(
            "Verify", self.verify_item, (VerifyItemEvent, VerifyItemResult, VerifyPlanned), VERIFYING, VERIFY_MAP
        )
        verify_summary = invoke(self, "VerifySummary", self.verify_summary, result_path="$.results.verify")
        drill = invoke(self, "Drill", self.drill_plan, result_path=DRILLING)
        drill_items = self._item_map(
            "Drill", self.drill_item, (DrillItemEvent, DrillItemResult, DrillPlanned), DRILLING, DRILL_MAP
        )
        drill_summary = invoke(self, "DrillSummary", self.drill_summary, result_path="$.results.drill")

        succeeded = put_event(
            self, "MaintenanceSucceeded", c.MAINTENANCE_SUCCEEDED, sfn.TaskInput.from_json_path_at("$.results")
        )
        failed_event = put_event(self, "MaintenanceFailed", c.MAINTENANCE_FAILED, sfn.TaskInput.from_json_path_at("$"))
        failed = sfn.Fail(
            self,
            "Failed",
            error="MaintenanceFailed",
            cause=f"A maintenance step failed; the '{c.MAINTENANCE_FAILED}' event has the error.",
        )
        failed_event.next(failed)
        lock = LockChain(
            self,
            "Lock",
            functions=self.functions,
            vault=self.vault,
            result_path="$.results.lock",
            then=compact,
            failed=failed_event,
        )
        prune = PruneChain(
            self,
            "Prune",
            functions=self.functions,
            vault=self.vault,
            result_path="$.results.prune",
            then=lock.first,
            failed=failed_event,
        )
        # A failed item or summary leaves the verify's run and its shared lock: the shared Abort releases both
        # (a failed plan releases them itself), then the failure is announced as any other.
        verify_run = sfn.Pass(
            self,
            "VerifyRun",
            parameters={"run_id": sfn.JsonPath.string_at(path(VerifyPlanned, "run_id", at=VERIFYING))},
            result_path="$.prepared",
        )
        verify_abort = invoke(self, "VerifyAbort", self.abort, result_path="$.aborted")
        verify_abort.add_catch(failed_event, errors=[sfn.Errors.ALL], result_path="$.abort_error")
        verify_run.next(verify_abort).next(failed_event)
        catch_all((verify_items, verify_summary), verify_run)
        catch_all((compact, verify, drill, drill_items, drill_summary), failed_event)

        succeeded.next(sfn.Succeed(self, "Done"))
        drill.next(drill_items).next(drill_summary).next(succeeded)
        compact.next(verify)
        verify.next(verify_items).next(verify_summary)
        verify_summary.next(
            sfn.Choice(self, "DrillEnabled")
            .when(flag_set(path(MaintenanceInput, "drill", "enabled")), drill)
            .otherwise(succeeded)
        )
        forget = ForgetChain(
            self,
            "Forget",
            functions=self.functions,
            vault=self.vault,
            result_path="$.results.forget",
            then=sfn.Choice(self, "PruneEnabled")
            .when(flag_set(path(MaintenanceInput, "prune")), prune.first)
            .otherwise(lock.first),
            failed=failed_event,
        )

        machine = state_machine(
            self,
            comment="Vaultline maintenance: forget by the plans' keep rules, prune, compact the index, verify a "
            "subset, restore drill",
            definition=forget.first,
            log_group=self.log_group,
        )
        # The maps' ItemReaders read and their ResultWriters write SSE-KMS objects of the vault: CDK grants S3 only.
        machine.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.vault.key.key_arn])
        )
        functions = [*forget.functions, *prune.functions, *lock.functions, self.compact]
        functions += [self.verify_plan, self.verify_item, self.verify_summary, self.abort]
        functions += [self.drill_plan, self.drill_item, self.drill_summary]
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{logical_id(machine)}"}}]}}]}}'
        )
        acknowledge(
            machine,
            "AwsSolutions-IAM5",
            "CDK's own grants for this workflow: invoking each maintenance function by any version qualifier "
            "(ARN:*), the forget, prune, lock, verify and drill maps reading their work lists and writing results "
            "under the vault bucket (bucket/*), describing and stopping their own child executions, and X-Ray and "
            "log delivery, which have no resource-level permissions (Resource::*).",
            findings=[
                "Resource::*",
                self.vault.partition_finding("/*"),
                f"Resource::{executions}:*",
                f"Resource::{executions}/*:*",
                *(f"Resource::<{logical_id(function)}.Arn>:*" for function in functions),
            ],
        )
        return machine

    def _item_map(
        self,
        stage: str,
        function: lambda_.IFunction,
        models: tuple[type[BaseModel], type[BaseModel], type[BaseModel]],
        planned_at: str,
        result_path: str,
    ) -> sfn.DistributedMap:
        """``<stage>Items``: the map over the work list the stage's plan staged; each item invokes ``<stage>Item``
        until its result says done, handing its cursor back in (``<stage>NextPart``), so a batch of any size fits
        15-minute invocations. ``models`` are the item's event, its result and the plan's result."""
        event, result, planned = models
        states = LoopStates(f"{stage}Item", f"{stage}NextPart", f"{stage}ItemFinished", f"{stage}ItemDone")
        item = looping_item(
            self,
            function,
            states=states,
            event=event,
            result=result,
            carry=("run_id",),
            resume={"item": ("item",), "cursor": ("cursor",)},
        )
        work = WorkList(
            key=path(planned, "work_list_key", at=planned_at),
            concurrency=path(planned, "worker_concurrency", at=planned_at),
            item_selector=fields_of(event, run_id=path(planned, "run_id", at=planned_at), item=MAP_ITEM),
        )
        return work_list_map(
            self,
            f"{stage}Items",
            state_name=f"{stage}Items",
            vault=self.vault,
            work=work,
            processor=item,
            result_path=result_path,
        )


__all__ = ["MAINTENANCE_FUNCTIONS", "Maintenance"]
