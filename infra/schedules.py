"""One EventBridge Scheduler schedule per plan source, starting the backup state machine with its input."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants as c
from infra.nag import acknowledge
from vaultline.plans import Plan, PlansFile
from vaultline.runs.requests import plan_input


def schedule_name(plan: Plan, index: int) -> str:
    """``vaultline-<plan>``, or ``vaultline-<plan>-<n>`` (1-based) when the plan has several sources."""
    base = f"{c.SCHEDULE_PREFIX}{plan.name}"
    return base if len(plan.sources) == 1 else f"{base}-{index + 1}"


def start_execution_role(
    scope: Construct,
    construct_id: str,
    *,
    description: str,
    state_machine: sfn.IStateMachine,
    dead_letters: sqs.IQueue,
    key: kms.IKey,
) -> iam.Role:
    """The role Scheduler assumes to start ``state_machine``, and to dead-letter a start that keeps failing."""
    role = iam.Role(
        scope,
        construct_id,
        description=description,
        assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com",
            # Confused-deputy guard: only schedules of this account may use the role.
            conditions={"StringEquals": {"aws:SourceAccount": Stack.of(scope).account}},
        ),
    )
    state_machine.grant_start_execution(role)
    # Exactly what sending to an SSE-KMS queue needs (grant_send_messages would add ReEncrypt* and more).
    role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[dead_letters.queue_arn]))
    role.add_to_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]))
    return role


def start_target(
    state_machine: sfn.IStateMachine, role: iam.IRole, execution_input: Any, *, dead_letters: sqs.IQueue
) -> scheduler.CfnSchedule.TargetProperty:
    """A schedule's target: start ``state_machine`` with ``execution_input`` (its JSON, keys sorted), retried a few
    times within the hour, then dead-lettered."""
    return scheduler.CfnSchedule.TargetProperty(
        arn=state_machine.state_machine_arn,
        role_arn=role.role_arn,
        input=json.dumps(execution_input, sort_keys=True),
        retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
            maximum_event_age_in_seconds=c.SCHEDULE_MAX_EVENT_AGE_SECONDS,
            maximum_retry_attempts=c.SCHEDULE_RETRY_ATTEMPTS,
        ),
        dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=dead_letters.queue_arn),
    )


class DeadLetters(Construct):
    """The queue (this construct's default child) where a schedule's start that keeps failing (throttled, state
    machine missing) lands instead of vanishing; an alarm on its depth tells an operator."""

    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(
            self,
            "Default",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        acknowledge(
            self.queue,
            "AwsSolutions-SQS3",
            "This queue is itself the dead-letter queue of the schedules; nothing consumes it automatically, an "
            "alarm on its depth tells an operator.",
        )


class Schedules(Construct):
    """The schedules, the role Scheduler assumes to start executions, and the queue of starts that failed."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plans: PlansFile,
        state_machine: sfn.IStateMachine,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = DeadLetters(self, "DeadLetters", key=key).queue

        self.role = start_execution_role(
            self,
            "Role",
            description="Assumed by EventBridge Scheduler to start Vaultline backups",
            state_machine=state_machine,
            dead_letters=self.dead_letters,
            key=key,
        )

        self.schedules: dict[str, scheduler.CfnSchedule] = {}
        for plan in plans.plans:
            for index, source in enumerate(plan.sources):
                name = schedule_name(plan, index)
                window = plan.schedule.flexible_window_minutes
                self.schedules[name] = scheduler.CfnSchedule(
                    self,
                    name,
                    name=name,
                    description=f"Vaultline plan {plan.name}: back up {source.url}",
                    schedule_expression=plan.schedule.expression,
                    schedule_expression_timezone=plan.schedule.timezone,
                    flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(
                        mode="FLEXIBLE" if window else "OFF",
                        maximum_window_in_minutes=window or None,
                    ),
                    state="ENABLED",
                    target=start_target(
                        state_machine, self.role, plan_input(plan, source), dead_letters=self.dead_letters
                    ),
                )


class MaintenanceSchedule(Construct):
    """The daily Maintenance run: the schedule (this construct's default child) and the role it starts it as."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        state_machine: sfn.IStateMachine,
        execution_input: dict[str, Any],
        expression: str,
        dead_letters: sqs.IQueue,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.role = start_execution_role(
            self,
            "Role",
            description="Assumed by EventBridge Scheduler to start Vaultline maintenance",
            state_machine=state_machine,
            dead_letters=dead_letters,
            key=key,
        )
        self.input = execution_input
        self.schedule = scheduler.CfnSchedule(
            self,
            "Default",
            name=c.MAINTENANCE_SCHEDULE_NAME,
            description="Vaultline maintenance: forget, prune, verify a subset, optional restore drill",
            schedule_expression=expression,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=start_target(state_machine, self.role, execution_input, dead_letters=dead_letters),
        )
