"""A vault in its own account (AWS Backup's logically air-gapped vault): the protected account may only add to it.

The vault account's stack (``infra.vault_account.VaultAccountStack``) owns the vault bucket (Object Lock on), its
key, and the bucket and key policies that decide what the protected account's roles may do there; the protected
account's ``VaultlineStack`` writes to it through :class:`ImportedVault`. The rules, each a statement of the bucket
policy:

- reads: ``GetObject`` and ``ListBucket`` (restores, dedup, the parent's manifest);
- adds: ``PutObject`` under ``data/``, ``index/`` and ``recovery-points/`` only with ``If-None-Match: *``
  (``s3:if-none-match``), so never over an existing object; with retention, only in the vault's mode and no longer
  than its lock days (``s3:object-lock-mode``, ``s3:object-lock-remaining-retention-days``);
- scratch: ``staging/`` and ``locks/`` may be written, overwritten and deleted (work lists, map results, the
  shared lock a backup takes and refreshes): nothing a recovery point needs lives there;
- never: deleting anything else, bypassing governance retention, legal holds, writing ``config``,
  ``object-lock``, ``keys/``, ``holds/`` or the index generations, and any change to the bucket's configuration
  (policy, Object Lock, versioning, lifecycle, encryption, replication, ACLs).

Every principal of the protected account is held to them (a Deny on the account), and only the protected stack's
roles (``<stack>-*``) are granted anything: the account's administrator can still assume or edit those roles, so
it can add as they can, and no more (docs/security.md). Deletes are the vault account's: its maintenance role
(:class:`MaintenanceRole`) forgets and prunes what Object Lock no longer holds; no one but the vault account's
root user may bypass a GOVERNANCE retention, and nobody deletes ``config`` or ``object-lock``. The vault account's
stack (infra/vault_account.py) runs that maintenance on a schedule, every role of it bounded by what the
maintenance role may do to the vault (:class:`MaintenanceBoundary`).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.air_gap_settings import AirGapSettings
from infra.nag import acknowledge
from infra.settings import StackSettings
from infra.vault import Vault
from vaultline.repository import layout

# What the protected account adds, once each, and what it may overwrite and delete.
ADD_ONLY_PREFIXES = layout.LOCKED_PREFIXES
SCRATCH_PREFIXES = (layout.STAGING_PREFIX, layout.LOCK_PREFIX)
# Objects only the vault account writes: the vault's identity, its key slots, legal-hold records, index generations.
VAULT_ACCOUNT_ONLY = (
    layout.CONFIG_KEY,
    layout.OBJECT_LOCK_KEY,
    *(f"{prefix}*" for prefix in (layout.KEYS_PREFIX, layout.HOLDS_PREFIX)),
    *(f"{prefix}*" for prefix in (layout.CATALOG_PREFIX, layout.GENERATION_PREFIX)),
)
# The stack's functions lock by the stack's settings, so they never read the versions of ``object-lock``.
PROTECTED_READ_ACTIONS = ("s3:GetObject", "s3:ListBucket")
PROTECTED_ADD_ACTIONS = ("s3:PutObject", "s3:PutObjectRetention")
SCRATCH_ACTIONS = ("s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
# What destroys or unprotects: never the protected account's, whatever its IAM says.
NEVER_PROTECTED_ACTIONS = (
    "s3:DeleteObjectVersion",
    "s3:BypassGovernanceRetention",
    "s3:PutObjectLegalHold",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:DeleteBucket",
    "s3:PutBucketPolicy",
    "s3:DeleteBucketPolicy",
    "s3:PutBucketObjectLockConfiguration",
    "s3:PutBucketVersioning",
    "s3:PutLifecycleConfiguration",
    "s3:PutEncryptionConfiguration",
    "s3:PutReplicationConfiguration",
    "s3:PutBucketAcl",
    "s3:PutBucketOwnershipControls",
    "s3:PutBucketPublicAccessBlock",
)
# The data key is unwrapped (Decrypt) by every step; SSE-KMS writes need GenerateDataKey, which S3 asks for.
PROTECTED_KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey")
PROTECTED_S3_KEY_ACTIONS = ("kms:GenerateDataKey",)
# The maintenance role: forget, prune, compact, verify and extend retention; never bypass it or lift a hold.
# Versions too: the Object Lock settings in force are folded over every stored version of ``object-lock``
# (vault-format 17.3), which maintenance (lock extension, any command run as this role) reads.
MAINTENANCE_READ_ACTIONS = (
    "s3:GetObject",
    "s3:ListBucket",
    "s3:GetObjectVersion",
    "s3:ListBucketVersions",
    "s3:GetObjectRetention",
    "s3:GetObjectLegalHold",
    "s3:GetBucketObjectLockConfiguration",
)
MAINTENANCE_WRITE_PREFIXES = (
    *layout.LOCKED_PREFIXES,
    layout.CATALOG_PREFIX,
    layout.GENERATION_PREFIX,
    *SCRATCH_PREFIXES,
)
# Writes with a retention date (prune's sweep repacks, compaction), multipart for large packs and map results.
MAINTENANCE_WRITE_ACTIONS = (
    "s3:PutObject",
    "s3:PutObjectRetention",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
)
MAINTENANCE_DELETE_PREFIXES = MAINTENANCE_WRITE_PREFIXES
MAINTENANCE_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


class ImportedVault(Construct):
    """The vault of the vault account, as the protected account's stack sees it: names and ARNs, nothing owned."""

    def __init__(
        self, scope: Construct, construct_id: str, *, settings: StackSettings, air_gap: AirGapSettings
    ) -> None:
        super().__init__(scope, construct_id)
        self._bucket = s3.Bucket.from_bucket_attributes(
            self,
            "Bucket",
            bucket_arn=air_gap.bucket_arn,
            bucket_name=air_gap.bucket_name,
            account=air_gap.vault_account_id,
        )
        self._key = kms.Key.from_key_arn(self, "Key", air_gap.key_arn)
        self._access_logs = s3.Bucket.from_bucket_name(self, "AccessLogs", air_gap.access_log_bucket_name)
        self._mode = settings.object_lock_mode
        self._days = settings.object_lock_retention_days

    @property
    def bucket(self) -> s3.IBucket:
        return self._bucket

    @property
    def key(self) -> kms.IKey:
        return self._key

    @property
    def access_logs(self) -> s3.IBucket:
        return self._access_logs

    @property
    def object_lock_mode(self) -> str:
        return self._mode

    @property
    def object_lock_days(self) -> int:
        return self._days

    @property
    def creatable(self) -> bool:
        """The vault account initializes the vault (`vaultline init`); the protected account may not write config."""
        return False

    @property
    def url(self) -> str:
        return f"s3://{self._bucket.bucket_name}"

    def arn_finding(self, suffix: str) -> str:
        return f"Resource::{self._bucket.bucket_arn}{suffix}"

    def partition_finding(self, suffix: str) -> str:
        return f"Resource::arn:<AWS::Partition>:s3:::{self._bucket.bucket_name}{suffix}"


