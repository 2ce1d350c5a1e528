"""Notifications, alarms and a dashboard: nobody should learn from a restore that the backups stopped."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import constants as c
from infra.keys import customer_key


def notify_outcomes(
    scope: Construct,
    topic: sns.ITopic,
    *,
    machines: list[sfn.IStateMachine],
    machines_named: str,
    detail_types: list[str],
    events_named: str,
) -> tuple[events.Rule, events.Rule]:
    """Send to ``topic`` the executions of ``machines`` that failed, timed out or were aborted (what our own Failed
    event cannot cover: a timeout, a manual stop, or a failure before Abort ran), and our outcome events of
    ``detail_types``. The rules' descriptions name them ``machines_named`` and ``events_named``."""
    topic_target = targets.SnsTopic(topic)
    failures = events.Rule(
        scope,
        "ExecutionFailures",
        description=f"Vaultline {machines_named} executions that failed, timed out or were aborted",
        event_pattern=events.EventPattern(
            source=["aws.states"],
            detail_type=[c.SFN_STATUS_CHANGE],
            detail={
                "status": list(c.SFN_FAILED_STATUSES),
                "stateMachineArn": [machine.state_machine_arn for machine in machines],
            },
        ),
        targets=[topic_target],
    )
    outcomes = events.Rule(
        scope,
        "Outcomes",
        description=f"Vaultline {events_named} outcome events",
        event_pattern=events.EventPattern(source=[c.EVENT_SOURCE], detail_type=detail_types),
        targets=[topic_target],
    )
    return failures, outcomes


def alarm(scope: Construct, construct_id: str, *, description: str, metric: cw.IMetric, topic: sns.ITopic) -> cw.Alarm:
    """An alarm on ``metric`` reaching 1 in one period (no data: not breaching), notifying ``topic``."""
    created = cw.Alarm(
        scope,
        construct_id,
        alarm_description=description,
        metric=metric,
        threshold=1,
        evaluation_periods=1,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
    )
    created.add_alarm_action(cw_actions.SnsAction(topic))
    return created


def vaultline_metric(name: str, period: Duration) -> cw.Metric:
    """A metric the functions publish (Powertools Metrics publish with the service as their one dimension)."""
    return cw.Metric(
        namespace=c.METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": c.SERVICE_NAME},
        statistic="Sum",
        period=period,
    )


def executions_widget(title: str, machine: sfn.StateMachine, period: Duration) -> cw.GraphWidget:
    """A graph of ``machine``'s started, succeeded and failed executions."""
    return cw.GraphWidget(
        title=title,
        left=[
            machine.metric_started(period=period),
            machine.metric_succeeded(period=period),
            machine.metric_failed(period=period),
        ],
    )


class IntegrityAlarm(Construct):
    """Maintenance found vault errors or a restore drill did not restore bit-exact: news even when the run itself
    succeeded. The alarm is this construct's default child (its logical id reads as the construct's)."""

    def __init__(self, scope: Construct, construct_id: str, *, topic: sns.ITopic) -> None:
        super().__init__(scope, construct_id)
        # A metric with no data point in a period makes the whole sum empty: with drills off (no DrillFailures
        # ever), "verify + drill" would never alarm on verify errors. FILL turns a missing point into 0.
        period = Duration.days(1)
        problems = cw.MathExpression(
            expression="FILL(verify, 0) + FILL(drill, 0)",
            using_metrics={
                "verify": vaultline_metric("VerifyErrors", period),
                "drill": vaultline_metric("DrillFailures", period),
            },
            period=period,
            label="Verify errors and failed drills",
        )
        self.alarm = alarm(
            self,
            "Default",
            description="Vaultline maintenance found vault errors or a restore drill failed",
            metric=problems,
            topic=topic,
        )


