"""The Maintenance state machine (STANDARD) and what serves it: the drills' scratch bucket, its daily schedule, its
notifications and the integrity alarm, each its own construct. The shape is a contract with functions/maintenance_*.py
and is described in docs/state-machines.md ("Maintenance"); change both together.

::

    Forget -> PruneEnabled? -> <Prune chain> -> Verify -> DrillEnabled? -> Drill -> MaintenanceSucceeded (event) -> Done
       \\___________ any error (Catch States.ALL -> $.error) ____________/
                         -> MaintenanceFailed (event) -> Failed

The prune chain (infra/prune_workflow.py) is Start, Distributed Maps of mark, plan and sweep items, Decide and
Finish; an error after Start goes through PruneAbort (which releases the exclusive lock) to MaintenanceFailed.

Every step gets the whole state and stores its result at ``$.results.<step>``; ``$.results`` is the success event's
detail. PruneStart takes the vault's exclusive lock and raises ``VaultLocked`` while a backup holds the shared one:
that error is retried for about half an hour with backoff, on its own retrier.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants as c
from infra import registry as r
from infra.drill_scratch import DrillScratch
from infra.functions import Functions
from infra.nag import acknowledge, logical_id
from infra.observability import IntegrityAlarm, notify_outcomes
from infra.paths import path
from infra.prune_workflow import PruneChain
from infra.schedules import MaintenanceSchedule
from infra.settings import StackSettings
from infra.tasks import catch_all, flag_set, invoke, put_event, state_machine
from infra.vault import Vault
from vaultline.plans import PlansFile
from vaultline.runs.maintenance_models import MaintenanceInput
from vaultline.runs.requests import maintenance_input


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
        self.forget = functions[r.MAINTENANCE_FORGET]
        self.functions = functions
        self.vault = vault
        self.verify = functions[r.MAINTENANCE_VERIFY]
        self.drill = functions[r.MAINTENANCE_DRILL]

        self.scratch = DrillScratch(self, "DrillScratch", vault=vault, drill=self.drill)
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
        forget = invoke(self, "Forget", self.forget, result_path="$.results.forget")
        verify = invoke(self, "Verify", self.verify, result_path="$.results.verify")
        drill = invoke(self, "Drill", self.drill, result_path="$.results.drill")

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
        prune = PruneChain(
            self,
            "Prune",
            functions=self.functions,
            vault=self.vault,
            result_path="$.results.prune",
            then=verify,
            failed=failed_event,
        )
        catch_all((forget, verify, drill), failed_event)

        succeeded.next(sfn.Succeed(self, "Done"))
        drill.next(succeeded)
        verify.next(
            sfn.Choice(self, "DrillEnabled")
            .when(flag_set(path(MaintenanceInput, "drill", "enabled")), drill)
            .otherwise(succeeded)
        )
        forget.next(
            sfn.Choice(self, "PruneEnabled")
            .when(flag_set(path(MaintenanceInput, "prune")), prune.first)
            .otherwise(verify)
        )

        machine = state_machine(
            self,
            comment="Vaultline maintenance: forget by the plans' keep rules, prune, verify a subset, restore drill",
            definition=forget,
            log_group=self.log_group,
        )
        functions = [self.forget, *prune.functions, self.verify, self.drill]
        # The prune maps' ItemReaders read and ResultWriters write SSE-KMS objects of the vault: CDK grants S3 only.
        machine.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.vault.key.key_arn])
        )
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{logical_id(machine)}"}}]}}]}}'
        )
        acknowledge(
            machine,
            "AwsSolutions-IAM5",
            "CDK's own grants for this workflow: invoking each maintenance function by any version qualifier "
            "(ARN:*), prune's Distributed Maps reading their work lists and writing results under the vault bucket "
            "(bucket/*) and describing and stopping their own child executions, and X-Ray and log delivery, which "
            "have no resource-level permissions (Resource::*).",
            findings=[
                "Resource::*",
                f"Resource::arn:<AWS::Partition>:s3:::<{logical_id(self.vault.bucket)}>/*",
                f"Resource::{executions}:*",
                f"Resource::{executions}/*:*",
                *(f"Resource::<{logical_id(function)}.Arn>:*" for function in functions),
            ],
        )
        return machine


__all__ = ["Maintenance"]
