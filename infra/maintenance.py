"""The Maintenance state machine (STANDARD), its daily schedule, the drills' scratch bucket, and the backup's
Retention state. The shape is a contract with functions/maintenance_*.py and functions/apply_retention.py and is
described in docs/state-machines.md ("Maintenance"); change both together.

::

    Forget -> PruneEnabled? -> Prune -> Verify -> DrillEnabled? -> Drill -> MaintenanceSucceeded (event) -> Done
       \\___________ any error (Catch States.ALL -> $.error) ____________/
                         -> MaintenanceFailed (event) -> Failed

Every step gets the whole state and stores its result at ``$.results.<step>``; ``$.results`` is the success event's
detail. Prune takes the vault's exclusive lock and raises ``VaultLocked`` while a backup holds the shared one: that
error is retried for about half an hour with backoff, on its own retrier.
"""

from __future__ import annotations

import json

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra import constants as c
from infra.functions import Functions
from infra.nag import acknowledge, logical_id
from infra.settings import StackSettings
from infra.vault import Vault
from vaultline.plans import PlansFile, maintenance_policies
from vaultline.repository import layout

# Object Lock: forget and prune leave objects under retention or legal hold in place and report them as held.
# Reading an object's lock state needs these; without them HeadObject silently omits it.
OBJECT_LOCK_READ_ACTIONS = ("s3:GetObjectRetention", "s3:GetObjectLegalHold")
# What each maintenance function may delete in the vault (vaultline/repository/vault.py, the vault format's prefixes).
FORGET_DELETES = (layout.MANIFEST_PREFIX,)
PRUNE_DELETES = (layout.DATA_PREFIX, layout.INDEX_PREFIX, layout.LOCK_PREFIX)
SCRATCH_ACTIONS = ("s3:PutObject", "s3:PutObjectTagging", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload")


def task_timeout(function: lambda_.IFunction) -> sfn.Timeout:
    """A Lambda task's timeout: the function's own plus a small margin (Lambda reports its timeout first)."""
    timeout = function.timeout if isinstance(function, lambda_.Function) else None
    seconds = (timeout.to_seconds() if timeout else c.FUNCTION_TIMEOUT_MINUTES * 60) + c.TASK_TIMEOUT_MARGIN_SECONDS
    return sfn.Timeout.duration(Duration.seconds(seconds))


def lambda_retry(state: sfn.TaskStateBase, *extra_errors: str) -> None:
    """Retry the Lambda service's transient errors (and our own retryable one) with full jitter."""
    state.add_retry(
        errors=[*c.LAMBDA_TRANSIENT_ERRORS, *extra_errors, c.RETRYABLE_ERROR],
        interval=Duration.seconds(c.RETRY_INTERVAL_SECONDS),
        backoff_rate=c.RETRY_BACKOFF_RATE,
        max_attempts=c.RETRY_MAX_ATTEMPTS,
        jitter_strategy=sfn.JitterType.FULL,
    )


def locked_retry(state: sfn.TaskStateBase) -> None:
    """Wait out a conflicting vault lock (``VaultLocked``, raised under its own name): about half an hour with
    backoff. Every step that takes a vault lock (prune's exclusive one, the Prepare steps' shared one) has it."""
    state.add_retry(
        errors=[c.VAULT_LOCKED_ERROR],
        interval=Duration.seconds(c.LOCKED_RETRY_INTERVAL_SECONDS),
        backoff_rate=c.LOCKED_RETRY_BACKOFF_RATE,
        max_attempts=c.LOCKED_RETRY_MAX_ATTEMPTS,
        jitter_strategy=sfn.JitterType.FULL,
    )


def _invoke(scope: Construct, state_id: str, function: lambda_.IFunction, result_path: str) -> tasks.LambdaInvoke:
    """A direct invoke (whole state in, the function's return value to ``result_path``) with the Lambda retries."""
    task = tasks.LambdaInvoke(
        scope,
        state_id,
        lambda_function=function,
        payload_response_only=True,
        result_path=result_path,
        retry_on_service_exceptions=False,
        task_timeout=task_timeout(function),
    )
    lambda_retry(task)
    return task


def retention_state(scope: Construct, function: lambda_.IFunction, next_state: sfn.IChainable) -> tasks.LambdaInvoke:
    """The backup's ``Retention`` state, between Commit and the success event: forget the committed source's
    recovery points that the plan's keep rules (``$.retention``, from ``plan_input``) do not keep; the result goes
    to ``$.retention_result`` (not over the rules: the output still says which rules were applied).

    A failure here never fails the backup, whose recovery point is committed: the error goes to
    ``$.retention_error`` and the execution goes on to ``next_state`` (the next maintenance run forgets them).
    """
    state = _invoke(scope, "Retention", function, "$.retention_result")
    state.add_catch(next_state, errors=[sfn.Errors.ALL], result_path="$.retention_error")
    state.next(next_state)
    return state


def _put_event(scope: Construct, state_id: str, detail_type: str, detail: sfn.TaskInput) -> tasks.EventBridgePutEvents:
    task = tasks.EventBridgePutEvents(
        scope,
        state_id,
        entries=[tasks.EventBridgePutEventsEntry(detail=detail, detail_type=detail_type, source=c.EVENT_SOURCE)],
        result_path=sfn.JsonPath.DISCARD,
    )
    task.add_retry(
        errors=[sfn.Errors.ALL],
        interval=Duration.seconds(c.RETRY_INTERVAL_SECONDS),
        backoff_rate=c.RETRY_BACKOFF_RATE,
        max_attempts=3,
        jitter_strategy=sfn.JitterType.FULL,
    )
    return task


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
        self.forget = functions.by_name["maintenance_forget"]
        self.prune = functions.by_name["maintenance_prune"]
        self.verify = functions.by_name["maintenance_verify"]
        self.drill = functions.by_name["maintenance_drill"]
        self.apply_retention = functions.by_name["apply_retention"]
        self.log_key = functions.log_key

        self.scratch = s3.Bucket(
            self,
            "DrillScratch",
            # Restored copies of backed-up data: encrypted with the vault's own key, as the vault is.
            encryption=s3.BucketEncryption.KMS,
            encryption_key=vault.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=vault.access_logs,
            server_access_logs_prefix=f"{c.DRILL_SCRATCH_PREFIX}/",
            lifecycle_rules=[
                # A drill deletes what it restored; whatever a crashed one left expires the next day.
                s3.LifecycleRule(
                    id="expire-drill-scratch",
                    prefix=f"{c.DRILL_SCRATCH_PREFIX}/",
                    expiration=Duration.days(c.DRILL_SCRATCH_EXPIRATION_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(c.ABORT_MULTIPART_DAYS),
                ),
            ],
            # Only ever holds a drill's short-lived copy; nothing in it is worth keeping after the stack.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.scratch_url = f"s3://{self.scratch.bucket_name}/{c.DRILL_SCRATCH_PREFIX}"

        self._grant(vault)
        self.state_machine = self._state_machine(vault)
        self._schedule(plans, settings, dead_letters, key)
        self._notifications(topic)

    # --- IAM -----------------------------------------------------------------------------------------------
    def _grant(self, vault: Vault) -> None:
        bucket = vault.bucket
        vault_arn = f"<{logical_id(bucket)}.Arn>"
        lock_reads = iam.PolicyStatement(
            sid="VaultObjectLockRead", actions=list(OBJECT_LOCK_READ_ACTIONS), resources=[bucket.arn_for_objects("*")]
        )
        lock_config = iam.PolicyStatement(
            sid="VaultObjectLockConfig", actions=["s3:GetBucketObjectLockConfiguration"], resources=[bucket.bucket_arn]
        )
        deletes = {
            self.forget: FORGET_DELETES,
            self.apply_retention: FORGET_DELETES,
            self.prune: PRUNE_DELETES,
        }
        for function, prefixes in deletes.items():
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="VaultMaintenanceDelete",
                    actions=["s3:DeleteObject"],
                    resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes],
                )
            )
            function.add_to_role_policy(lock_reads)
            function.add_to_role_policy(lock_config)
            acknowledge(
                function,
                "AwsSolutions-IAM5",
                "Forget deletes manifests under recovery-points/, prune deletes packs, index objects and its own "
                "locks under data/, index/ and locks/ of the vault bucket: content-addressed names that cannot be "
                "listed in advance; reading Object Lock state covers every vault object prune may have to keep.",
                findings=[f"Resource::{vault_arn}/{prefix}*" for prefix in prefixes] + [f"Resource::{vault_arn}/*"],
            )

        scratch_arn = f"<{logical_id(self.scratch)}.Arn>"
        # HeadBucket (the target must exist) and listing what a drill wrote, to clean it up.
        self.drill.add_to_role_policy(
            iam.PolicyStatement(sid="DrillScratchList", actions=["s3:ListBucket"], resources=[self.scratch.bucket_arn])
        )
        self.drill.add_to_role_policy(
            iam.PolicyStatement(
                sid="DrillScratchWrite",
                actions=list(SCRATCH_ACTIONS),
                resources=[self.scratch.arn_for_objects(f"{c.DRILL_SCRATCH_PREFIX}/*")],
            )
        )
        acknowledge(
            self.drill,
            "AwsSolutions-IAM5",
            "A restore drill writes, reads back and deletes the objects of a sampled recovery point, whose keys are "
            "not known in advance, under the drill-scratch/ prefix of its dedicated scratch bucket only.",
            findings=[f"Resource::{scratch_arn}/{c.DRILL_SCRATCH_PREFIX}/*"],
        )

    # --- the state machine ---------------------------------------------------------------------------------
    def _state_machine(self, vault: Vault) -> sfn.StateMachine:
        forget = _invoke(self, "Forget", self.forget, "$.results.forget")
        prune = _invoke(self, "Prune", self.prune, "$.results.prune")
        # A running backup holds the vault's shared lock; prune needs it exclusively. Wait for the backup.
        locked_retry(prune)
        verify = _invoke(self, "Verify", self.verify, "$.results.verify")
        drill = _invoke(self, "Drill", self.drill, "$.results.drill")

        succeeded = _put_event(
            self, "MaintenanceSucceeded", c.MAINTENANCE_SUCCEEDED, sfn.TaskInput.from_json_path_at("$.results")
        )
        failed_event = _put_event(self, "MaintenanceFailed", c.MAINTENANCE_FAILED, sfn.TaskInput.from_json_path_at("$"))
        failed = sfn.Fail(
            self,
            "Failed",
            error="MaintenanceFailed",
            cause=f"A maintenance step failed; the '{c.MAINTENANCE_FAILED}' event has the error.",
        )
        failed_event.next(failed)
        for state in (forget, prune, verify, drill):
            state.add_catch(failed_event, errors=[sfn.Errors.ALL], result_path="$.error")

        succeeded.next(sfn.Succeed(self, "Done"))
        drill.next(succeeded)
        verify.next(
            sfn.Choice(self, "DrillEnabled")
            .when(
                sfn.Condition.and_(
                    sfn.Condition.is_present("$.drill.enabled"), sfn.Condition.boolean_equals("$.drill.enabled", True)
                ),
                drill,
            )
            .otherwise(succeeded)
        )
        prune.next(verify)
        forget.next(
            sfn.Choice(self, "PruneEnabled")
            .when(
                sfn.Condition.and_(sfn.Condition.is_present("$.prune"), sfn.Condition.boolean_equals("$.prune", True)),
                prune,
            )
            .otherwise(verify)
        )

        self.log_group = self.log_key.log_group(self, "Logs", logs.RetentionDays.THREE_MONTHS)
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="Vaultline maintenance: forget by the plans' keep rules, prune, verify a subset, restore drill",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(forget),
            timeout=Duration.hours(c.STATE_MACHINE_TIMEOUT_HOURS),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                # Results name recovery points and object keys (drill mismatches); they go to the event, not logs.
                include_execution_data=False,
            ),
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

    # --- the schedule --------------------------------------------------------------------------------------
    def _schedule(self, plans: PlansFile, settings: StackSettings, dead_letters: sqs.IQueue, key: kms.IKey) -> None:
        stack = Stack.of(self)
        self.schedule_role = iam.Role(
            self,
            "ScheduleRole",
            description="Assumed by EventBridge Scheduler to start Vaultline maintenance",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": stack.account}}
            ),
        )
        self.state_machine.grant_start_execution(self.schedule_role)
        self.schedule_role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[dead_letters.queue_arn])
        )
        self.schedule_role.add_to_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[key.key_arn])
        )
        self.input = {
            "policies": maintenance_policies(plans),
            "prune": True,
            "verify": {"parts": c.VERIFY_PARTS},
            "drill": {"enabled": settings.maintenance_drill, "scratch": self.scratch_url},
        }
        self.schedule = scheduler.CfnSchedule(
            self,
            "Schedule",
            name=c.MAINTENANCE_SCHEDULE_NAME,
            description="Vaultline maintenance: forget, prune, verify a subset, optional restore drill",
            schedule_expression=settings.maintenance_schedule,
            schedule_expression_timezone="UTC",
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.state_machine.state_machine_arn,
                role_arn=self.schedule_role.role_arn,
                input=json.dumps(self.input, sort_keys=True),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(
                    maximum_event_age_in_seconds=c.SCHEDULE_MAX_EVENT_AGE_SECONDS,
                    maximum_retry_attempts=c.SCHEDULE_RETRY_ATTEMPTS,
                ),
                dead_letter_config=scheduler.CfnSchedule.DeadLetterConfigProperty(arn=dead_letters.queue_arn),
            ),
        )

    # --- notifications -------------------------------------------------------------------------------------
    def _notifications(self, topic: sns.ITopic) -> None:
        topic_target = targets.SnsTopic(topic)
        events.Rule(
            self,
            "ExecutionFailures",
            description="Vaultline maintenance executions that failed, timed out or were aborted",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[c.SFN_STATUS_CHANGE],
                detail={
                    "status": list(c.SFN_FAILED_STATUSES),
                    "stateMachineArn": [self.state_machine.state_machine_arn],
                },
            ),
            targets=[topic_target],
        )
        events.Rule(
            self,
            "Outcomes",
            description="Vaultline maintenance outcome events",
            event_pattern=events.EventPattern(
                source=[c.EVENT_SOURCE], detail_type=[c.MAINTENANCE_SUCCEEDED, c.MAINTENANCE_FAILED]
            ),
            targets=[topic_target],
        )
        # A damaged vault or a drill that did not restore bit-exact is news even when the run itself succeeded.
        # A metric with no data point in a period makes the whole sum empty: with drills off (no DrillFailures
        # ever), "verify + drill" would never alarm on verify errors. FILL turns a missing point into 0.
        period = Duration.days(1)
        problems = cw.MathExpression(
            expression="FILL(verify, 0) + FILL(drill, 0)",
            using_metrics={
                "verify": self._metric("VerifyErrors", period),
                "drill": self._metric("DrillFailures", period),
            },
            period=period,
            label="Verify errors and failed drills",
        )
        self.integrity_alarm = cw.Alarm(
            self,
            "IntegrityAlarm",
            alarm_description="Vaultline maintenance found vault errors or a restore drill failed",
            metric=problems,
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )
        self.integrity_alarm.add_alarm_action(cw_actions.SnsAction(topic))

    @staticmethod
    def _metric(name: str, period: Duration) -> cw.Metric:
        # Powertools Metrics publish with the service as their one dimension.
        return cw.Metric(
            namespace=c.METRICS_NAMESPACE,
            metric_name=name,
            dimensions_map={"service": c.SERVICE_NAME},
            statistic="Sum",
            period=period,
        )
