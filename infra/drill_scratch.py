"""The restore drills' scratch bucket: where a drill restores a sampled recovery point, reads it back and cleans up."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.nag import acknowledge, logical_id
from infra.vault import Vault

# A drill item restores into scratch and reads the copy back; the summary deletes it.
ITEM_ACTIONS = ("s3:PutObject", "s3:PutObjectTagging", "s3:GetObject", "s3:AbortMultipartUpload")
SUMMARY_ACTIONS = ("s3:DeleteObject",)


class DrillScratch(Construct):
    """The bucket (its own construct's default child, so its logical id reads as this construct's) and the drill
    function's access to its ``drill-scratch/`` prefix."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vault: Vault,
        item: lambda_.Function,
        summary: lambda_.Function,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Default",
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
        self.url = f"s3://{self.bucket.bucket_name}/{c.DRILL_SCRATCH_PREFIX}"
        self._grant(item, "DrillScratchWrite", ITEM_ACTIONS)
        self._grant(summary, "DrillScratchCleanup", SUMMARY_ACTIONS)

    def _grant(self, function: lambda_.Function, sid: str, actions: tuple[str, ...]) -> None:
        # HeadBucket (the target must exist, a missing key is a 404) and listing what a drill wrote, to clean it up.
        function.add_to_role_policy(
            iam.PolicyStatement(sid="DrillScratchList", actions=["s3:ListBucket"], resources=[self.bucket.bucket_arn])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid=sid,
                actions=list(actions),
                resources=[self.bucket.arn_for_objects(f"{c.DRILL_SCRATCH_PREFIX}/*")],
            )
        )
        acknowledge(
            function,
            "AwsSolutions-IAM5",
            "A restore drill writes and reads back (items) and deletes (summary) the objects of a sampled recovery "
            "point, whose keys are not known in advance, under the drill-scratch/ prefix of its dedicated scratch "
            "bucket only.",
            findings=[f"Resource::<{logical_id(self.bucket)}.Arn>/{c.DRILL_SCRATCH_PREFIX}/*"],
        )
