"""The Copy state machine (STANDARD): copies a plan's recovery points into its ``copy_to`` vault, after each backup
of the plan and on ``copy_to.schedule``. Its shape is a contract with functions/copy_*.py and is described in
docs/state-machines.md ("Copy"); change both together.

::

    CopyPrepare -> Skipped? -> CopyItems (Distributed Map over the staged batches) -> CopyCommit
                 \\-> (skipped: the target holds it already) ------------------------/
                 -> CopySucceeded (event) -> Done
       CopyPrepare's error ------------------------------------> CopyFailed (event) -> Failed
       an error of CopyItems or CopyCommit -> CopyAbort (release the target's lock, clean the staging) -^

Prepare takes the target's shared lock and raises ``VaultLocked`` while a prune holds the target's exclusive one
(retried by name, as a backup's Prepare waits); a failed Prepare cleans up itself, so its error goes straight to
the failure event. Commit writes the manifest last, then forgets on the target what ``keep`` does not keep.
"""

from __future__ import annotations

import json

from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants as c
from infra import registry as r
from infra.functions import Functions
from infra.logs import LogKey
from infra.nag import acknowledge, logical_id
from infra.observability import notify_outcomes
from infra.paths import path
from infra.schedules import start_execution_role, start_target
from infra.tasks import WorkList, catch_all, invoke, locked_retry, put_event, state_machine, work_list_map
from infra.vault import VaultResources
from vaultline.plans import PlansFile
from vaultline.runs.copy_models import CopyPlanned, CopyRequest
from vaultline.runs.models import Committed
from vaultline.runs.requests import copy_input

COPYING = "$.copying"
COMMITTED = "$.committed"
MAP_ITEM = "$$.Map.Item.Value"
RECOVERY_POINT_PLACEHOLDER = "recovery_point"


def copy_schedule_name(plan: str, index: int, sources: int) -> str:
    """``vaultline-copy-<plan>``, or ``vaultline-copy-<plan>-<n>`` (1-based) when the plan has several sources."""
    base = f"{c.SCHEDULE_PREFIX}copy-{plan}"
    return base if sources == 1 else f"{base}-{index + 1}"