class NotificationKey(Construct):
    """The CMK of the topic and the schedules' dead-letter queue; the services that publish may use it."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.key = customer_key(self, "Vaultline notifications: SNS topic and scheduler dead-letter queue")
        # EventBridge (rules -> SNS, Scheduler -> SQS) and CloudWatch alarms publish to encrypted destinations
        # only if the key lets them encrypt.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowServicePublishers",
                principals=[
                    iam.ServicePrincipal("events.amazonaws.com"),
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                ],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                # Only on behalf of this account's alarms and rules.
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )


class Observability(Construct):
    """SNS topic for outcomes, the alarm on the schedules' dead letters, each workflow's failure alarm and a
    dashboard; both stacks have one (the vault account's watches its maintenance).

    Every workflow of the stack is watched the same way (:meth:`watch`): an alarm on its failed executions and a
    graph of its executions; the stack hands it each of its state machines, so a new workflow is one more entry
    there. What feeds the topic events is each workflow's :func:`notify_outcomes` (for backups and restores,
    :meth:`notify`). The dashboard (:meth:`add_dashboard`) comes last, once every alarm exists."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        dead_letters: sqs.IQueue,
        notification_email: str | None = None,
        topic_name: str = "Vaultline backup and restore outcomes",
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            display_name=topic_name,
            master_key=key,
            enforce_ssl=True,
        )
        stack = Stack.of(self)
        # CloudWatch alarms publish as cloudwatch.amazonaws.com, on behalf of this account's alarms only (the
        # EventBridge rules below add their own statement through the SnsTopic target).
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarms",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {
                        "aws:SourceArn": stack.format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
        if notification_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(notification_email))
        self.dead_letter_depth = dead_letters.metric_approximate_number_of_messages_visible(period=Duration.minutes(5))
        self.schedule_failed_alarm = alarm(
            self,
            "ScheduleFailedAlarm",
            description="EventBridge Scheduler could not start a Vaultline run (see the dead-letter queue)",
            metric=self.dead_letter_depth,
            topic=self.topic,
        )
        self.failed_alarms: dict[str, cw.Alarm] = {}
        self._executions: list[cw.GraphWidget] = []

    def notify(self, machines: list[sfn.IStateMachine]) -> None:
        """Send the backup and restore ``machines``' failed executions and outcome events to the topic."""
        self.execution_failures, self.outcomes = notify_outcomes(
            self,
            self.topic,
            machines=machines,
            machines_named="state machine",
            detail_types=[c.BACKUP_FAILED, c.RESTORE_FAILED, c.BACKUP_SUCCEEDED, c.RESTORE_SUCCEEDED],
            events_named="backup and restore",
        )

    def watch(self, kind: str, machine: sfn.StateMachine) -> cw.Alarm:
        """Alarm on ``machine``'s failed (timed out, aborted) executions, ``<kind>FailedAlarm``, and graph them."""
        period = Duration.minutes(5)
        failures = cw.MathExpression(
            expression="FILL(failed, 0) + FILL(timed_out, 0) + FILL(aborted, 0)",
            using_metrics={
                "failed": machine.metric_failed(period=period, statistic="Sum"),
                "timed_out": machine.metric_timed_out(period=period, statistic="Sum"),
                "aborted": machine.metric_aborted(period=period, statistic="Sum"),
            },
            period=period,
            label=f"{kind} executions failed, timed out or aborted",
        )
        created = alarm(
            self,
            f"{kind}FailedAlarm",
            description=f"A Vaultline {kind.lower()} execution failed, timed out or was aborted",
            metric=failures,
            topic=self.topic,
        )
        self.failed_alarms[kind] = created
        self._executions.append(executions_widget(f"{kind} executions", machine, Duration.hours(1)))
        return created

    def add_dashboard(
        self, *, workers: list[lambda_.Function], alarms: list[cw.IAlarm], heartbeats: list[cw.IMetric]
    ) -> cw.Dashboard:
        """The dashboard: every watched workflow's executions, every alarm's state (the failure alarms, the
        schedule's, and ``alarms``), the ``heartbeats`` the freshness alarms wait for, the workers."""
        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.days(7))
        everything = [*self.failed_alarms.values(), self.schedule_failed_alarm, *alarms]
        self.dashboard.add_widgets(*self._executions)
        self.dashboard.add_widgets(
            cw.AlarmStatusWidget(title="Alarms", alarms=everything, width=24, height=max(3, 1 + len(everything) // 4))
        )
        period = Duration.hours(1)
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Good news: recovery points, verifies and drills (the freshness alarms wait for these)",
                left=list(heartbeats),
                width=24,
            )
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Worker duration (p90)",
                left=[w.metric_duration(period=period, statistic="p90") for w in workers],
            ),
            cw.GraphWidget(
                title="Worker errors and throttles",
                left=[w.metric_errors(period=period) for w in workers]
                + [w.metric_throttles(period=period) for w in workers],
            ),
            cw.GraphWidget(title="Scheduler dead letters", left=[self.dead_letter_depth]),
        )
        return self.dashboard