class AirGapPolicies(Construct):
    """The bucket and key policy statements of the vault account mode (see the module docstring)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vault: Vault,
        settings: StackSettings,
        air_gap: AirGapSettings,
        protected_stack: str,
    ) -> None:
        super().__init__(scope, construct_id)
        protected = iam.AccountPrincipal(air_gap.protected_account_id)
        roles = {"ArnLike": {"aws:PrincipalArn": air_gap.protected_roles(protected_stack)}}
        bucket = vault.bucket

        def objects(*keys: str) -> list[str]:
            return [bucket.arn_for_objects(key) for key in keys]

        def add(sid: str, effect: iam.Effect, **kwargs: Any) -> None:
            bucket.add_to_resource_policy(iam.PolicyStatement(sid=sid, effect=effect, principals=[protected], **kwargs))

        add(
            "ProtectedStackReads",
            iam.Effect.ALLOW,
            actions=list(PROTECTED_READ_ACTIONS),
            resources=[bucket.bucket_arn, bucket.arn_for_objects("*")],
            conditions=roles,
        )
        add(
            "ProtectedStackAdds",
            iam.Effect.ALLOW,
            actions=list(PROTECTED_ADD_ACTIONS),
            resources=objects(*(f"{prefix}*" for prefix in ADD_ONLY_PREFIXES)),
            conditions=roles,
        )
        add(
            "ProtectedStackScratch",
            iam.Effect.ALLOW,
            actions=list(SCRATCH_ACTIONS),
            resources=objects(*(f"{prefix}*" for prefix in SCRATCH_PREFIXES)),
            conditions=roles,
        )
        add(
            "ProtectedAccountNeverOverwrites",
            iam.Effect.DENY,
            actions=["s3:PutObject"],
            not_resources=objects(*(f"{prefix}*" for prefix in SCRATCH_PREFIXES)),
            conditions={"Null": {"s3:if-none-match": "true"}},
        )
        add(
            "ProtectedAccountNeverWritesTheVaultsOwn",
            iam.Effect.DENY,
            actions=["s3:PutObject", "s3:PutObjectRetention", "s3:DeleteObject"],
            resources=objects(*VAULT_ACCOUNT_ONLY),
        )
        add(
            "ProtectedAccountDeletesOnlyScratch",
            iam.Effect.DENY,
            actions=["s3:DeleteObject"],
            not_resources=objects(*(f"{prefix}*" for prefix in SCRATCH_PREFIXES)),
        )
        add(
            "ProtectedAccountNeverUnprotects",
            iam.Effect.DENY,
            actions=list(NEVER_PROTECTED_ACTIONS),
            resources=[bucket.bucket_arn, bucket.arn_for_objects("*")],
        )
        if settings.object_lock_retention_days:
            add(
                "ProtectedAccountRetentionInTheVaultsTerms",
                iam.Effect.DENY,
                actions=["s3:PutObjectRetention"],
                resources=[bucket.arn_for_objects("*")],
                conditions={"StringNotEquals": {"s3:object-lock-mode": settings.object_lock_mode}},
            )
            add(
                "ProtectedAccountRetentionNoLongerThanTheVaults",
                iam.Effect.DENY,
                actions=["s3:PutObject", "s3:PutObjectRetention"],
                resources=[bucket.arn_for_objects("*")],
                # A day's margin: a write's retain-until is now + lock days, rounded up to whole days here.
                conditions={
                    "NumericGreaterThan": {
                        "s3:object-lock-remaining-retention-days": str(settings.object_lock_retention_days + 1)
                    }
                },
            )
        # Nobody but the vault account's root user bypasses a GOVERNANCE retention (COMPLIANCE: not even root), and
        # nobody deletes the vault's config: without it nothing else can be read.
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheVaultRootBypassesRetention",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:BypassGovernanceRetention"],
                resources=[bucket.arn_for_objects("*")],
                conditions={"StringNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{air_gap.vault_account_id}:root"}},
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="NobodyDeletesTheVaultConfig",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:DeleteObject", "s3:DeleteObjectVersion"],
                resources=objects(layout.CONFIG_KEY, layout.OBJECT_LOCK_KEY),
            )
        )
        # The key: the protected stack's roles unwrap the data key, and S3 encrypts their writes with it.
        vault.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ProtectedStackUnwrapsTheDataKey",
                principals=[protected],
                actions=list(PROTECTED_KEY_ACTIONS),
                resources=["*"],
                conditions=roles,
            )
        )
        vault.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ProtectedStackWritesThroughS3",
                principals=[protected],
                actions=list(PROTECTED_S3_KEY_ACTIONS),
                resources=["*"],
                conditions={**roles, "StringEquals": {"kms:ViaService": f"s3.{air_gap.region}.amazonaws.com"}},
            )
        )


def maintenance_statements(vault: Vault) -> list[iam.PolicyStatement]:
    """What the vault account's maintenance may do to the vault, once: the maintenance role's grants, and the
    vault part of the boundary of every role of the vault account's stack (:class:`MaintenanceBoundary`)."""
    bucket = vault.bucket
    writes = [bucket.arn_for_objects(f"{prefix}*") for prefix in MAINTENANCE_WRITE_PREFIXES]
    deletes = [bucket.arn_for_objects(f"{prefix}*") for prefix in MAINTENANCE_DELETE_PREFIXES]
    return [
        iam.PolicyStatement(
            sid="VaultRead",
            actions=list(MAINTENANCE_READ_ACTIONS),
            resources=[bucket.bucket_arn, bucket.arn_for_objects("*")],
        ),
        iam.PolicyStatement(sid="VaultWrite", actions=list(MAINTENANCE_WRITE_ACTIONS), resources=writes),
        # Lock extension keeps the bounded records of ``object-lock`` locked too (never shorter: S3 refuses that
        # without the bypass, which nobody but the vault account's root has).
        iam.PolicyStatement(
            sid="VaultLockSettingsRetention",
            actions=["s3:PutObjectRetention"],
            resources=[bucket.arn_for_objects(layout.OBJECT_LOCK_KEY)],
        ),
        iam.PolicyStatement(sid="VaultDelete", actions=["s3:DeleteObject"], resources=deletes),
        iam.PolicyStatement(sid="VaultKey", actions=list(MAINTENANCE_KEY_ACTIONS), resources=[vault.key.key_arn]),
    ]


