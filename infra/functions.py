"""The Lambda functions of a stack, and exactly the permissions on the vault each one needs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from aws_cdk import Duration, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import constants as c
from infra.logs import LogKey
from infra.nag import acknowledge
from infra.registry import (
    FUNCTIONS,
    WORKERS,
    FunctionSpec,
)
from infra.settings import StackSettings
from infra.vault import VaultResources
from vaultline.repository import layout
from vaultline.runs.settings import FunctionSettings

VAULT_READ_ACTIONS = ("s3:GetObject", "s3:ListBucket")
VAULT_WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload")
# Object Lock: forget and prune leave objects under retention or legal hold in place and report them as held.
# Reading an object's lock state needs these; without them HeadObject silently omits it.
OBJECT_LOCK_READ_ACTIONS = ("s3:GetObjectRetention", "s3:GetObjectLegalHold")
# GenerateDataKey: SSE-KMS writes and the vault's own data key; Decrypt: SSE-KMS reads and unwrapping that key.
VAULT_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# The vault objects whose only writer is the step that creates a vault, and only as a conditional create.
VAULT_CREATED_ONCE = layout.CREATED_ONCE
# Key slots are added and removed from the CLI by whoever holds a key; no step writes or deletes one, so a step
# cannot plant a key of its choosing nor take away the passphrase slot a break-glass recovery needs.
KEY_SLOT_WRITE_ACTIONS = ("s3:PutObject", "s3:DeleteObject")


class Functions(Construct):
    """Lambda functions of the registered ``specs`` sharing one layer, one environment and per-function
    least-privilege roles on the vault, derived from each spec's traits. What the plans' sources, restore targets and
    copy targets add to some of them is :class:`infra.data_access.DataAccess`'s."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vault: VaultResources,
        layer: lambda_.ILayerVersion,
        specs: Sequence[FunctionSpec] = FUNCTIONS,
        encryption: Literal["kms", "none"] = "kms",
        settings: StackSettings | None = None,
        log_key: LogKey | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        settings = settings or StackSettings()
        self._vault = vault
        self.vault = vault
        self.log_key = log_key or LogKey(self, "LogKey")
        code = lambda_.Code.from_asset(str(c.FUNCTIONS_DIR), exclude=["__pycache__", "*.pyc", "tests", ".*"])
        # The functions' environment is the handlers' settings model (vaultline/runs/settings.py), dumped.
        environment = FunctionSettings(
            vault_url=vault.url,
            vault_encryption=encryption,
            vault_kms_key_id=vault.key.key_arn,
            service_name=c.SERVICE_NAME,
            metrics_namespace=c.METRICS_NAMESPACE,
            log_level=c.LOG_LEVEL,
            access_log_bucket=vault.access_logs.bucket_name,
            # 0 days: nothing is locked (and the vault's own object-lock object is not consulted).
            object_lock_mode=vault.object_lock_mode,
            object_lock_days=vault.object_lock_days,
            object_lock_min_days=settings.object_lock_min_days,
            object_lock_max_days=settings.object_lock_max_days,
        )
        self._functions: dict[FunctionSpec, lambda_.Function] = {}
        for spec in specs:
            log_group = self.log_key.log_group(self, f"{spec.construct_id}Logs", logs.RetentionDays.ONE_MONTH)
            reserved = settings.worker_reserved_concurrency if spec.worker else 0
            self._functions[spec] = lambda_.Function(
                self,
                spec.construct_id,
                description=f"Vaultline {spec.name}: {spec.description}",
                runtime=lambda_.Runtime.PYTHON_3_12,
                architecture=lambda_.Architecture.ARM_64,
                handler=spec.handler,
                code=code,
                layers=[layer],
                memory_size=spec.memory_mb,
                ephemeral_storage_size=Size.mebibytes(spec.ephemeral_storage_mb),
                timeout=Duration.minutes(spec.timeout_minutes),
                # Only the steps that start a backup create a vault on first use (and may write its config).
                environment=environment.model_copy(
                    update={"vault_create": spec.creates_vault and vault.creatable}
                ).environment(),
                tracing=lambda_.Tracing.ACTIVE,
                log_group=log_group,
                reserved_concurrent_executions=reserved or None,
            )

        # The IAM5 findings (wildcard resources) this construct creates on purpose, as cdk-nag names them.
        self.wildcard_findings: list[str] = ["Resource::*", vault.arn_finding("/*")]
        self.wildcard_findings.append(vault.arn_finding(f"/{c.STAGING_PREFIX}*"))
        self.wildcard_findings.append(vault.arn_finding(f"/{layout.LOCK_PREFIX}*"))
        self.wildcard_findings += [vault.arn_finding(f"/{prefix}*") for prefix in layout.LOCKED_PREFIXES]
        generations = (layout.CATALOG_PREFIX, layout.GENERATION_PREFIX)
        self.wildcard_findings += [vault.arn_finding(f"/{prefix}*") for prefix in generations]
        self._grant_vault()
        self._acknowledge_findings()

    def __getitem__(self, spec: FunctionSpec) -> lambda_.Function:
        """The function of a registered spec (``functions[BACKUP_WORKER]``)."""
        return self._functions[spec]

    def __contains__(self, spec: FunctionSpec) -> bool:
        return spec in self._functions

    @property
    def specs(self) -> tuple[FunctionSpec, ...]:
        """The specs this construct created a function for, in the order given."""
        return tuple(self._functions)

    @property
    def workers(self) -> list[lambda_.Function]:
        """The functions the Distributed Maps fan out, in registry order."""
        return [self[spec] for spec in WORKERS if spec in self]

    # --- permissions ---------------------------------------------------------------------------------------
    def _grant_vault(self) -> None:
        bucket = self._vault.bucket
        for spec, function in self._functions.items():
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="VaultRead",
                    actions=list(VAULT_READ_ACTIONS),
                    resources=[bucket.bucket_arn, bucket.arn_for_objects("*")],
                )
            )
            # Every step writes something: packs and indexes, work lists, manifests, worker summaries, or the
            # abort record. Objects are written once and never modified; only prune (maintenance) deletes.
            # A step that names its prefixes (compaction) may write nowhere else.
            writes = [f"{prefix}*" for prefix in spec.writes] or ["*"]
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="VaultWrite",
                    actions=list(VAULT_WRITE_ACTIONS),
                    resources=[bucket.arn_for_objects(key) for key in writes],
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
                    conditions={"Null": {"s3:if-none-match": "true"}} if spec.creates_vault else None,
                )
            )
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="VaultKeySlotsFromTheCliOnly",
                    effect=iam.Effect.DENY,
                    actions=list(KEY_SLOT_WRITE_ACTIONS),
                    resources=[bucket.arn_for_objects(f"{layout.KEYS_PREFIX}*")],
                )
            )
            if spec.writes_locked:
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid="VaultObjectLockWrite",
                        actions=["s3:PutObjectRetention"],
                        resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in layout.LOCKED_PREFIXES],
                    )
                )
            # The steps that end a run tidy its staging area (versioning keeps a record until lifecycle ends it)
            # and release the run's shared vault lock. Taking the shared lock writes it, then deletes it again if a
            # prune holds the exclusive one; a Prepare that fails deletes what it staged and its lock.
            for sid, deletes in (("VaultStagingCleanup", spec.ends_run), ("VaultPrepareUndo", spec.creates_vault)):
                if deletes:
                    function.add_to_role_policy(
                        iam.PolicyStatement(
                            sid=sid,
                            actions=["s3:DeleteObject"],
                            resources=[
                                bucket.arn_for_objects(f"{c.STAGING_PREFIX}*"),
                                bucket.arn_for_objects(f"{layout.LOCK_PREFIX}*"),
                            ],
                        )
                    )
            # Taking a shared lock writes it and deletes it again if a prune holds the exclusive one; the block
            # that held it releases it.
            if spec.holds_lock and not spec.ends_run:
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid="VaultLockRelease",
                        actions=["s3:DeleteObject"],
                        resources=[bucket.arn_for_objects(f"{layout.LOCK_PREFIX}*")],
                    )
                )
            function.add_to_role_policy(
                iam.PolicyStatement(
                    sid="VaultKey", actions=list(VAULT_KEY_ACTIONS), resources=[self._vault.key.key_arn]
                )
            )
            if spec.creates_vault:
                # A step that creates the vault writes its Object Lock settings; bounded (v2) settings need a
                # bucket with Object Lock, so it asks the bucket first.
                function.add_to_role_policy(
                    iam.PolicyStatement(
                        sid="VaultObjectLockEnabledAtCreate",
                        actions=["s3:GetBucketObjectLockConfiguration"],
                        resources=[bucket.bucket_arn],
                    )
                )
            if spec.deletes:
                self._grant_deletes(function, spec.deletes)
            elif spec.reads_lock_state:
                self._grant_lock_state(function)
            if spec.extends_locks:
                self._grant_lock_extension(function)

    def _grant_deletes(self, function: lambda_.Function, prefixes: tuple[str, ...]) -> None:
        """Forget and retention delete manifests, prune packs, indexes and its locks; all leave what Object Lock
        holds in place, which needs reading the lock state."""
        bucket = self._vault.bucket
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="VaultMaintenanceDelete",
                actions=["s3:DeleteObject"],
                resources=[bucket.arn_for_objects(f"{prefix}*") for prefix in prefixes],
            )
        )
        self._grant_lock_state(function, acknowledged=False)
        acknowledge(
            function,
            "AwsSolutions-IAM5",
            "Forget deletes manifests under recovery-points/, prune deletes packs, index objects, retired index "
            "generations and its own locks under data/, index/, index-catalogs/, index-shards/ and locks/ of the "
            "vault bucket: content-addressed or generated names that cannot be listed in advance; reading Object "
            "Lock state covers every vault object prune may have to keep.",
            findings=[self._vault.arn_finding(f"/{prefix}*") for prefix in prefixes] + [self._vault.arn_finding("/*")],
        )

    def _grant_lock_extension(self, function: lambda_.Function) -> None:
        """Lock extension reads and sets the retention of what Object Lock protects (LOCKED_PREFIXES) and of the
        ``object-lock`` record's versions (listing them, reading one by its version id); S3 itself refuses an
        earlier date, and no bypass is granted."""
        bucket = self._vault.bucket
        locked = [bucket.arn_for_objects(f"{prefix}*") for prefix in layout.LOCKED_PREFIXES]
        settings = bucket.arn_for_objects(layout.OBJECT_LOCK_KEY)
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="VaultObjectLockExtend",
                actions=["s3:GetObjectRetention", "s3:PutObjectRetention"],
                resources=[*locked, settings],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(sid="VaultObjectLockVersions", actions=["s3:GetObjectVersion"], resources=[settings])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="VaultObjectLockSettings",
                actions=["s3:ListBucketVersions"],
                resources=[bucket.bucket_arn],
                conditions={"StringEquals": {"s3:prefix": [layout.OBJECT_LOCK_KEY]}},
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="VaultObjectLockEnabled",
                actions=["s3:GetBucketObjectLockConfiguration"],
                resources=[bucket.bucket_arn],
            )
        )

    def _grant_lock_state(self, function: lambda_.Function, acknowledged: bool = True) -> None:
        """Reading what Object Lock holds (retention, legal hold) of any vault object: prune keeps held objects."""
        bucket = self._vault.bucket
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="VaultObjectLockRead",
                actions=list(OBJECT_LOCK_READ_ACTIONS),
                resources=[bucket.arn_for_objects("*")],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                sid="VaultObjectLockConfig",
                actions=["s3:GetBucketObjectLockConfiguration"],
                resources=[bucket.bucket_arn],
            )
        )
        if acknowledged:
            acknowledge(
                function,
                "AwsSolutions-IAM5",
                "Prune's Decide and Sweep read the Object Lock state of index objects and packs they would remove: "
                "content-addressed names that cannot be listed in advance.",
                findings=[self._vault.arn_finding("/*")],
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
            "Object-level wildcards on the vault: its objects are content-addressed names that cannot be listed in "
            "advance, under the prefixes each step's spec names; X-Ray trace submission has no resource-level "
            "permissions.",
            findings=self.wildcard_findings,
        )
        acknowledge(
            self,
            "AwsSolutions-L1",
            "The shared layer's binary wheels are built for CPython 3.12 (layers/build.py); moving the runtime is a "
            "deliberate change made together with the layer, not an automatic upgrade.",
        )
