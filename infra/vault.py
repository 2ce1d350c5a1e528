"""The vault: a versioned, Object-Locked, SSE-KMS bucket and the customer-managed key that protects it."""

from __future__ import annotations

from typing import Protocol

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import constants as c
from infra.keys import customer_key
from infra.nag import acknowledge, logical_id
from infra.settings import StackSettings


class VaultResources(Protocol):
    """What the workflows and functions need of a vault: its own (``Vault``) or another account's
    (``infra.air_gap.ImportedVault``)."""

    @property
    def bucket(self) -> s3.IBucket: ...

    @property
    def key(self) -> kms.IKey: ...

    @property
    def access_logs(self) -> s3.IBucket: ...

    @property
    def object_lock_mode(self) -> str: ...

    @property
    def object_lock_days(self) -> int: ...

    @property
    def creatable(self) -> bool:
        """Whether the stack's first backup may create the vault (write its config), or it exists already."""
        ...

    @property
    def url(self) -> str: ...

    def arn_finding(self, suffix: str) -> str: ...

    def partition_finding(self, suffix: str) -> str: ...


class Vault(Construct):
    """Vault bucket, its CMK (rotated yearly) and the bucket that receives its server access logs.

    Everything here is retained on stack deletion: a backup system that deletes its backups with its stack would be
    a liability, and Object Lock would refuse most deletions anyway.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StackSettings,
        bucket_name: str | None = None,
        access_logs_name: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.object_lock_mode = settings.object_lock_mode
        self.object_lock_days = settings.object_lock_retention_days

        self.key = customer_key(self, "Vaultline vault: SSE-KMS of the vault bucket and wrapping of the vault data key")

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            bucket_name=access_logs_name,
            # S3 server access logging can only deliver to SSE-S3 buckets, not SSE-KMS ones.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            # ACLs off: log delivery is granted by the bucket policy (feature flag serverAccessLogsUseBucketPolicy).
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-logs", expiration=Duration.days(c.ACCESS_LOG_EXPIRATION_DAYS))
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.access_logs,
            "AwsSolutions-S1",
            "This is the access-log bucket of the vault; logging its own access would recurse into itself.",
        )

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            # Named only in the vault-account mode, where the protected account's stack must name it first.
            bucket_name=bucket_name,
            versioned=True,
            # Object Lock can only be enabled when the bucket is created. There is deliberately no default
            # retention: on AWS it applies to every object written, config, locks and staging included, so locks
            # could not be released and staging not cleaned for its whole period. Vaultline sets retention per
            # object on what a recovery point needs (packs, indexes, manifests;
            # vaultline/repository/object_lock.py), for
            # objectLockRetentionDays in objectLockMode (the functions' VAULT_OBJECT_LOCK_* environment).
            object_lock_enabled=True,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            # One data key per bucket instead of one KMS call per object: packs are many and small requests add up.
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="vault/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-staging",
                    prefix=c.STAGING_PREFIX,
                    expiration=Duration.days(c.STAGING_EXPIRATION_DAYS),
                ),
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(settings.noncurrent_version_expiration_days),
                    expired_object_delete_marker=True,
                ),
                s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(c.ABORT_MULTIPART_DAYS),
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    @property
    def creatable(self) -> bool:
        """The stack's own vault is created by its first backup."""
        return True

    def arn_finding(self, suffix: str) -> str:
        """How cdk-nag names a grant on the vault's objects (``/*``, ``/staging/*``) in its finding ids."""
        return f"Resource::<{logical_id(self.bucket)}.Arn>{suffix}"

    def partition_finding(self, suffix: str) -> str:
        """The same for the grants CDK writes as ``arn:${Partition}:s3:::${bucket}`` (Step Functions' S3 tasks)."""
        return f"Resource::arn:<AWS::Partition>:s3:::<{logical_id(self.bucket)}>{suffix}"

    @property
    def url(self) -> str:
        """``s3://<bucket>``: the vault URL the engine opens (a token until deploy time)."""
        return f"s3://{self.bucket.bucket_name}"
