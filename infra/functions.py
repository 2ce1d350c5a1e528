"""The Lambda functions of both workflows (S3 and DynamoDB paths), and exactly the permissions each one needs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import constants as c
from infra.logs import LogKey
from infra.nag import acknowledge, logical_id
from infra.settings import StackSettings
from infra.vault import Vault
from vaultline.plans import DynamoDBSourcePlan, PlansFile, S3SourcePlan
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
VAULT_READ_ACTIONS = ("s3:GetObject", "s3:ListBucket")
VAULT_WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
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
# GenerateDataKey: SSE-KMS writes and the vault's own data key; Decrypt: SSE-KMS reads and unwrapping that key.
VAULT_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# The vault objects whose only writer is the step that creates a vault, and only as a conditional create.
VAULT_CREATED_ONCE = layout.CREATED_ONCE
VAULT_CREATORS = ("backup_prepare", "ddb_backup_prepare")
# The steps that write what Object Lock protects (packs, indexes, manifests:
# vaultline/repository/object_lock.py): a put with a retention date needs s3:PutObjectRetention. Prepare writes an
# index for packs a crashed run left unindexed.
LOCK_WRITERS = (
    "backup_prepare",
    "backup_worker",
    "backup_commit",
    "ddb_backup_prepare",
    "ddb_segment_worker",
    "ddb_backup_commit",
    "maintenance_prune",
)
# Everything under the vault root but staging/, where a restore worker leaves its batch summaries. A restore
# target pattern may match the vault's own bucket: its roles are denied these outright (and the engine refuses).
VAULT_OWN_KEYS = (
    *layout.CREATED_ONCE,
    *(f"{prefix}*" for prefix in (*layout.LOCKED_PREFIXES, layout.LOCK_PREFIX)),
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


# The functions a Distributed Map fans out: each gets the reserved concurrency of the settings.
WORKERS = ("backup_worker", "restore_worker", "ddb_segment_worker", "ddb_restore_worker")


@dataclass(frozen=True)
class _Spec:
    memory_mb: int
    timeout_minutes: int
    description: str


SPECS = {
    "backup_prepare": _Spec(c.PREPARE_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Open a recovery point, write work list"),
    "backup_worker": _Spec(c.WORKER_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Chunk, compress, encrypt, pack a batch"),
    "backup_commit": _Spec(c.COMMIT_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Merge worker results, write manifest"),
    "restore_prepare": _Spec(c.PREPARE_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Select objects, write work list"),
    "restore_worker": _Spec(c.WORKER_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Rebuild and write a batch of objects"),
    "restore_finish": _Spec(c.FINISH_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Summarise a restore"),
    "abort": _Spec(c.ABORT_MEMORY_MB, c.ABORT_TIMEOUT_MINUTES, "Record a failed run, clean its staging area"),
    "ddb_backup_prepare": _Spec(c.PREPARE_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Describe a table, stage segments"),
    "ddb_export_status": _Spec(c.ABORT_MEMORY_MB, c.ABORT_TIMEOUT_MINUTES, "Poll a table export, stage its files"),
    "ddb_segment_worker": _Spec(c.WORKER_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Scan one table segment into packs"),
    "ddb_backup_commit": _Spec(c.COMMIT_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Merge segment parts, write manifest"),
    "ddb_restore_prepare": _Spec(c.PREPARE_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Create or check the target table"),
    "ddb_restore_worker": _Spec(c.WORKER_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Write one segment part's items"),
    "ddb_restore_finish": _Spec(c.FINISH_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Summarise a table restore"),
    # Retention and maintenance (infra/maintenance.py grants their deletes): prune holds every live blob id in
    # memory while it marks; verify and the drill read and hash packs, CPU-bound like a worker.
    "apply_retention": _Spec(c.FINISH_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Apply a plan's keep rules to a source"),
    "maintenance_forget": _Spec(c.FINISH_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Apply every plan's keep rules"),
    "maintenance_prune": _Spec(c.COMMIT_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Delete unreferenced data, repack"),
    "maintenance_verify": _Spec(c.WORKER_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Check the vault, read some packs"),
    "maintenance_drill": _Spec(c.WORKER_MEMORY_MB, c.FUNCTION_TIMEOUT_MINUTES, "Restore drill into scratch space"),
}


class Functions(Construct):
    """Lambda functions sharing one layer, one environment and per-function least-privilege roles."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vault: Vault,
        layer: lambda_.ILayerVersion,
        plans: PlansFile,
        restore_targets: Sequence[str],
        restore_target_tables: Sequence[str] = c.DEFAULT_RESTORE_TARGET_TABLES,
        settings: StackSettings | None = None,
        log_key: LogKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = settings or StackSettings()
        self._vault = vault
        self.log_key = log_key or LogKey(self, "LogKey")
        code = lambda_.Code.from_asset(str(c.FUNCTIONS_DIR), exclude=["__pycache__", "*.pyc", "tests", ".*"])
        environment = {
            "VAULT_URL": vault.url,
            "VAULT_ENCRYPTION": plans.encryption,
            "VAULT_KMS_KEY_ID": vault.key.key_arn,
            "POWERTOOLS_SERVICE_NAME": c.SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": c.METRICS_NAMESPACE,
            "LOG_LEVEL": c.LOG_LEVEL,
            # A restore into the vault or its access-log bucket is refused (vaultline/targets/guard.py).
            c.ENV_ACCESS_LOG_BUCKET: vault.access_logs.bucket_name,
            # What the writers lock and for how long (vaultline/repository/object_lock.py); 0 days: nothing is locked.
            c.ENV_OBJECT_LOCK_MODE: vault.object_lock_mode,
            c.ENV_OBJECT_LOCK_DAYS: str(vault.object_lock_days),
        }
        self.by_name: dict[str, lambda_.Function] = {}
        for name, handler in c.HANDLERS.items():
            spec = SPECS[name]
            construct = "".join(part.title() for part in name.split("_"))
            log_group = self.log_key.log_group(self, f"{construct}Logs", logs.RetentionDays.ONE_MONTH)
            reserved = settings.worker_reserved_concurrency if name in WORKERS else 0
            self.by_name[name] = lambda_.Function(
                self,
                construct,
                description=f"Vaultline {name}: {spec.description}",
                runtime=lambda_.Runtime.PYTHON_3_12,
                architecture=lambda_.Architecture.ARM_64,
                handler=handler,
                code=code,
                layers=[layer],
                memory_size=spec.memory_mb,
                timeout=Duration.minutes(spec.timeout_minutes),
                # Only the steps that start a backup create a vault on first use (and may write its config).
                environment={**environment, c.ENV_VAULT_CREATE: "true" if name in VAULT_CREATORS else "false"},
                tracing=lambda_.Tracing.ACTIVE,
                log_group=log_group,
                reserved_concurrent_executions=reserved or None,
            )

        # The IAM5 findings (wildcard resources) this construct creates on purpose, as cdk-nag names them.
        vault_arn = f"<{logical_id(vault.bucket)}.Arn>"
        self.wildcard_findings: list[str] = ["Resource::*", f"Resource::{vault_arn}/*"]
        self.wildcard_findings.append(f"Resource::{vault_arn}/{c.STAGING_PREFIX}*")
        self.wildcard_findings.append(f"Resource::{vault_arn}/{layout.LOCK_PREFIX}*")
        self.wildcard_findings += [f"Resource::{vault_arn}/{prefix}*" for prefix in layout.LOCKED_PREFIXES]
        self._grant_vault()
        self._grant_sources(plans)
        self._grant_table_sources(plans)
        self._grant_restore_targets(restore_targets)
        self._grant_restore_target_tables(restore_target_tables)
        self._acknowledge_findings()

    # --- accessors for the workflows -----------------------------------------------------------------------
    @property
    def backup_prepare(self) -> lambda_.Function:
        return self.by_name["backup_prepare"]

    @property
    def backup_worker(self) -> lambda_.Function:
        return self.by_name["backup_worker"]

    @property
    def backup_commit(self) -> lambda_.Function:
        return self.by_name["backup_commit"]

    @property
    def restore_prepare(self) -> lambda_.Function:
        return self.by_name["restore_prepare"]

    @property
    def restore_worker(self) -> lambda_.Function:
        return self.by_name["restore_worker"]

    @property
    def restore_finish(self) -> lambda_.Function:
        return self.by_name["restore_finish"]

    @property
    def abort(self) -> lambda_.Function:
        return self.by_name["abort"]

    @property
    def ddb_backup_prepare(self) -> lambda_.Function:
        return self.by_name["ddb_backup_prepare"]

    @property
    def ddb_export_status(self) -> lambda_.Function:
        return self.by_name["ddb_export_status"]

    @property
    def ddb_segment_worker(self) -> lambda_.Function:
        return self.by_name["ddb_segment_worker"]

    @property
    def ddb_backup_commit(self) -> lambda_.Function:
        return self.by_name["ddb_backup_commit"]

    @property
    def ddb_restore_prepare(self) -> lambda_.Function:
        return self.by_name["ddb_restore_prepare"]

    @property
    def ddb_restore_worker(self) -> lambda_.Function:
        return self.by_name["ddb_restore_worker"]

    @property
    def ddb_restore_finish(self) -> lambda_.Function:
        return self.by_name["ddb_restore_finish"]

    # --- permissions ---------------------------------------------------------------------------------------
    def _grant_vault(self) -> None:
        bucket = self._vault.bucket
        for name, function in self.by_name.items():
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="VaultRead",
                    actions=list(VAULT_READ_ACTIONS),
                    resources=[bucket.bucket_arn, bucket.arn_for_objects("*")],
                )
            )
            # Every step writes something: packs and indexes, work lists, manifests, worker summaries, or the
            # abort record. Objects are written once and never modified; only prune (maintenance) deletes.
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="VaultWrite", actions=list(VAULT_WRITE_ACTIONS), resources=[bucket.arn_for_objects("*")]
                )
            )
            # `config` says how to read everything else: a second writer would orphan the whole vault. Only the
            # steps that create a vault may write it, and only as a create (If-None-Match: *, which S3 refuses
            # with 412 when it exists); every other step may not write it at all.
            created_once = [bucket.arn_for_objects(key) for key in VAULT_CREATED_ONCE]
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="VaultConfigCreateOnly",
                    effect=iam.Effect.DENY,
                    actions=["s3:PutObject"],
                    resources=created_once,
                    conditions={"Null": {"s3:if-none-match": "true"}} if name in VAULT_CREATORS else None,
                )
            )
            if name in LOCK_WRITERS:
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid="VaultObjectLockWrite",
                        actions=["s3:PutObjectRetention"],
                        resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in layout.LOCKED_PREFIXES],
                    )
                )
            if name in ("backup_commit", "restore_finish", "abort", "ddb_backup_commit", "ddb_restore_finish"):
                # The steps that end a run tidy its staging area (versioning keeps a record until lifecycle ends it)
                # and release the run's shared vault lock.
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid="VaultStagingCleanup",
                        actions=["s3:DeleteObject"],
                        resources=[
                            bucket.arn_for_objects(f"{c.STAGING_PREFIX}*"),
                            bucket.arn_for_objects(f"{layout.LOCK_PREFIX}*"),
                        ],
                    )
                )
            if name in VAULT_CREATORS:
                # Taking the shared lock writes it, then deletes it again if a prune holds the exclusive one; a
                # Prepare that fails deletes what it staged (its run's prefix under staging/) and its lock.
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid="VaultPrepareUndo",
                        actions=["s3:DeleteObject"],
                        resources=[
                            bucket.arn_for_objects(f"{c.STAGING_PREFIX}*"),
                            bucket.arn_for_objects(f"{layout.LOCK_PREFIX}*"),
                        ],
                    )
                )
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="VaultKey", actions=list(VAULT_KEY_ACTIONS), resources=[self._vault.key.key_arn]
                )
            )

    def _grant_sources(self, plans: PlansFile) -> None:
        """Prepare lists the sources, workers read their objects; read-only, and only the plans' buckets."""
        prepare, worker = self.backup_prepare, self.backup_worker
        buckets: dict[str, set[str]] = {}
        roles: set[str] = set()
        for plan in plans.plans:
            for source in plan.sources:
                if not isinstance(source, S3SourcePlan):
                    continue
                if source.role_arn:
                    # Cross-account: the source account's role grants the reads; we may only assume it.
                    roles.add(source.role_arn)
                else:
                    buckets.setdefault(source.bucket, set()).add(source.prefix)
        stack = Stack.of(self)
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

    def _grant_table_sources(self, plans: PlansFile) -> None:
        """Prepare describes the plans' tables, segment workers scan them; export mode may export them and poll the
        export. Read-only, and only the planned tables (in their region); a table behind a role: AssumeRole only."""
        stack = Stack.of(self)
        prepare, worker, status = self.ddb_backup_prepare, self.ddb_segment_worker, self.ddb_export_status
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
        self.ddb_restore_prepare.add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetTables", actions=list(TABLE_RESTORE_PREPARE_ACTIONS), resources=tables
            )
        )
        # A saved description may name a customer-managed key: DynamoDB describes it and takes a grant on it for
        # the new table, on the function's behalf (GrantIsForAWSResource exists only on CreateGrant).
        via_dynamodb = {"kms:ViaService": f"dynamodb.{stack.region}.amazonaws.com"}
        self.ddb_restore_prepare.add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetTableKeyDescribe",
                actions=["kms:DescribeKey"],
                resources=["*"],
                conditions={"StringEquals": via_dynamodb},
            )
        )
        self.ddb_restore_prepare.add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetTableKeyGrant",
                actions=["kms:CreateGrant"],
                resources=["*"],
                conditions={"StringEquals": via_dynamodb, "Bool": {"kms:GrantIsForAWSResource": "true"}},
            )
        )
        self.ddb_restore_worker.add_to_role_policy(
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
        for function in (self.restore_prepare, self.restore_worker):
            function.add_to_role_policy(
                iam.PolicyStatement(sid="RestoreTargetCheck", actions=["s3:ListBucket"], resources=buckets)
            )
        self.restore_worker.add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetWrite",
                actions=list(TARGET_WRITE_ACTIONS),
                resources=[f"{arn}/*" for arn in buckets],
            )
        )
        # --overwrite never / if-changed (the default never) ask HeadObject whether a key is there, and what it holds.
        self.restore_worker.add_to_role_policy(
            iam.PolicyStatement(
                sid="RestoreTargetHead", actions=["s3:GetObject"], resources=[f"{arn}/*" for arn in buckets]
            )
        )
        # SSE-KMS targets: S3 generates the object's data key (and decrypts it for multipart parts) for the
        # worker, for objects of the target patterns only.
        self.restore_worker.add_to_role_policy(
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
        for function in (self.restore_prepare, self.restore_worker):
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="RestoreNeverIntoTheVault",
                    effect=iam.Effect.DENY,
                    actions=list(S3_WRITE_ACTIONS),
                    resources=[vault.arn_for_objects(key) for key in VAULT_OWN_KEYS]
                    + [access_logs.arn_for_objects("*")],
                )
            )

    def _acknowledge_findings(self) -> None:
        acknowledge(
            self,
            "AwsSolutions-IAM4",
            "AWSLambdaBasicExecutionRole only allows writing the function's own CloudWatch logs; it is the AWS-"
            "maintained minimum for a Lambda function and carries no data access.",
            findings=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
        )
        acknowledge(
            self,
            "AwsSolutions-IAM5",
            "Object-level wildcards are scoped to one bucket each: the vault's objects are content-addressed names "
            "that cannot be listed in advance, source objects are whatever the plan's prefix holds, restore targets "
            "are the configured bucket patterns, X-Ray trace submission has no resource-level permissions, and the "
            "KMS grants on Resource::* for SSE-KMS sources, targets and tables are usable only through S3 or "
            "DynamoDB (kms:ViaService) for the planned objects (kms:EncryptionContext:aws:s3:arn).",
            findings=self.wildcard_findings,
        )
        acknowledge(
            self,
            "AwsSolutions-L1",
            "The shared layer's binary wheels are built for CPython 3.12 (layers/build.py); moving the runtime is a "
            "deliberate change made together with the layer, not an automatic upgrade.",
        )


def _via_s3(stack: Stack, arns: Sequence[str]) -> dict[str, Any]:
    """Conditions of a KMS grant usable only by S3, for objects (or bucket keys) of the given ARNs."""
    return {
        "StringEquals": {"kms:ViaService": f"s3.{stack.region}.amazonaws.com"},
        "StringLike": {"kms:EncryptionContext:aws:s3:arn": list(arns)},
    }


def _sid(prefix: str, bucket: str) -> str:
    """IAM statement ids are alphanumeric."""
    return prefix + "".join(ch for ch in bucket.title() if ch.isalnum())
