"""The Maintenance state machine (STANDARD) and what serves it: the drills' scratch bucket, its daily schedule, its
notifications and the integrity alarm, each its own construct. The shape is a contract with functions/maintenance_*.py
and is described in docs/state-machines.md ("Maintenance"); change both together.

::

    Forget -> PruneEnabled? -> Prune -> Verify -> DrillEnabled? -> Drill -> MaintenanceSucceeded (event) -> Done
       \\___________ any error (Catch States.ALL -> $.error) ____________/
                         -> MaintenanceFailed (event) -> Failed

Every step gets the whole state and stores its result at ``$.results.<step>``; ``$.results`` is the success event's
detail. Prune takes the vault's exclusive lock and raises ``VaultLocked`` while a backup holds the shared one: that
error is retried for about half an hour with backoff, on its own retrier.
"""

from __future__ import annotations

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
from infra.schedules import MaintenanceSchedule
from infra.settings import StackSettings
from infra.tasks import catch_all, flag_set, invoke, locked_retry, put_event, state_machine
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
        self.prune = functions[r.MAINTENANCE_PRUNE]
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
        prune = invoke(self, "Prune", self.prune, result_path="$.results.prune")
        # A running backup holds the vault's shared lock; prune needs it exclusively. Wait for the backup.
        locked_retry(prune)
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
        catch_all((forget, prune, verify, drill), failed_event)

        succeeded.next(sfn.Succeed(self, "Done"))
        drill.next(succeeded)
        verify.next(
            sfn.Choice(self, "DrillEnabled")
            .when(flag_set(path(MaintenanceInput, "drill", "enabled")), drill)
            .otherwise(succeeded)
        )
        prune.next(verify)
        forget.next(
            sfn.Choice(self, "PruneEnabled").when(flag_set(path(MaintenanceInput, "prune")), prune).otherwise(verify)
        )

        machine = state_machine(
            self,
            comment="Vaultline maintenance: forget by the plans' keep rules, prune, verify a subset, restore drill",
            definition=forget,
            log_group=self.log_group,
        )
        functions = [self.forget, self.prune, self.verify, self.drill]
        acknowledge(
            machine,
            "AwsSolutions-IAM5",
            "CDK's own grants for this workflow: invoking each maintenance function by any version qualifier "
            "(ARN:*), and X-Ray and log delivery, which have no resource-level permissions (Resource::*).",
            findings=["Resource::*", *(f"Resource::<{logical_id(function)}.Arn>:*" for function in functions)],
        )
        return machine


__all__ = ["Maintenance"]
