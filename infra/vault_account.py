"""VaultAccountStack: what `cdk deploy VaultlineVault` creates in the vault account of the vault-account mode
(infra/air_gap.py): the vault, the policies that let the protected account only add to it, the maintenance role,
and the scheduled Maintenance state machine that is the only thing deleting from the vault.

The maintenance is the main stack's, built from the same constructs (the layer, the functions of
:data:`infra.maintenance.MAINTENANCE_FUNCTIONS` with their per-step vault grants, the machine and its schedule,
the topic, the failure, integrity and freshness alarms, the dashboard), none of the backup, restore or copy
machinery, and no grant on any source or restore target. Every role of this stack is bounded by
:class:`infra.air_gap.MaintenanceBoundary`: on the vault, none may do more than the maintenance role.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants as c
from infra import registry as r
from infra.air_gap import OUTPUT_MAINTENANCE_ROLE, AirGapPolicies, MaintenanceBoundary, MaintenanceRole
from infra.air_gap_settings import AirGapSettings
from infra.freshness import Freshness, maintenance_heartbeats
from infra.functions import Functions
from infra.layer import SharedLayer
from infra.logs import LogKey
from infra.maintenance import MAINTENANCE_FUNCTIONS, Maintenance
from infra.observability import NotificationKey, Observability
from infra.schedules import DeadLetters
from infra.settings import StackSettings
from infra.vault import Vault
from vaultline.plans import PlansFile

# The maintenance machine's functions and the freshness check that watches its verifies and drills, in registry order.
VAULT_ACCOUNT_FUNCTIONS = tuple(spec for spec in r.FUNCTIONS if spec in {*MAINTENANCE_FUNCTIONS, r.FRESHNESS_CHECK})


class VaultAccountStack(Stack):
    """The vault, its policies, its maintenance role, and the maintenance that runs as (a part of) that role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        plans: PlansFile,
        air_gap: AirGapSettings,
        protected_stack: str = c.DEFAULT_STACK_NAME,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Vaultline vault account: the vault that the protected account may only add to",
            **kwargs,
        )
        self.vault = Vault(
            self,
            "Vault",
            settings=settings,
            bucket_name=air_gap.bucket_name,
            access_logs_name=air_gap.access_log_bucket_name,
        )
        self.policies = AirGapPolicies(
            self, "AirGap", vault=self.vault, settings=settings, air_gap=air_gap, protected_stack=protected_stack
        )
        self.maintenance_role = MaintenanceRole(self, "Maintenance", vault=self.vault)
        self.boundary = MaintenanceBoundary(self, "MaintenanceBoundary", vault=self.vault)
        self.boundary.apply(self)

        self.layer = SharedLayer(self, "SharedLayer")
        self.log_key = LogKey(self, "LogKey")
        self.functions = Functions(
            self,
            "Functions",
            vault=self.vault,
            layer=self.layer.layer,
            specs=VAULT_ACCOUNT_FUNCTIONS,
            encryption=plans.encryption,
            settings=settings,
            log_key=self.log_key,
        )
        self.notification_key = NotificationKey(self, "NotificationKey")
        self.dead_letters = DeadLetters(self, "DeadLetters", key=self.notification_key.key).queue
        self.observability = Observability(
            self,
            "Observability",
            key=self.notification_key.key,
            dead_letters=self.dead_letters,
            notification_email=settings.notification_email,
            topic_name="Vaultline vault maintenance outcomes",
        )
        self.maintenance = Maintenance(
            self,
            "MaintenanceWorkflow",
            functions=self.functions,
            vault=self.vault,
            plans=plans,
            settings=settings,
            topic=self.observability.topic,
            dead_letters=self.dead_letters,
            key=self.notification_key.key,
        )
        self.state_machines: dict[str, sfn.StateMachine] = {"Maintenance": self.maintenance.state_machine}
        self.observability.watch("Maintenance", self.maintenance.state_machine)
        self.freshness = Freshness(
            self,
            "Freshness",
            heartbeats=maintenance_heartbeats(settings.maintenance_schedule, drill=settings.maintenance_drill),
            topic=self.observability.topic,
            check=self.functions[r.FRESHNESS_CHECK],
            dead_letters=self.dead_letters,
            key=self.notification_key.key,
        )
        self.observability.add_dashboard(
            workers=[self.functions[spec] for spec in VAULT_ACCOUNT_FUNCTIONS],
            alarms=[self.maintenance.integrity_alarm, *self.freshness.alarms],
            heartbeats=self.freshness.metrics,
        )
        CfnOutput(self, c.OUTPUT_VAULT_BUCKET, value=self.vault.bucket.bucket_name)
        CfnOutput(self, c.OUTPUT_VAULT_KEY, value=self.vault.key.key_arn)
        CfnOutput(self, OUTPUT_MAINTENANCE_ROLE, value=self.maintenance_role.role.role_arn)
        CfnOutput(self, c.OUTPUT_MAINTENANCE_STATE_MACHINE, value=self.maintenance.state_machine.state_machine_arn)
        CfnOutput(
            self,
            c.OUTPUT_NOTIFICATION_TOPIC,
            description="SNS topic of failed maintenance runs, outcomes and alarms: subscribe to it",
            value=self.observability.topic.topic_arn,
        )


__all__ = ["VAULT_ACCOUNT_FUNCTIONS", "VaultAccountStack"]