class Copy(Construct):
    """The Copy state machine, the rules that start it after a plan's backups, its schedules and notifications."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Functions,
        vault: VaultResources,
        plans: PlansFile,
        log_key: LogKey,
        topic: sns.ITopic,
        dead_letters: sqs.IQueue,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.functions = [functions[spec] for spec in r.COPY_FUNCTIONS]
        prepare, item, commit, abort = self.functions
        self.log_group = log_key.log_group(self, "Logs", logs.RetentionDays.THREE_MONTHS)

        first = invoke(self, "Prepare", prepare, state_name="CopyPrepare", result_path=COPYING)
        locked_retry(first)
        worker = invoke(self, "Item", item, state_name="CopyItem", idempotent=True)
        work = WorkList(
            key=path(CopyPlanned, "work_list_key", at=COPYING),
            concurrency=path(CopyPlanned, "worker_concurrency", at=COPYING),
            item_selector={
                "run_id": path(CopyPlanned, "run_id", at=COPYING),
                "item": MAP_ITEM,
                "target": path(CopyRequest, "target"),
            },
        )
        items = work_list_map(
            self,
            "Items",
            state_name="CopyItems",
            vault=vault,
            work=work,
            processor=worker,
            result_path=sfn.JsonPath.DISCARD,
        )
        finish = invoke(self, "Commit", commit, state_name="CopyCommit", result_path=COMMITTED)
        succeeded = put_event(self, "CopySucceeded", c.COPY_SUCCEEDED, sfn.TaskInput.from_json_path_at(COMMITTED))
        failed_event = put_event(self, "CopyFailed", c.COPY_FAILED, sfn.TaskInput.from_json_path_at("$"))
        failed = sfn.Fail(
            self, "Failed", error="CopyFailed", cause=f"The copy failed; the '{c.COPY_FAILED}' event has the error."
        )
        aborting = invoke(self, "Abort", abort, state_name="CopyAbort", result_path="$.aborted")
        aborting.add_catch(failed_event, errors=[sfn.Errors.ALL], result_path="$.abort_error")
        aborting.next(failed_event)
        failed_event.next(failed)
        catch_all((first,), failed_event)
        catch_all((items, finish), aborting)

        first.next(
            sfn.Choice(self, "Skipped", state_name="CopySkipped")
            .when(sfn.Condition.boolean_equals(path(CopyPlanned, "skipped", at=COPYING), True), finish)
            .otherwise(items)
        )
        items.next(finish)
        finish.next(succeeded)
        succeeded.next(sfn.Succeed(self, "Done"))

        self.state_machine = state_machine(
            self,
            comment="Vaultline copy: a recovery point into another vault; Prepare, Distributed Map, Commit; Abort "
            "on failure",
            definition=first,
            log_group=self.log_group,
        )
        # The map's ItemReader reads and its ResultWriter writes SSE-KMS objects of the vault: CDK grants S3 only.
        self.state_machine.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[vault.key.key_arn])
        )
        self._acknowledge(vault)
        self.after_backup = self._after_backups(plans)
        self.schedules = self._schedules(plans, dead_letters, key)
        notify_outcomes(
            self,
            topic,
            machines=[self.state_machine],
            machines_named="copy",
            detail_types=[c.COPY_SUCCEEDED, c.COPY_FAILED],
            events_named="copy",
        )

    def _after_backups(self, plans: PlansFile) -> dict[str, events.Rule]:
        """One rule per plan with ``copy_to``: each successful backup of the plan starts a copy of its recovery
        point (the success event's detail is the backup's Commit result, which names the plan)."""
        rules: dict[str, events.Rule] = {}
        for plan in plans.plans:
            if plan.copy_to is None:
                continue
            recovery_point = path(Committed, "recovery_point", at="$.detail")
            rule = events.Rule(
                self,
                f"AfterBackup{''.join(part.title() for part in plan.name.split('-'))}",
                description=f"Vaultline plan {plan.name}: copy each new recovery point to {plan.copy_to.vault}",
                event_pattern=events.EventPattern(
                    source=[c.EVENT_SOURCE], detail_type=[c.BACKUP_SUCCEEDED], detail={"plan": [plan.name]}
                ),
                targets=[
                    targets.SfnStateMachine(
                        self.state_machine,
                        input=events.RuleTargetInput.from_object(
                            copy_input(plan, recovery_point=events.EventField.from_path(recovery_point))
                        ),
                    )
                ],
            )
            # The placeholder quoted ("<rp>"): EventBridge substitutes a string either way, and the template stays
            # valid JSON before substitution, as the embedded AWS (and any reader) parses it.
            cfn = rule.node.default_child
            assert isinstance(cfn, events.CfnRule)
            cfn.add_property_override(
                "Targets.0.InputTransformer",
                {
                    "InputPathsMap": {RECOVERY_POINT_PLACEHOLDER: recovery_point},
                    "InputTemplate": json.dumps(
                        copy_input(plan, recovery_point=f"<{RECOVERY_POINT_PLACEHOLDER}>"), sort_keys=True
                    ),
                },
            )
            cfn.add_property_deletion_override("Targets.0.InputTransformer.InputPathsMap.detail-recovery_point")
            rules[plan.name] = rule
        return rules

    def _schedules(self, plans: PlansFile, dead_letters: sqs.IQueue, key: kms.IKey) -> dict[str, scheduler.CfnSchedule]:
        """A schedule per source of each plan whose ``copy_to`` has one: copy that source's newest recovery point."""
        scheduled = [p for p in plans.plans if p.copy_to is not None and p.copy_to.schedule is not None]
        if not scheduled:
            return {}
        role = start_execution_role(
            self,
            "ScheduleRole",
            description="Assumed by EventBridge Scheduler to start Vaultline copies",
            state_machine=self.state_machine,
            dead_letters=dead_letters,
            key=key,
        )
        made: dict[str, scheduler.CfnSchedule] = {}
        for plan in scheduled:
            assert plan.copy_to is not None and plan.copy_to.schedule is not None
            schedule = plan.copy_to.schedule
            window = schedule.flexible_window_minutes
            for index, source in enumerate(plan.sources):
                name = copy_schedule_name(plan.name, index, len(plan.sources))
                made[name] = scheduler.CfnSchedule(
                    self,
                    name,
                    name=name,
                    description=f"Vaultline plan {plan.name}: copy {source.url} to {plan.copy_to.vault}",
                    schedule_expression=schedule.expression,
                    schedule_expression_timezone=schedule.timezone,
                    flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(
                        mode="FLEXIBLE" if window else "OFF", maximum_window_in_minutes=window or None
                    ),
                    state="ENABLED",
                    target=start_target(
                        self.state_machine, role, copy_input(plan, source=source.url), dead_letters=dead_letters
                    ),
                )
        return made

    def _acknowledge(self, vault: VaultResources) -> None:
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{logical_id(self.state_machine)}"}}]}}]}}'
        )
        acknowledge(
            self.state_machine,
            "AwsSolutions-IAM5",
            "CDK's own grants for this workflow: invoking each copy function by any version qualifier (ARN:*), the "
            "map reading its work list and writing results under the vault bucket (bucket/*), describing and "
            "stopping its own child executions, and X-Ray and log delivery, which have no resource-level "
            "permissions (Resource::*).",
            findings=[
                "Resource::*",
                f"Resource::arn:<AWS::Partition>:s3:::<{logical_id(vault.bucket)}>/*",
                f"Resource::{executions}:*",
                f"Resource::{executions}/*:*",
                *(f"Resource::<{logical_id(function)}.Arn>:*" for function in self.functions),
            ],
        )


__all__ = ["Copy", "copy_schedule_name"]
