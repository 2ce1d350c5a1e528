"""VaultlineStack: composes the vault, the layer, the functions, the workflows, the schedules and observability."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants as c
from infra import registry as r
from infra.air_gap import ImportedVault
from infra.copy_workflow import Copy
from infra.data_access import DataAccess
from infra.freshness import Freshness, maintenance_heartbeats, plan_heartbeats
from infra.functions import Functions
from infra.layer import SharedLayer
from infra.logs import LogKey
from infra.maintenance import Maintenance
from infra.nag import acknowledge
from infra.observability import NotificationKey, Observability
from infra.schedules import Schedules
from infra.settings import StackSettings
from infra.vault import Vault, VaultResources
from infra.workflows import WORKFLOW_FUNCTIONS, Workflows
from vaultline.plans import PlansFile, load_plans
from vaultline.runs.requests import plan_inputs

# A protected stack of the vault-account mode runs the backups, the restores and the freshness check: maintenance,
# retention and copies are the vault account's, so their functions (and the deletes their roles would carry) are
# not created here. In registry order.
PROTECTED_FUNCTIONS = tuple(spec for spec in r.FUNCTIONS if spec in {*WORKFLOW_FUNCTIONS, r.FRESHNESS_CHECK})


class VaultlineStack(Stack):
    """Everything `cdk deploy` creates for one vault and the plans that fill it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        plans: PlansFile,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            scope, construct_id, description="Vaultline: serverless deduplicated S3 and DynamoDB backups", **kwargs
        )
        self.settings = settings
        self.plans = plans

        # A vault in its own account (settings.vault_account): this stack only adds to it, and has no maintenance.
        air_gap = settings.vault_account
        self.vault: VaultResources = (
            ImportedVault(self, "Vault", settings=settings, air_gap=air_gap)
            if air_gap
            else Vault(self, "Vault", settings=settings)
        )
        self.layer = SharedLayer(self, "SharedLayer")
        self.log_key = LogKey(self, "LogKey")
        self.functions = Functions(
            self,
            "Functions",
            vault=self.vault,
            specs=PROTECTED_FUNCTIONS if air_gap else r.FUNCTIONS,
            layer=self.layer.layer,
            encryption=plans.encryption,
            settings=settings,
            log_key=self.log_key,
        )
        self.data_access = DataAccess(
            self,
            "DataAccess",
            functions=self.functions,
            plans=plans,
            restore_targets=settings.restore_target_buckets,
            restore_target_tables=settings.restore_target_tables,
        )
        self.workflows = Workflows(
            self,
            "Workflows",
            functions=self.functions,
            vault=self.vault,
            export_poll_seconds=settings.export_poll_seconds,
            retention=air_gap is None,
        )
        self.notification_key = NotificationKey(self, "NotificationKey")
        self.schedules = Schedules(
            self,
            "Schedules",
            plans=plans,
            state_machine=self.workflows.backup.state_machine,
            key=self.notification_key.key,
        )
        self.observability = Observability(
            self,
            "Observability",
            key=self.notification_key.key,
            dead_letters=self.schedules.dead_letters,
            notification_email=settings.notification_email,
        )
        self.observability.notify([self.workflows.backup.state_machine, self.workflows.restore.state_machine])
        self.maintenance = (
            Maintenance(
                self,
                "Maintenance",
                functions=self.functions,
                vault=self.vault,
                plans=plans,
                settings=settings,
                topic=self.observability.topic,
                dead_letters=self.schedules.dead_letters,
                key=self.notification_key.key,
            )
            if isinstance(self.vault, Vault)
            else None
        )
        # Every workflow, by the kind its failure alarm is named for: a new state machine joins here.
        self.state_machines: dict[str, sfn.StateMachine] = {
            "Backup": self.workflows.backup.state_machine,
            "Restore": self.workflows.restore.state_machine,
        }
        heartbeats = plan_heartbeats(plans)
        integrity_alarms = []
        # A protected stack of the vault-account mode has no maintenance: the vault account's watches it.
        if self.maintenance is not None:
            self.state_machines["Maintenance"] = self.maintenance.state_machine
            heartbeats += maintenance_heartbeats(settings.maintenance_schedule, drill=settings.maintenance_drill)
            integrity_alarms.append(self.maintenance.integrity_alarm)
        for kind, machine in self.state_machines.items():
            self.observability.watch(kind, machine)
        self.freshness = Freshness(
            self,
            "Freshness",
            heartbeats=heartbeats,
            topic=self.observability.topic,
            check=self.functions[r.FRESHNESS_CHECK],
            dead_letters=self.schedules.dead_letters,
            key=self.notification_key.key,
        )
        # Copies run where the vault is owned (a vault-account deployment copies from the vault account).
        self.copy = (
            Copy(
                self,
                "Copy",
                functions=self.functions,
                vault=self.vault,
                plans=plans,
                log_key=self.log_key,
                topic=self.observability.topic,
                dead_letters=self.schedules.dead_letters,
                key=self.notification_key.key,
            )
            if isinstance(self.vault, Vault)
            else None
        )
        if self.copy is not None:
            self.state_machines["Copy"] = self.copy.state_machine
            self.observability.watch("Copy", self.copy.state_machine)
        self.observability.add_dashboard(
            workers=self.functions.workers,
            alarms=[*integrity_alarms, *self.freshness.alarms],
            heartbeats=self.freshness.metrics,
        )
        if air_gap is not None and air_gap.vault_key_arn is None:
            acknowledge(
                self,
                "AwsSolutions-IAM5",
                "The vault key lives in the vault account and its id is not known before that account's stack is "
                "deployed: the roles may use that account's keys, of which only the vault key's policy admits them.",
                findings=[f"Resource::{air_gap.key_arn}"],
            )
        self._outputs()

    def _outputs(self) -> None:
        """What the CLI needs to drive a deployed Vaultline from the stack alone."""
        CfnOutput(self, c.OUTPUT_BACKUP_STATE_MACHINE, value=self.workflows.backup.state_machine.state_machine_arn)
        CfnOutput(self, c.OUTPUT_RESTORE_STATE_MACHINE, value=self.workflows.restore.state_machine.state_machine_arn)
        if self.maintenance is not None:
            CfnOutput(self, c.OUTPUT_MAINTENANCE_STATE_MACHINE, value=self.maintenance.state_machine.state_machine_arn)
        if self.copy is not None:
            CfnOutput(self, c.OUTPUT_COPY_STATE_MACHINE, value=self.copy.state_machine.state_machine_arn)
        CfnOutput(self, c.OUTPUT_VAULT_BUCKET, value=self.vault.bucket.bucket_name)
        CfnOutput(self, c.OUTPUT_VAULT_KEY, value=self.vault.key.key_arn)
        CfnOutput(
            self,
            c.OUTPUT_NOTIFICATION_TOPIC,
            description="SNS topic of failed runs, outcomes and alarms: subscribe to it (or set notificationEmail)",
            value=self.observability.topic.topic_arn,
        )
        CfnOutput(
            self,
            c.OUTPUT_PLANS,
            description="Plan name -> backup execution input per source (what `vaultline plan run` starts)",
            value=json.dumps(plan_inputs(self.plans), sort_keys=True, separators=(",", ":")),
        )


def load_stack_plans(settings: StackSettings, base: Path = c.ROOT) -> PlansFile:
    """The plans file named by the context, relative to the project root unless absolute."""
    path = Path(settings.plans_file)
    shown = settings.plans_file
    if not path.is_absolute():
        path = base / path
    # Load by the path, but name the file in errors as the user wrote it in cdk.json.
    try:
        return load_plans(path)
    except Exception as exc:
        message = str(exc).replace(str(path), shown, 1)
        raise type(exc)(message) from None


__all__ = ["VaultlineStack", "load_stack_plans"]