def _acknowledge_vault_wildcards(construct: Construct, vault: Vault) -> None:
    acknowledge(
        construct,
        "AwsSolutions-IAM5",
        "Maintenance reads and deletes content-addressed packs, index objects and manifests under the vault's "
        "prefixes, names that cannot be listed in advance; Object Lock keeps what is still retained.",
        findings=[
            vault.arn_finding("/*"),
            *(vault.arn_finding(f"/{prefix}*") for prefix in MAINTENANCE_WRITE_PREFIXES),
        ],
    )


class MaintenanceRole(Construct):
    """The vault account's maintenance role: forget, prune, compact, verify, extend retention (the CLI's
    maintenance commands assume it; the vault account's Maintenance state machine runs as roles no larger, see
    :class:`MaintenanceBoundary`). It cannot bypass retention, lift a legal hold, delete the config or change the
    bucket."""

    def __init__(self, scope: Construct, construct_id: str, *, vault: Vault) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.AccountRootPrincipal(),
            description="Vaultline vault maintenance: forget, prune, compact, verify, extend Object Lock retention",
        )
        for statement in maintenance_statements(vault):
            self.role.add_to_policy(statement)
        _acknowledge_vault_wildcards(self.role, vault)


class MaintenanceBoundary(Construct):
    """The permissions boundary of every role of the vault account's stack (:meth:`apply`): on the vault, no role
    there may do more than the maintenance role (:func:`maintenance_statements`); elsewhere (logs, traces,
    metrics, the drill's scratch bucket, invoking the functions, the schedule's queue) each role keeps exactly its
    own least-privilege grants. So the Maintenance state machine and its functions are the maintenance role cut
    down per step, whatever a later grant of CDK's or ours adds to them."""

    def __init__(self, scope: Construct, construct_id: str, *, vault: Vault) -> None:
        super().__init__(scope, construct_id)
        bucket = vault.bucket
        self.policy = iam.ManagedPolicy(
            self,
            "Default",
            description="Vaultline vault account: no role may do more to the vault than its maintenance role",
            statements=[
                *maintenance_statements(vault),
                iam.PolicyStatement(
                    sid="OutsideTheVault",
                    actions=["*"],
                    not_resources=[bucket.bucket_arn, bucket.arn_for_objects("*"), vault.key.key_arn],
                ),
            ],
        )
        _acknowledge_vault_wildcards(self.policy, vault)
        acknowledge(
            self.policy,
            "AwsSolutions-IAM5",
            "A permissions boundary grants nothing: outside the vault it leaves each role to its own least-privilege "
            "policies (Action::*), and on the vault it caps every role at the maintenance role's grants.",
            findings=["Action::*"],
        )

    def apply(self, scope: Construct) -> None:
        """Bound every role created under ``scope`` (CDK sets each one's PermissionsBoundary)."""
        iam.PermissionsBoundary.of(scope).apply(self.policy)


OUTPUT_MAINTENANCE_ROLE = "MaintenanceRoleArn"
