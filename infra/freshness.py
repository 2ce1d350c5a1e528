"""Alarms for missing good news: a plan source with no new recovery point within its schedule's longest gap plus a
margin (as AWS Config's ``s3-last-backup-recovery-point-created`` rule says of AWS Backup), and a maintenance verify
or restore drill that has not completed within the maintenance schedule's.

Each is a heartbeat: a metric the step that brings the news publishes (``RecoveryPointCreated`` per plan and source
from both commits, ``VerifyCompleted``, ``DrillCompleted``; vaultline/runs/metrics.py names them and their
dimensions for both sides), and an alarm whose missing data *breaches*: silence alarms, however it came about (no
schedule fired, every backup failed, the functions are gone, nobody emits the metric).

CloudWatch bounds what one alarm can look back (PutMetricAlarm): Period x EvaluationPeriods at most 7 days, and at
most 1 day when the period is under an hour; a period is a multiple of 60 s. Within that, the alarm watches N
periods of P seconds and fires when all N are empty (``DatapointsToAlarm`` = N); since the newest period is still
filling, only N - 1 whole periods are certain to be seen, so (N - 1) x P covers the window. A window beyond 7 days
(a weekly schedule plus its margin) is watched through the freshness check (vaultline/runs/freshness_steps.py): an
hourly function that sums the heartbeat over its window from CloudWatch's own data and republishes that sum as
``<name>InWindow``; its alarm fires on a sum under 1 for three hours running, or on three hours of no check at all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import timedelta

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import constants as c
from infra.nag import acknowledge
from infra.schedules import schedule_name
from vaultline.plans import Plan, PlansFile, Schedule
from vaultline.runs.metrics import (
    DRILL_COMPLETED,
    MAX_CHECKED_WINDOW_SECONDS,
    RECOVERY_POINT_CREATED,
    VERIFY_COMPLETED,
    FreshnessCheckEvent,
    WatchedMetric,
    recovery_point_dimensions,
    service_dimensions,
)

# PutMetricAlarm's limits on Period x EvaluationPeriods: 7 days, and 1 day for a period under an hour.
MAX_EVALUATION_RANGE_SECONDS = 7 * 86400
MAX_SHORT_PERIOD_RANGE_SECONDS = 86400
LONG_PERIOD_SECONDS = 3600
SHORT_PERIOD_SECONDS = 300
# The check runs hourly; its alarm waits out this many empty (or missing) hours, so one failed check is not news.
CHECK_EXPRESSION = "rate(1 hour)"
CHECK_EVALUATION_PERIODS = 3
MIN_RUN_ALLOWANCE = timedelta(hours=1)


class FreshnessError(ValueError):
    """A schedule whose freshness no alarm can watch (it stops, or its window outlasts CloudWatch's data)."""


@dataclass(frozen=True)
class Evaluation:
    """An alarm's Period and EvaluationPeriods (all of them must be empty to alarm)."""

    period_seconds: int
    evaluation_periods: int


def alarm_window(gap: timedelta, *, flexible_window_minutes: int = 0, margin_minutes: int | None = None) -> timedelta:
    """How long after a schedule's start its recovery point may still arrive: the schedule's longest ``gap``, its
    flexible window, the hour Scheduler retries a start within, and a run allowance (``margin_minutes``, or a
    quarter of the gap and at least an hour: a backup takes a while, longer for a source backed up less often)."""
    allowance = timedelta(minutes=margin_minutes) if margin_minutes is not None else max(MIN_RUN_ALLOWANCE, gap / 4)
    retries = timedelta(seconds=c.SCHEDULE_MAX_EVENT_AGE_SECONDS)
    return gap + timedelta(minutes=flexible_window_minutes) + retries + allowance


def schedule_window(schedule: Schedule) -> timedelta:
    """:func:`alarm_window` of a plan's schedule."""
    return alarm_window(
        schedule.longest_gap(),
        flexible_window_minutes=schedule.flexible_window_minutes,
        margin_minutes=schedule.alarm_margin_minutes,
    )


def heartbeat_evaluation(window: timedelta) -> Evaluation | None:
    """The alarm that sees every heartbeat of the last ``window``: five-minute periods while they fit CloudWatch's
    one-day range, hours up to its seven days; ``None`` beyond (the freshness check watches those)."""
    seconds = math.ceil(window.total_seconds())
    for period, limit in (
        (SHORT_PERIOD_SECONDS, MAX_SHORT_PERIOD_RANGE_SECONDS),
        (LONG_PERIOD_SECONDS, MAX_EVALUATION_RANGE_SECONDS),
    ):
        evaluation = Evaluation(period, math.ceil(seconds / period) + 1)
        if evaluation.period_seconds * evaluation.evaluation_periods <= limit:
            return evaluation
    return None


def refused_by_cloudwatch(evaluation: Evaluation) -> str | None:
    """Why PutMetricAlarm would refuse ``evaluation``, or None."""
    period, periods = evaluation.period_seconds, evaluation.evaluation_periods
    if period not in (10, 20, 30) and (period <= 0 or period % 60):
        return f"Period {period} is not 10, 20, 30 or a multiple of 60"
    if periods < 1:
        return f"EvaluationPeriods {periods} is under 1"
    limit = MAX_SHORT_PERIOD_RANGE_SECONDS if period < LONG_PERIOD_SECONDS else MAX_EVALUATION_RANGE_SECONDS
    if period * periods > limit:
        return f"Period x EvaluationPeriods = {period * periods} s is over {limit} s"
    return None


@dataclass(frozen=True)
class Heartbeat:
    """One piece of good news to wait for: the metric, its dimensions, how long it may stay away, and what its
    absence means (the alarm's description)."""

    construct_id: str
    metric_name: str
    dimensions: dict[str, str]
    window: timedelta
    description: str


def plan_heartbeats(plans: PlansFile) -> list[Heartbeat]:
    """One heartbeat per plan source: its commits' ``RecoveryPointCreated``."""
    beats: list[Heartbeat] = []
    for plan in plans.plans:
        window = schedule_window(plan.schedule)
        for index, source in enumerate(plan.sources):
            beats.append(
                Heartbeat(
                    construct_id=_construct_id(plan, index),
                    metric_name=RECOVERY_POINT_CREATED,
                    dimensions=recovery_point_dimensions(c.SERVICE_NAME, plan.name, source.url),
                    window=window,
                    description=(
                        f"Vaultline plan {plan.name}: no new recovery point of {source.url} for {_hours(window)} "
                        f"(its schedule {plan.schedule.expression} plus a margin)"
                    ),
                )
            )
    return beats


def maintenance_heartbeats(expression: str, *, drill: bool) -> list[Heartbeat]:
    """The scheduled verify's (and, when drills are on, the drill's) completions, within the maintenance schedule's
    longest gap plus a margin."""
    # StackSettings validated the expression as a plan's schedule (bounded included).
    window = alarm_window(Schedule(expression=expression).longest_gap())
    beats = [
        Heartbeat(
            "VerifyFreshness",
            VERIFY_COMPLETED,
            service_dimensions(c.SERVICE_NAME),
            window,
            f"Vaultline maintenance: no verify completed for {_hours(window)} (schedule {expression} plus a margin)",
        )
    ]
    if drill:
        beats.append(
            Heartbeat(
                "DrillFreshness",
                DRILL_COMPLETED,
                service_dimensions(c.SERVICE_NAME),
                window,
                f"Vaultline maintenance: no restore drill completed for {_hours(window)} (schedule {expression} "
                "plus a margin)",
            )
        )
    return beats


def _construct_id(plan: Plan, index: int) -> str:
    return "".join(part.title() for part in schedule_name(plan, index).split("-")) + "Freshness"


def _hours(window: timedelta) -> str:
    hours = math.ceil(window.total_seconds() / 3600)
    return f"{hours} hours" if hours < 72 else f"{hours / 24:.1f} days"


class Freshness(Construct):
    """The heartbeat alarms, and (when a window outlasts an alarm's range) the freshness check and its schedule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        heartbeats: list[Heartbeat],
        topic: sns.ITopic,
        check: lambda_.Function,
        dead_letters: sqs.IQueue,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.alarms: list[cw.Alarm] = []
        self.metrics: list[cw.IMetric] = []
        checked: list[WatchedMetric] = []
        for beat in heartbeats:
            evaluation = heartbeat_evaluation(beat.window)
            if evaluation is None:
                seconds = math.ceil(beat.window.total_seconds())
                if seconds > MAX_CHECKED_WINDOW_SECONDS:
                    raise FreshnessError(
                        f"{beat.description}: a window of {_hours(beat.window)} outlasts the 455 days CloudWatch keeps "
                        "hourly data, so no alarm can watch it; back up more often"
                    )
                checked.append(WatchedMetric(name=beat.metric_name, dimensions=beat.dimensions, window_seconds=seconds))
                evaluation = Evaluation(LONG_PERIOD_SECONDS, CHECK_EVALUATION_PERIODS)
                name = beat.metric_name + "InWindow"
            else:
                name = beat.metric_name
            metric = self._metric(name, beat, evaluation)
            self.metrics.append(metric)
            self.alarms.append(self._alarm(beat, metric, evaluation, topic))
        # The check may always read metrics (it is deployed in every stack, and runs on a schedule only if needed).
        check.add_to_role_policy(iam.PolicyStatement(actions=["cloudwatch:GetMetricData"], resources=["*"]))
        acknowledge(
            check,
            "AwsSolutions-IAM5",
            "cloudwatch:GetMetricData has no resource-level permissions (Resource::*).",
            findings=["Resource::*"],
        )
        self.check_schedule = self._check(checked, check, dead_letters, key) if checked else None

    @staticmethod
    def _metric(name: str, beat: Heartbeat, evaluation: Evaluation) -> cw.Metric:
        return cw.Metric(
            namespace=c.METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map=beat.dimensions,
            statistic="Sum",
            period=Duration.seconds(evaluation.period_seconds),
        )

    def _alarm(self, beat: Heartbeat, metric: cw.Metric, evaluation: Evaluation, topic: sns.ITopic) -> cw.Alarm:
        refused = refused_by_cloudwatch(evaluation)
        if refused:  # heartbeat_evaluation only makes what CloudWatch takes; this says so if it ever does not
            raise FreshnessError(f"{beat.description}: CloudWatch would refuse the alarm: {refused}")
        alarm = cw.Alarm(
            self,
            beat.construct_id,
            alarm_description=beat.description,
            metric=metric,
            threshold=1,
            evaluation_periods=evaluation.evaluation_periods,
            datapoints_to_alarm=evaluation.evaluation_periods,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            # Silence is the news: no data point is a missing heartbeat.
            treat_missing_data=cw.TreatMissingData.BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(topic))
        return alarm

    def _check(
        self, watched: list[WatchedMetric], check: lambda_.Function, dead_letters: sqs.IQueue, key: kms.IKey
    ) -> scheduler.CfnSchedule:
        role = iam.Role(
            self,
            "CheckRole",
            description="Assumed by EventBridge Scheduler to run the Vaultline freshness check",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": check.stack.account}},
            ),
        )
        role.add_to_policy(iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[check.function_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[dead_letters.queue_arn]))
        role.add_to_policy(iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn]))
        event = FreshnessCheckEvent(namespace=c.METRICS_NAMESPACE, watched=watched)
        return scheduler.CfnSchedule(
            self,
            "CheckSchedule",
            name=c.FRESHNESS_SCHEDULE_NAME,
            description="Vaultline freshness check: heartbeats over windows longer than a CloudWatch alarm's",
            schedule_expression=CHECK_EXPRESSION,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=check.function_arn,
                role_arn=role.role_arn,
                input=json.dumps(event.model_dump(mode="json"), sort_keys=True),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=c.SCHEDULE_MAX_EVENT_AGE_SECONDS,
                    maximum_retry_attempts=c.SCHEDULE_RETRY_ATTEMPTS,
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=dead_letters.queue_arn),
            ),
        )


__all__ = [
    "Evaluation",
    "Freshness",
    "FreshnessError",
    "Heartbeat",
    "alarm_window",
    "heartbeat_evaluation",
    "maintenance_heartbeats",
    "plan_heartbeats",
    "refused_by_cloudwatch",
    "schedule_window",
]
