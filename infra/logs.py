"""The customer-managed key of every log group (Lambda functions, state machines): logs hold object keys and
errors of backed-up data, so they are encrypted like the vault is."""

from __future__ import annotations

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.keys import customer_key


class LogKey(Construct):
    """A rotated CMK that CloudWatch Logs may use for this account's log groups in this region, and nothing else."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.key = customer_key(self, "Vaultline logs: encryption of the functions' and state machines' log groups")
        log_groups = stack.format_arn(
            service="logs", resource="log-group", resource_name="*", arn_format=ArnFormat.COLON_RESOURCE_NAME
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogs",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups}},
            )
        )

    def log_group(self, scope: Construct, construct_id: str, retention: logs.RetentionDays) -> logs.LogGroup:
        """A log group encrypted with this key, kept on stack deletion (it is the record of what ran)."""
        return logs.LogGroup(
            scope, construct_id, retention=retention, encryption_key=self.key, removal_policy=RemovalPolicy.RETAIN
        )
