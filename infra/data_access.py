"""What the plans let the functions do outside the vault: read their sources (S3 buckets, inventories, DynamoDB
tables), restore into the configured targets, and reach the plans' copy targets. Only the stack that runs backups
and restores has these grants; the vault account's maintenance has none of them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import constants as c
from infra.functions import OBJECT_LOCK_READ_ACTIONS, Functions
from infra.nag import acknowledge
from infra.registry import (
    BACKUP_PREPARE,
    BACKUP_WORKER,
    DDB_BACKUP_PREPARE,
    DDB_EXPORT_STATUS,
    DDB_RESTORE_PREPARE,
    DDB_RESTORE_WORKER,
    DDB_SEGMENT_WORKER,
    RESTORE_PREPARE,
    RESTORE_WORKER,
    FunctionSpec,
)
from vaultline.plans import DynamoDBSourcePlan, InventoryReport, PlansFile, S3SourcePlan
from vaultline.repository import layout

# Listing takes the plan's prefix (condition s3:prefix); reading the versioning status has no prefix.
S3_BUCKET_LIST_ACTIONS = ("s3:ListBucket", "s3:ListBucketVersions")
S3_BUCKET_STATUS_ACTIONS = ("s3:GetBucketVersioning",)
S3_OBJECT_READ_ACTIONS = (
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
)
TARGET_WRITE_ACTIONS = ("s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload")
# DynamoDB: Prepare describes a source table (what DescribeTable, TTL, PITR and tags say goes into the recovery
# point), workers scan it; export mode starts and polls an ExportTableToPointInTime into the vault's staging area.
TABLE_DESCRIBE_ACTIONS = (
    "dynamodb:DescribeTable",
    "dynamodb:DescribeTimeToLive",
    "dynamodb:DescribeContinuousBackups",
    "dynamodb:ListTagsOfResource",
)
TABLE_SCAN_ACTIONS = ("dynamodb:Scan",)
TABLE_EXPORT_ACTIONS = ("dynamodb:ExportTableToPointInTime",)
TABLE_EXPORT_STATUS_ACTIONS = ("dynamodb:DescribeExport",)
# A restore creates the target from the saved description (with its tags), switches TTL and PITR back on, and writes.
TABLE_RESTORE_PREPARE_ACTIONS = (
    "dynamodb:CreateTable",
    "dynamodb:DescribeTable",
    "dynamodb:UpdateTimeToLive",
    "dynamodb:UpdateContinuousBackups",
    "dynamodb:TagResource",
)
TABLE_RESTORE_WRITE_ACTIONS = ("dynamodb:BatchWriteItem",)
# Everything under the vault root but staging/, where a restore worker leaves its batch summaries. A restore
# target pattern may match the vault's own bucket: its roles are denied these outright (and the engine refuses).
VAULT_OWN_KEYS = (
    *layout.CREATED_ONCE,
    *(f"{prefix}*" for prefix in (*layout.LOCKED_PREFIXES, layout.LOCK_PREFIX, layout.KEYS_PREFIX)),
)
S3_WRITE_ACTIONS = (
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectAcl",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
)
# Decrypting (reads) and generating data keys (writes) of SSE-KMS objects, only as S3 does it for the object.
S3_KMS_READ_ACTIONS = ("kms:Decrypt",)
S3_KMS_WRITE_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")


class DataAccess(Construct):
    """The grants of ``functions`` on the plans' sources, the restore targets and the copy targets (no resources of
    its own: the statements join the functions' roles)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        functions: Functions,
        plans: PlansFile,
        restore_targets: Sequence[str],
        restore_target_tables: Sequence[str] = c.DEFAULT_RESTORE_TARGET_TABLES,
    ) -> None:
        super().__init__(scope, construct_id)
        self._functions = functions
        self._vault = functions.vault
        # The IAM5 findings (wildcard resources) these grants create on purpose, as cdk-nag names them.
        self.wildcard_findings: list[str] = ["Resource::*"]
        self._grant_sources(plans)
        self._grant_table_sources(plans)
        self._grant_restore_targets(restore_targets)
        self._grant_restore_target_tables(restore_target_tables)
        self._grant_copy_targets(plans)
        acknowledge(
            functions,
            "AwsSolutions-IAM5",
            "Object-level wildcards are scoped to one bucket each: source objects are whatever the plan's prefix "
            "holds, restore targets are the configured bucket patterns, copy targets hold content-addressed names, "
            "and the KMS grants on Resource::* for SSE-KMS sources, targets and tables are usable only through S3 or "
            "DynamoDB (kms:ViaService) for the planned objects (kms:EncryptionContext:aws:s3:arn).",
            findings=self.wildcard_findings,
        )

    def __getitem__(self, spec: FunctionSpec) -> lambda_.Function:
        return self._functions[spec]

    def _grant_sources(self, plans: PlansFile) -> None:
        """Prepare lists the sources, workers read their objects; read-only, and only the plans' buckets."""
        prepare, worker = self[BACKUP_PREPARE], self[BACKUP_WORKER]
        buckets: dict[str, set[str]] = {}
        roles: set[str] = set()
        inventories: dict[tuple[str, str], InventoryReport] = {}
        for plan in plans.plans:
            for source in plan.sources:
                if not isinstance(source, S3SourcePlan):
                    continue
                if source.role_arn:
                    # Cross-account: the source account's role grants the reads (its inventory's too); we may
                    # only assume it.
                    roles.add(source.role_arn)
                else:
                    buckets.setdefault(source.bucket, set()).add(source.prefix)
                    if source.inventory:
                        inventories[(source.bucket, source.inventory.destination.rstrip("/"))] = source.inventory
        stack = Stack.of(self)
        for (bucket, _), report in sorted(inventories.items(), key=lambda item: item[0]):
            self._grant_inventory(prepare, bucket, report)
        for bucket, prefixes in sorted(buckets.items()):
            bucket_arn = stack.format_arn(service="s3", region="", account="", resource=bucket)
            # An empty prefix means the whole bucket; otherwise only the planned prefixes.
            patterns = ["*"] if "" in prefixes else sorted(f"{p}*" for p in prefixes)
            # Listing only under the planned prefixes (the listing asks with the plan's prefix, s3:prefix).
            listing = None if "" in prefixes else {"StringLike": {"s3:prefix": patterns}}
            prepare.add_to_role_policy(
                iam.PolicyStatement(
                    sid=_sid("SourceList", bucket),
                    actions=list(S3_BUCKET_LIST_ACTIONS),
                    resources=[bucket_arn],
                    conditions=listing,
                )
            )
            prepare.add_to_role_policy(
                iam.PolicyStatement(
                    sid=_sid("SourceStatus", bucket), actions=list(S3_BUCKET_STATUS_ACTIONS), resources=[bucket_arn]
                )
            )
            self.wildcard_findings += [f"Resource::arn:<AWS::Partition>:s3:::{bucket}/{p}" for p in patterns]
            worker.add_to_role_policy(
                iam.PolicyStatement(
                    sid=_sid("SourceRead", bucket),
                    actions=list(S3_OBJECT_READ_ACTIONS),
                    resources=[f"{bucket_arn}/{pattern}" for pattern in patterns],
                )
            )
            # Without ListBucket, S3 answers a GET of a key deleted since Prepare listed it with 403, not 404:
            # the worker could not tell a vanished object from a denied one.
            worker.add_to_role_policy(
                iam.PolicyStatement(
                    sid=_sid("SourceKeyCheck", bucket),
                    actions=["s3:ListBucket"],
                    resources=[bucket_arn],
                    conditions=listing,
                )
            )
            # SSE-KMS source objects: S3 decrypts with the object's key on the worker's behalf, for this bucket's
            # planned objects only (the encryption context is the object's ARN, or the bucket's with bucket keys).
            worker.add_to_role_policy(
                iam.PolicyStatement(
                    sid=_sid("SourceKey", bucket),
                    actions=list(S3_KMS_READ_ACTIONS),
                    resources=["*"],
                    conditions=_via_s3(stack, [bucket_arn, *(f"{bucket_arn}/{pattern}" for pattern in patterns)]),
                )
            )
        if roles:
            for function in (prepare, worker):
                function.add_to_role_policy(
                    iam.PolicyStatement(sid="SourceRoles", actions=["sts:AssumeRole"], resources=sorted(roles))
                )

    def _grant_inventory(self, prepare: lambda_.Function, bucket: str, report: InventoryReport) -> None:
        """Prepare finds the newest report of a source's inventory (a delimiter listing of its folder) and reads its
        manifest and data files: read-only, and only that configuration's folder for that source bucket."""
        destination, folder = report.folder(bucket)
        destination_arn = Stack.of(self).format_arn(service="s3", region="", account="", resource=destination)
        name = f"{destination}-{folder}"
        prepare.add_to_role_policy(
            iam.PolicyStatement(
                sid=_sid("InventoryList", name),
                actions=["s3:ListBucket"],
                resources=[destination_arn],
                conditions={"StringLike": {"s3:prefix": [f"{folder}*"]}},
            )
        )
        prepare.add_to_role_policy(
            iam.PolicyStatement(
                sid=_sid("InventoryRead", name), actions=["s3:GetObject"], resources=[f"{destination_arn}/{folder}*"]
            )
        )
        self.wildcard_findings.append(f"Resource::arn:<AWS::Partition>:s3:::{destination}/{folder}*")

    def _grant_table_sources(self, plans: PlansFile) -> None:
        """Prepare describes the plans' tables, segment workers scan them; export mode may export them and poll the
        export. Read-only, and only the planned tables (in their region); a table behind a role: AssumeRole only."""
        stack = Stack.of(self)
        prepare, worker, status = self[DDB_BACKUP_PREPARE], self[DDB_SEGMENT_WORKER], self[DDB_EXPORT_STATUS]
        tables: dict[str, DynamoDBSourcePlan] = {}
        roles: set[str] = set()
        for plan in plans.plans:
            for source in plan.sources:
                if isinstance(source, DynamoDBSourcePlan):
                    if source.role_arn:
                        roles.add(source.role_arn)
                    else:
                        tables.setdefault(source.url, source)
        exported = False
        for source in tables.values():
            table_arn = stack.format_arn(
                service="dynamodb", region=source.region, resource="table", resource_name=source.table
            )
            sid = _sid("Table", f"{source.table}-{source.region}" if source.region else source.table)
            prepare.add_to_role_policy(
                iam.PolicyStatement(sid=f"{sid}Describe", actions=list(TABLE_DESCRIBE_ACTIONS), resources=[table_arn])
            )
            worker.add_to_role_policy(
                iam.PolicyStatement(sid=f"{sid}Scan", actions=list(TABLE_SCAN_ACTIONS), resources=[table_arn])
            )
            if source.mode == "export":
                exported = True
                prepare.add_to_role_policy(
                    iam.PolicyStatement(sid=f"{sid}Export", actions=list(TABLE_EXPORT_ACTIONS), resources=[table_arn])
                )
                status.add_to_role_policy(
                    iam.PolicyStatement(
                        sid=f"{sid}ExportStatus",
                        actions=list(TABLE_EXPORT_STATUS_ACTIONS),
                        resources=[f"{table_arn}/export/*"],
                    )
                )
                region = source.region or "<AWS::Region>"
                self.wildcard_findings.append(
                    f"Resource::arn:<AWS::Partition>:dynamodb:{region}:<AWS::AccountId>:table/{source.table}/export/*"
                )
        if exported:
            # DynamoDB writes the export's files into the vault's staging area with the caller's permissions.
            prepare.add_to_role_policy(
                iam.PolicyStatement(
                    sid="TableExportWrite",
                    actions=["s3:PutObjectAcl"],
                    resources=[self._vault.bucket.arn_for_objects(f"{c.STAGING_PREFIX}*")],
                )
            )
        if roles:
            for function in (prepare, worker, status):
                function.add_to_role_policy(
                    iam.PolicyStatement(sid="TableSourceRoles", actions=["sts:AssumeRole"], resources=sorted(roles))
                )

    def _grant_restore_target_tables(self, patterns: Iterable[str]) -> None:
        """DynamoDB restores create (or check) and write only tables matching the configured patterns."""
        stack = Stack.of(self)
        patterns = list(patterns)
        tables = [stack.format_arn(service="dynamodb", resource="table", resource_name=p) for p in patterns]
        self.wildcard_findings += [
            f"Resource::arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/{p}"
            for p in patterns
            if "*" in p or "?" in p
        ]
        self[DDB_RESTORE_PREPARE].add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetTables", actions=list(TABLE_RESTORE_PREPARE_ACTIONS), resources=tables
            )
        )
        # A saved description may name a customer-managed key: DynamoDB describes it and takes a grant on it for
        # the new table, on the function's behalf (GrantIsForAWSResource exists only on CreateGrant).
        via_dynamodb = {"kms:ViaService": f"dynamodb.{stack.region}.amazonaws.com"}
        self[DDB_RESTORE_PREPARE].add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetTableKeyDescribe",
                actions=["kms:DescribeKey"],
                resources=["*"],
                conditions={"StringEquals": via_dynamodb},
            )
        )
        self[DDB_RESTORE_PREPARE].add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetTableKeyGrant",
                actions=["kms:CreateGrant"],
                resources=["*"],
                conditions={"StringEquals": via_dynamodb, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        self[DDB_RESTORE_WORKER].add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetTableWrite", actions=list(TABLE_RESTORE_WRITE_ACTIONS), resources=tables
            )
        )

    def _grant_restore_targets(self, patterns: Iterable[str]) -> None:
        stack = Stack.of(self)
        patterns = list(patterns)
        buckets = [stack.format_arn(service="s3", region="", account="", resource=p) for p in patterns]
        for pattern in patterns:
            findings = [f"{pattern}/*"] + ([pattern] if "*" in pattern else [])
            self.wildcard_findings += [f"Resource::arn:<AWS::Partition>:s3:::{finding}" for finding in findings]
        # HeadBucket (a target must exist before anything is written) needs s3:ListBucket.
        for function in (self[RESTORE_PREPARE], self[RESTORE_WORKER]):
            function.add_to_role_policy(
                iam.PolicyStatement(sid="RestoreTargetCheck", actions=["s3:ListBucket"], resources=buckets)
            )
        self[RESTORE_WORKER].add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetWrite",
                actions=list(TARGET_WRITE_ACTIONS),
                resources=[f"{arn}/*" for arn in buckets],
            )
        )
        # --overwrite never / if-changed (the default never) ask HeadObject whether a key is there, and what it holds.
        self[RESTORE_WORKER].add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetHead", actions=["s3:GetObject"], resources=[f"{arn}/*" for arn in buckets]
            )
        )
        # SSE-KMS targets: S3 generates the object's data key (and decrypts it for multipart parts) for the
        # worker, for objects of the target patterns only.
        self[RESTORE_WORKER].add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetKey",
                actions=list(S3_KMS_WRITE_ACTIONS),
                resources=["*"],
                conditions=_via_s3(stack, [*buckets, *(f"{arn}/*" for arn in buckets)]),
            )
        )
        # The patterns may match the vault's own buckets (CloudFormation names them after the stack): whatever
        # they match, a restore never writes the vault's objects or its access logs (the engine refuses too).
        vault, access_logs = self._vault.bucket, self._vault.access_logs
        for function in (self[RESTORE_PREPARE], self[RESTORE_WORKER]):
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="RestoreNeverIntoTheVault",
                    effect=iam.Effect.DENY,
                    actions=list(S3_WRITE_ACTIONS),
                    resources=[vault.arn_for_objects(key) for key in VAULT_OWN_KEYS]
                    + [access_logs.arn_for_objects("*")],
                )
            )

    def _grant_copy_targets(self, plans: PlansFile) -> None:
        """The Copy steps reach each plan's ``copy_to`` vault: by assuming its role (only the roles named; what the
        role may do is the target account's to grant), or, when none is named, by grants on exactly that bucket and
        prefix: read (listing the bucket unconditioned: a HeadObject of a missing key is a 404, which Prepare's "is it
        there already" relies on, only with s3:ListBucket that no s3:prefix condition narrows), the writes and deletes
        each step's spec lists, and reading Object Lock state where it forgets.
        The target's data key is unwrapped with the role's KMS client, or, without a role, under the stack's vault
        key grant (a target in this account without a role shares the vault key)."""
        targets = [plan.copy_to for plan in plans.plans if plan.copy_to is not None]
        roles = sorted({t.role_arn for t in targets if t.role_arn})
        direct = sorted({(t.bucket, t.prefix) for t in targets if not t.role_arn})
        for spec in self._functions.specs:
            if not spec.copies:
                continue
            function = self[spec]
            if roles:
                function.add_to_role_policy(
                    iam.PolicyStatement(sid="CopyTargetRoles", actions=["sts:AssumeRole"], resources=roles)
                )
            for bucket, prefix in direct:
                root = f"{prefix.rstrip('/')}/" if prefix else ""
                arn = Stack.of(self).format_arn(service="s3", region="", account="", resource=bucket)
                shown = f"Resource::arn:<AWS::Partition>:s3:::{bucket}/{root}"
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid=_sid("CopyTargetList", bucket),
                        actions=["s3:ListBucket"],
                        resources=[arn],
                    )
                )
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid=_sid("CopyTargetRead", bucket), actions=["s3:GetObject"], resources=[f"{arn}/{root}*"]
                    )
                )
                # Every write into the target asks its Object Lock settings (the versions of one key), as the
                # vault's own steps do (VaultObjectLockSettings): without these the first pack write is refused.
                settings_key = f"{root}{layout.OBJECT_LOCK_KEY}"
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid=_sid("CopyTargetLockSettings", bucket),
                        actions=["s3:ListBucketVersions"],
                        resources=[arn],
                        conditions={"StringEquals": {"s3:prefix": [settings_key]}},
                    )
                )
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid=_sid("CopyTargetLockSettingsRead", bucket),
                        actions=["s3:GetObjectVersion"],
                        resources=[f"{arn}/{settings_key}"],
                    )
                )
                for sid, actions, prefixes in (
                    ("CopyTargetWrite", ["s3:PutObject", "s3:AbortMultipartUpload"], spec.copy_target_writes),
                    ("CopyTargetDelete", ["s3:DeleteObject"], spec.copy_target_deletes),
                ):
                    if prefixes:
                        function.add_to_role_policy(
                            iam.PolicyStatement(
                                sid=_sid(sid, bucket),
                                actions=actions,
                                resources=[f"{arn}/{root}{p}*" for p in prefixes],
                            )
                        )
                if layout.MANIFEST_PREFIX in spec.copy_target_deletes:
                    function.add_to_role_policy(
                        iam.PolicyStatement(
                            sid=_sid("CopyTargetLockRead", bucket),
                            actions=list(OBJECT_LOCK_READ_ACTIONS),
                            resources=[f"{arn}/{root}{layout.MANIFEST_PREFIX}*"],
                        )
                    )
                self.wildcard_findings.append(f"{shown}*")
                self.wildcard_findings += [
                    f"{shown}{p}*" for p in (*spec.copy_target_writes, *spec.copy_target_deletes)
                ]


def _via_s3(stack: Stack, arns: Sequence[str]) -> dict[str, Any]:
    """Conditions of a KMS grant usable only by S3, for objects (or bucket keys) of the given ARNs."""
    return {
        "StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": list(arns)},
    }


def _sid(prefix: str, bucket: str) -> str:
    """IAM statement ids are alphanumeric."""
    return prefix + "".join(ch for ch in bucket.title() if ch.isalnum())
