"""The Lambda functions: runtime, architecture, handlers, environment, and least-privilege IAM."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra import constants as c
from tests.infra.conftest import Synth, actions_of, resolve, resources_of, statements

HANDLERS = {
    "BackupPrepare": "backup_prepare.handler",
    "BackupWorker": "backup_worker.handler",
    "BackupCommit": "backup_commit.handler",
    "RestorePrepare": "restore_prepare.handler",
    "RestoreWorker": "restore_worker.handler",
    "RestoreFinish": "restore_finish.handler",
    "Abort": "abort.handler",
    "DdbBackupPrepare": "ddb_backup_prepare.handler",
    "DdbExportStatus": "ddb_export_status.handler",
    "DdbSegmentWorker": "ddb_segment_worker.handler",
    "DdbBackupCommit": "ddb_backup_commit.handler",
    "DdbRestorePrepare": "ddb_restore_prepare.handler",
    "DdbRestoreWorker": "ddb_restore_worker.handler",
    "DdbRestoreFinish": "ddb_restore_finish.handler",
    "ApplyRetention": "apply_retention.handler",
    "MaintenanceForgetPlan": "maintenance_forget_plan.handler",
    "MaintenanceForgetRead": "maintenance_forget_read.handler",
    "MaintenanceForgetDecide": "maintenance_forget_decide.handler",
    "MaintenanceForgetSummary": "maintenance_forget_summary.handler",
    "MaintenancePrune": "maintenance_prune.handler",
    "MaintenanceVerifyPlan": "maintenance_verify_plan.handler",
    "MaintenanceVerifyItem": "maintenance_verify_item.handler",
    "MaintenanceVerifySummary": "maintenance_verify_summary.handler",
    "MaintenanceDrillPlan": "maintenance_drill_plan.handler",
    "MaintenanceDrillItem": "maintenance_drill_item.handler",
    "MaintenanceDrillSummary": "maintenance_drill_summary.handler",
    "MaintenancePruneMark": "maintenance_prune_mark.handler",
    "MaintenancePrunePlan": "maintenance_prune_plan.handler",
    "MaintenancePruneDecide": "maintenance_prune_decide.handler",
    "MaintenancePruneSweep": "maintenance_prune_sweep.handler",
    "MaintenancePruneFinish": "maintenance_prune_finish.handler",
    "MaintenancePruneAbort": "maintenance_prune_abort.handler",
    "MaintenanceCompact": "maintenance_compact.handler",
    "MaintenanceLockPlan": "maintenance_lock_plan.handler",
    "MaintenanceLockMark": "maintenance_lock_mark.handler",
    "MaintenanceLockExtend": "maintenance_lock_extend.handler",
    "MaintenanceLockSummary": "maintenance_lock_summary.handler",
    "FreshnessCheck": "freshness_check.handler",
    "CopyPrepare": "copy_prepare.handler",
    "CopyItem": "copy_item.handler",
    "CopyCommit": "copy_commit.handler",
    "CopyAbort": "copy_abort.handler",
}


def _function(synth: Synth, name: str) -> dict[str, Any]:
    found = [
        v
        for k, v in synth.resources("AWS::Lambda::Function").items()
        if re.fullmatch(f"Functions{name}[0-9A-F]{{8}}", k)
    ]
    assert len(found) == 1, name
    return found[0]["Properties"]


def test_exactly_the_registered_handlers_exist(synth: Synth) -> None:
    handlers = sorted(f["Properties"]["Handler"] for f in synth.resources("AWS::Lambda::Function").values())
    assert handlers == sorted(HANDLERS.values())


@pytest.mark.parametrize("name", HANDLERS)
def test_function_runs_python_312_on_arm64_with_tracing_and_the_layer(synth: Synth, name: str) -> None:
    props = _function(synth, name)
    assert props["Handler"] == HANDLERS[name]
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["TracingConfig"] == {"Mode": "Active"}
    layer_id, _ = synth.only("AWS::Lambda::LayerVersion")
    assert props["Layers"] == [{"Ref": layer_id}]


@pytest.mark.parametrize("name", HANDLERS)
def test_function_environment_names_the_vault_and_powertools_settings(synth: Synth, name: str) -> None:
    env = _function(synth, name)["Environment"]["Variables"]
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    key_id, _ = synth.only("AWS::KMS::Key", "VaultKey")
    assert env["VAULT_URL"] == {"Fn::Join": ["", ["s3://", {"Ref": vault_id}]]}
    assert env["VAULT_ENCRYPTION"] == "kms"
    assert env["VAULT_KMS_KEY_ID"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert env["POWERTOOLS_SERVICE_NAME"] == "vaultline"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Vaultline"
    assert env["LOG_LEVEL"] == "INFO"


def test_workers_get_one_full_vcpu_and_long_steps_the_lambda_maximum(synth: Synth) -> None:
    workers = ("BackupWorker", "RestoreWorker", "DdbSegmentWorker", "DdbRestoreWorker")
    for name in (*workers, "MaintenanceVerifyItem", "MaintenanceDrillItem"):
        assert _function(synth, name)["MemorySize"] == 1769
    for name in ("BackupPrepare", "BackupWorker", "BackupCommit", "RestorePrepare", "RestoreWorker"):
        assert _function(synth, name)["Timeout"] == 900


def test_functions_are_packaged_from_the_functions_directory(synth: Synth) -> None:
    assets = json.loads((synth.template_path.parent / "Vaultline.assets.json").read_text())["files"]
    # Asset staging is off in tests, so the asset's source is the directory itself.
    functions_assets = {h for h, a in assets.items() if Path(a["source"]["path"]) == c.FUNCTIONS_DIR}
    assert len(functions_assets) == 1
    (asset_hash,) = functions_assets
    for function in synth.resources("AWS::Lambda::Function").values():
        assert function["Properties"]["Code"]["S3Key"] == f"{asset_hash}.zip"


def _all_actions(synth: Synth, role: str) -> set[str]:
    """What the role is allowed (the explicit denies guarding the vault are tested on their own)."""
    return set().union(*(actions_of(s) for s in statements(synth, role) if s["Effect"] == "Allow"))


def test_only_backup_prepare_and_worker_touch_source_buckets(synth: Synth) -> None:
    for role in ("BackupCommit", "RestorePrepare", "RestoreWorker", "RestoreFinish", "Abort", "DdbSegmentWorker"):
        for statement in statements(synth, f"Functions{role}"):
            assert not any("vaultline-demo-source" in r for r in resources_of(statement)), role


def test_backup_prepare_lists_sources_and_worker_reads_their_objects_read_only(synth: Synth) -> None:
    prepare = [s for s in statements(synth, "FunctionsBackupPrepare") if s.get("Sid", "").startswith("SourceList")]
    worker = [s for s in statements(synth, "FunctionsBackupWorker") if s.get("Sid", "").startswith("SourceRead")]
    assert len(prepare) == 1 and len(worker) == 1
    assert actions_of(prepare[0]) == {"s3:ListBucket", "s3:ListBucketVersions"}
    assert resources_of(prepare[0]) == ["arn:REF_AWS__Partition:s3:::vaultline-demo-source"]
    status = [s for s in statements(synth, "FunctionsBackupPrepare") if s.get("Sid", "").startswith("SourceStatus")]
    assert [actions_of(s) for s in status] == [{"s3:GetBucketVersioning"}]
    assert actions_of(worker[0]) == {
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectTagging",
        "s3:GetObjectVersionTagging",
    }
    assert resources_of(worker[0]) == ["arn:REF_AWS__Partition:s3:::vaultline-demo-source/*"]


def test_source_object_reads_are_limited_to_the_planned_prefix(multi_synth: Synth) -> None:
    worker = statements(multi_synth, "FunctionsBackupWorker")
    reads = {r for s in worker if s.get("Sid", "").startswith("SourceRead") for r in resources_of(s)}
    assert reads == {
        "arn:REF_AWS__Partition:s3:::photo-originals/raw/*",
        "arn:REF_AWS__Partition:s3:::company-docs/*",
    }


def test_cross_account_sources_are_read_through_their_role_not_direct_grants(multi_synth: Synth) -> None:
    for role in ("FunctionsBackupPrepare", "FunctionsBackupWorker"):
        assume = [s for s in statements(multi_synth, role) if s.get("Sid") == "SourceRoles"]
        assert len(assume) == 1
        assert actions_of(assume[0]) == {"sts:AssumeRole"}
        assert resources_of(assume[0]) == ["arn:aws:iam::123456789012:role/vaultline-read"]
        assert not any("partner-photos" in r for s in statements(multi_synth, role) for r in resources_of(s))


@pytest.mark.parametrize("name", HANDLERS)
def test_no_function_gets_write_or_delete_outside_the_vault_and_restore_targets(synth: Synth, name: str) -> None:
    for statement in statements(synth, f"Functions{name}ServiceRole"):
        if statement["Effect"] == "Deny":  # the guards of the vault's own objects (tests below)
            assert statement["Sid"] in (
                "VaultConfigCreateOnly",
                "RestoreNeverIntoTheVault",
                "VaultKeySlotsFromTheCliOnly",
            ), statement
            continue
        assert statement["Effect"] == "Allow"
        assert not any(a.endswith(":*") or a == "*" for a in actions_of(statement)), statement
        if actions_of(statement) & {"s3:PutObject", "s3:DeleteObject"}:
            for resource in resources_of(statement):
                assert (
                    "VaultBucket" in resource
                    or resource.startswith("arn:REF_AWS__Partition:s3:::vaultline-*")
                    or (name.startswith("MaintenanceDrill") and "MaintenanceDrillScratch" in resource)
                ), resource


@pytest.mark.parametrize("name", HANDLERS)
def test_kms_use_is_limited_to_the_vault_key_or_to_a_service_acting_for_the_function(synth: Synth, name: str) -> None:
    kms = [
        s for s in statements(synth, f"Functions{name}ServiceRole") if any(a.startswith("kms:") for a in actions_of(s))
    ]
    vault_key = [s for s in kms if s.get("Sid") == "VaultKey"]
    assert len(vault_key) == 1
    assert actions_of(vault_key[0]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert resources_of(vault_key[0]) == [f"GETATT_{synth.only('AWS::KMS::Key', 'VaultKey')[0]}_Arn"]
    # Any other key only through S3 or DynamoDB on the function's behalf (SSE-KMS sources, targets, tables).
    for statement in kms:
        if statement is not vault_key[0]:
            assert "kms:ViaService" in statement["Condition"]["StringEquals"], statement


def test_only_run_ending_and_lock_taking_steps_may_delete_and_only_staging_and_locks(synth: Synth) -> None:
    # Retention and maintenance delete elsewhere in the vault: tests/infra/test_maintenance.py pins those down.
    maintenance = {"ApplyRetention", "MaintenanceForgetDecide", "MaintenanceDrillSummary"}
    maintenance |= {name for name in HANDLERS if name.startswith("MaintenancePrune")}
    deleters = {name for name in HANDLERS if "s3:DeleteObject" in _all_actions(synth, f"Functions{name}ServiceRole")}
    lock_takers = {"BackupPrepare", "DdbBackupPrepare", "MaintenanceCompact"}
    run_enders = {
        "BackupCommit",
        "RestoreFinish",
        "Abort",
        "DdbBackupCommit",
        "DdbRestoreFinish",
        "MaintenanceVerifySummary",
        "MaintenanceLockSummary",
        "MaintenanceForgetSummary",
        # Copy: the run's staging in the source vault and, as ends_run grants, its locks (the copy's own lock is
        # the target's, granted per copy_to: tests/infra/test_copy_workflow.py).
        "CopyPrepare",
        "CopyCommit",
        "CopyAbort",
    }
    assert deleters - maintenance == run_enders | lock_takers
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    for name in run_enders:
        delete = [s for s in statements(synth, f"Functions{name}ServiceRole") if "s3:DeleteObject" in actions_of(s)]
        delete = [s for s in delete if s["Effect"] == "Allow"]  # the key slots' deny is tested on its own
        assert resources_of(delete[0]) == [f"GETATT_{vault_id}_Arn/staging/*", f"GETATT_{vault_id}_Arn/locks/*"]
    # Compaction holds a shared lock and stages nothing: it deletes its own lock and nothing else.
    assert _deletes_of(synth, "MaintenanceCompact") == [f"GETATT_{vault_id}_Arn/locks/*"]
    for name in lock_takers - {"MaintenanceCompact"}:
        # A lock taker withdraws its lock on conflict; a failed Prepare deletes what it staged and its lock.
        delete = [s for s in statements(synth, f"Functions{name}ServiceRole") if "s3:DeleteObject" in actions_of(s)]
        delete = [s for s in delete if s["Effect"] == "Allow"]
        assert resources_of(delete[0]) == [f"GETATT_{vault_id}_Arn/staging/*", f"GETATT_{vault_id}_Arn/locks/*"]


def _deletes_of(synth: Synth, name: str) -> list[str]:
    delete = [s for s in statements(synth, f"Functions{name}ServiceRole") if "s3:DeleteObject" in actions_of(s)]
    return sorted(r for s in delete if s["Effect"] == "Allow" for r in resources_of(s))


def test_compaction_writes_only_index_generations_and_its_lock(synth: Synth) -> None:
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    (write,) = [s for s in statements(synth, "FunctionsMaintenanceCompactServiceRole") if s.get("Sid") == "VaultWrite"]
    assert resources_of(write) == [
        f"GETATT_{vault_id}_Arn/index-catalogs/*",
        f"GETATT_{vault_id}_Arn/index-shards/*",
        f"GETATT_{vault_id}_Arn/locks/*",
    ]
    assert "s3:PutObjectRetention" not in _all_actions(synth, "FunctionsMaintenanceCompactServiceRole")
    # It sorts the index rows in pieces spilled to /tmp (34 bytes a row): its /tmp, not its memory, is the ceiling.
    compact = _function(synth, "MaintenanceCompact")
    assert compact["MemorySize"] == 1024
    assert compact["EphemeralStorage"] == {"Size": 4096}
    assert _function(synth, "BackupWorker")["EphemeralStorage"] == {"Size": 512}


def test_restore_worker_writes_only_to_configured_target_buckets(synth: Synth, multi_synth: Synth) -> None:
    def targets(s: Synth) -> set[str]:
        write = [x for x in statements(s, "FunctionsRestoreWorker") if x.get("Sid") == "RestoreTargetWrite"]
        assert actions_of(write[0]) == {"s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"}
        return set(resources_of(write[0]))

    assert targets(synth) == {"arn:REF_AWS__Partition:s3:::vaultline-*/*"}
    assert targets(multi_synth) == {
        "arn:REF_AWS__Partition:s3:::restore-*/*",
        "arn:REF_AWS__Partition:s3:::scratch-bucket/*",
    }
    assert "s3:PutObject" not in {
        a
        for s in statements(synth, "FunctionsBackupWorker")
        if s.get("Sid", "").startswith("Restore")
        for a in actions_of(s)
    }


# --- DynamoDB -------------------------------------------------------------------------------------------------

TABLE = "arn:REF_AWS__Partition:dynamodb:REF_AWS__Region:REF_AWS__AccountId:table/"


def _dynamodb_statements(s: Synth, role: str) -> list[dict[str, Any]]:
    return [x for x in statements(s, role) if any(a.startswith("dynamodb:") for a in actions_of(x))]


@pytest.mark.parametrize(
    ("role", "actions", "tables"),
    [
        pytest.param(
            "FunctionsDdbBackupPrepare",
            {
                "dynamodb:DescribeTable",
                "dynamodb:DescribeTimeToLive",
                "dynamodb:DescribeContinuousBackups",
                "dynamodb:ListTagsOfResource",
            },
            "vaultline-demo-table",
            id="backup-prepare-describes-the-source",
        ),
        pytest.param("FunctionsDdbSegmentWorker", {"dynamodb:Scan"}, "vaultline-demo-table", id="workers-scan-it"),
        pytest.param(
            "FunctionsDdbRestorePrepare",
            {
                "dynamodb:CreateTable",
                "dynamodb:DescribeTable",
                "dynamodb:UpdateTimeToLive",
                "dynamodb:UpdateContinuousBackups",
                "dynamodb:TagResource",
            },
            "vaultline-*",
            id="restore-prepare-creates-a-configured-target",
        ),
        pytest.param(
            "FunctionsDdbRestoreWorker", {"dynamodb:BatchWriteItem"}, "vaultline-*", id="restore-workers-write-it"
        ),
    ],
)
def test_each_dynamodb_step_may_do_exactly_its_actions_on_the_plans_or_configured_tables(
    synth: Synth, role: str, actions: set[str], tables: str
) -> None:
    (statement,) = _dynamodb_statements(synth, role)
    assert actions_of(statement) == actions
    assert resources_of(statement) == [f"{TABLE}{tables}"]


def test_no_other_step_touches_a_table(synth: Synth) -> None:
    # A scan-mode plan grants no export; nothing but the DynamoDB steps touches tables.
    assert _dynamodb_statements(synth, "FunctionsDdbExportStatus") == []
    for name in ("BackupPrepare", "BackupWorker", "BackupCommit", "DdbBackupCommit", "Abort", "DdbRestoreFinish"):
        assert _dynamodb_statements(synth, f"Functions{name}ServiceRole") == [], name


TABLE_PLANS = """\
version: 1
plans:
  - name: tables
    sources:
      - {type: dynamodb, table: orders, mode: export}
      - {type: dynamodb, table: events, region: eu-west-1, read_rate: 50}
      - {type: dynamodb, table: partner, role_arn: "arn:aws:iam::123456789012:role/vaultline-read"}
    schedule: {expression: "rate(1 day)"}
"""


def test_export_mode_and_cross_region_and_cross_account_tables(tmp_path: Path) -> None:
    from tests.infra.conftest import synthesize

    plans = tmp_path / "plans.yaml"
    plans.write_text(TABLE_PLANS)
    s = synthesize({"plansFile": str(plans), "restoreTargetTables": ["restored-*"]}, nag=True)
    assert s.synth_error is None, s.synth_error
    prepare = {x["Sid"]: x for x in _dynamodb_statements(s, "FunctionsDdbBackupPrepare")}
    assert actions_of(prepare["TableOrdersExport"]) == {"dynamodb:ExportTableToPointInTime"}
    assert resources_of(prepare["TableEventsEuWest1Describe"]) == [
        "arn:REF_AWS__Partition:dynamodb:eu-west-1:REF_AWS__AccountId:table/events"
    ]
    assert not any("partner" in r for x in prepare.values() for r in resources_of(x))
    (status,) = _dynamodb_statements(s, "FunctionsDdbExportStatus")
    assert actions_of(status) == {"dynamodb:DescribeExport"}
    assert resources_of(status) == [f"{TABLE}orders/export/*"]
    for role in ("FunctionsDdbBackupPrepare", "FunctionsDdbSegmentWorker", "FunctionsDdbExportStatus"):
        assume = [x for x in statements(s, role) if x.get("Sid") == "TableSourceRoles"]
        assert resources_of(assume[0]) == ["arn:aws:iam::123456789012:role/vaultline-read"]
    (write,) = _dynamodb_statements(s, "FunctionsDdbRestoreWorker")
    assert resources_of(write) == [f"{TABLE}restored-*"]


# --- issue 9: grants that a real deploy needs, and no wider -----------------------------------------------------


def _sid(s: Synth, role: str, sid: str) -> dict[str, Any]:
    (found,) = [x for x in statements(s, f"Functions{role}ServiceRole") if x.get("Sid") == sid]
    return found


def test_listing_a_source_is_limited_to_the_planned_prefix(multi_synth: Synth, synth: Synth) -> None:
    listing = _sid(multi_synth, "BackupPrepare", "SourceListPhotoOriginals")
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["raw/*"]}}
    # A whole-bucket source lists the whole bucket.
    assert "Condition" not in _sid(multi_synth, "BackupPrepare", "SourceListCompanyDocs")
    assert "Condition" not in _sid(synth, "BackupPrepare", "SourceListVaultlineDemoSource")


def test_the_worker_may_list_its_sources_so_a_vanished_key_is_a_404(multi_synth: Synth) -> None:
    check = _sid(multi_synth, "BackupWorker", "SourceKeyCheckPhotoOriginals")
    assert actions_of(check) == {"s3:ListBucket"}
    assert resources_of(check) == ["arn:REF_AWS__Partition:s3:::photo-originals"]
    assert check["Condition"] == {"StringLike": {"s3:prefix": ["raw/*"]}}
    whole = _sid(multi_synth, "BackupWorker", "SourceKeyCheckCompanyDocs")
    assert resources_of(whole) == ["arn:REF_AWS__Partition:s3:::company-docs"] and "Condition" not in whole


def test_sse_kms_source_objects_are_decrypted_only_through_s3_for_the_planned_objects(multi_synth: Synth) -> None:
    key = _sid(multi_synth, "BackupWorker", "SourceKeyPhotoOriginals")
    assert actions_of(key) == {"kms:Decrypt"} and key["Resource"] == "*"
    assert resolve(key["Condition"]["StringEquals"]["kms:ViaService"]) == "s3.REF_AWS__Region.amazonaws.com"
    context = [resolve(r) for r in key["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]]
    assert context == [
        "arn:REF_AWS__Partition:s3:::photo-originals",
        "arn:REF_AWS__Partition:s3:::photo-originals/raw/*",
    ]


def test_restore_workers_may_write_sse_kms_targets_through_s3(synth: Synth) -> None:
    key = _sid(synth, "RestoreWorker", "RestoreTargetKey")
    assert actions_of(key) == {"kms:Decrypt", "kms:GenerateDataKey"} and key["Resource"] == "*"
    assert resolve(key["Condition"]["StringEquals"]["kms:ViaService"]) == "s3.REF_AWS__Region.amazonaws.com"
    context = [resolve(r) for r in key["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"]]
    assert context == ["arn:REF_AWS__Partition:s3:::vaultline-*", "arn:REF_AWS__Partition:s3:::vaultline-*/*"]


def test_a_table_restore_may_use_a_customer_managed_key_through_dynamodb(synth: Synth) -> None:
    describe = _sid(synth, "DdbRestorePrepare", "RestoreTargetTableKeyDescribe")
    grant = _sid(synth, "DdbRestorePrepare", "RestoreTargetTableKeyGrant")
    assert actions_of(describe) == {"kms:DescribeKey"} and actions_of(grant) == {"kms:CreateGrant"}
    for statement in (describe, grant):
        via = resolve(statement["Condition"]["StringEquals"]["kms:ViaService"])
        assert via == "dynamodb.REF_AWS__Region.amazonaws.com"
    assert grant["Condition"]["Bool"] == {"kms:GrantIsForAWSResource": "true"}


def test_only_the_backup_prepares_may_write_config_and_only_as_a_create(synth: Synth) -> None:
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    for name in HANDLERS:
        deny = _sid(synth, name, "VaultConfigCreateOnly")
        assert deny["Effect"] == "Deny" and actions_of(deny) == {"s3:PutObject"}
        assert resources_of(deny) == [f"GETATT_{vault_id}_Arn/config", f"GETATT_{vault_id}_Arn/object-lock"]
        creator = name in ("BackupPrepare", "DdbBackupPrepare")
        # A creator's put without If-None-Match is denied; everyone else's put is denied outright.
        assert deny.get("Condition") == ({"Null": {"s3:if-none-match": "true"}} if creator else None), name
        env = _function(synth, name)["Environment"]["Variables"]
        assert env["VAULT_CREATE"] == ("true" if creator else "false"), name


def test_no_function_may_write_or_delete_a_key_slot(synth: Synth) -> None:
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    for name in HANDLERS:
        deny = _sid(synth, name, "VaultKeySlotsFromTheCliOnly")
        assert deny["Effect"] == "Deny" and actions_of(deny) == {"s3:PutObject", "s3:DeleteObject"}
        assert resources_of(deny) == [f"GETATT_{vault_id}_Arn/keys/*"]
        assert "Condition" not in deny


def test_exactly_the_writers_of_locked_objects_may_set_their_retention(synth: Synth) -> None:
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    writers = {
        name for name in HANDLERS if "s3:PutObjectRetention" in _all_actions(synth, f"Functions{name}ServiceRole")
    }
    assert writers == {
        "BackupPrepare",
        "BackupWorker",
        "BackupCommit",
        "DdbBackupPrepare",
        "DdbSegmentWorker",
        "DdbBackupCommit",
        "MaintenancePruneSweep",
        "MaintenancePruneFinish",
        # Lock extension: only later dates, on what is locked and the settings record (test_maintenance.py).
        "MaintenanceLockPlan",
        "MaintenanceLockMark",
        "MaintenanceLockExtend",
    }
    for name in writers - {"MaintenanceLockPlan", "MaintenanceLockMark", "MaintenanceLockExtend"}:
        assert resources_of(_sid(synth, name, "VaultObjectLockWrite")) == [
            f"GETATT_{vault_id}_Arn/{prefix}*" for prefix in ("data/", "index/", "recovery-points/")
        ]


def test_restore_roles_may_never_write_the_vault_or_its_access_logs(synth: Synth) -> None:
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    logs_id, _ = synth.only("AWS::S3::Bucket", "VaultAccessLogs")
    for name in ("RestorePrepare", "RestoreWorker"):
        deny = _sid(synth, name, "RestoreNeverIntoTheVault")
        assert deny["Effect"] == "Deny" and "Condition" not in deny
        assert {"s3:PutObject", "s3:DeleteObject", "s3:PutObjectTagging"} <= actions_of(deny)
        vault = [f"GETATT_{vault_id}_Arn/{key}" for key in ("config", "object-lock")]
        vault += [f"GETATT_{vault_id}_Arn/{p}/*" for p in ("data", "index", "recovery-points", "locks", "keys")]
        assert resources_of(deny) == [*vault, f"GETATT_{logs_id}_Arn/*"]
        env = _function(synth, name)["Environment"]["Variables"]
        assert env["VAULT_ACCESS_LOG_BUCKET"] == {"Ref": logs_id}


def test_workers_have_reserved_concurrency_and_other_functions_none(synth: Synth) -> None:
    for name in HANDLERS:
        reserved = _function(synth, name).get("ReservedConcurrentExecutions")
        workers = ("BackupWorker", "RestoreWorker", "DdbSegmentWorker", "DdbRestoreWorker")
        assert reserved == (c.WORKER_RESERVED_CONCURRENCY if name in workers else None), name


def test_worker_reserved_concurrency_comes_from_the_context() -> None:
    from tests.infra.conftest import synthesize

    none = synthesize({"workerReservedConcurrency": 0}, nag=False)
    assert not any(
        "ReservedConcurrentExecutions" in f["Properties"] for f in none.resources("AWS::Lambda::Function").values()
    )


def test_every_log_group_is_encrypted_with_the_logs_key(synth: Synth) -> None:
    key_id, key = synth.only("AWS::KMS::Key", "LogKey")
    assert key["Properties"]["EnableKeyRotation"] is True
    groups = synth.resources("AWS::Logs::LogGroup")
    assert len(groups) == len(HANDLERS) + 4  # the functions', the backup, restore, maintenance and copy machines'
    for group in groups.values():
        assert group["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    (logs,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "AllowCloudWatchLogs"]
    assert resolve(logs["Principal"]["Service"]) == "logs.REF_AWS__Region.amazonaws.com"
    assert resolve(logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]) == (
        "arn:REF_AWS__Partition:logs:REF_AWS__Region:REF_AWS__AccountId:log-group:*"
    )


def test_every_function_gets_exactly_the_environment_the_handlers_settings_read(synth: Synth) -> None:
    from vaultline.runs.settings import (
        ACCESS_LOG_BUCKET_ENV,
        OBJECT_LOCK_MAX_DAYS_ENV,
        OBJECT_LOCK_MIN_DAYS_ENV,
        FunctionSettings,
    )

    assert ACCESS_LOG_BUCKET_ENV in FunctionSettings.variable_names()
    # The lock's bounds are set only when the context names them (their defaults follow from the days).
    expected = sorted(set(FunctionSettings.variable_names()) - {OBJECT_LOCK_MIN_DAYS_ENV, OBJECT_LOCK_MAX_DAYS_ENV})
    for name, function in synth.resources("AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert sorted(variables) == expected, name
        settings = FunctionSettings.from_environment({k: resolve(v) for k, v in variables.items()})
        assert settings.vault_create is name.startswith(("FunctionsBackupPrepare", "FunctionsDdbBackupPrepare"))


def test_restore_worker_may_ask_whether_a_target_key_exists_for_overwrite_never(synth: Synth) -> None:
    # --overwrite never (the default) and if-changed call HeadObject on the target: without GetObject every default
    # restore fails on AWS with 403.
    head = [x for x in statements(synth, "FunctionsRestoreWorker") if x.get("Sid") == "RestoreTargetHead"]
    assert actions_of(head[0]) == {"s3:GetObject"}
    assert resources_of(head[0]) == ["arn:REF_AWS__Partition:s3:::vaultline-*/*"]


def test_prepare_reads_only_the_planned_inventory_folder_of_its_source(multi_synth: Synth) -> None:
    name = "CompanyInventoriesReportsCompanyDocsDailyCsv"
    listing = _sid(multi_synth, "BackupPrepare", f"InventoryList{name}")
    assert actions_of(listing) == {"s3:ListBucket"}
    assert resources_of(listing) == ["arn:REF_AWS__Partition:s3:::company-inventories"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["reports/company-docs/daily-csv/*"]}}
    read = _sid(multi_synth, "BackupPrepare", f"InventoryRead{name}")
    assert actions_of(read) == {"s3:GetObject"}
    assert resources_of(read) == ["arn:REF_AWS__Partition:s3:::company-inventories/reports/company-docs/daily-csv/*"]
    # Only Prepare reads the inventory; a worker reads the source's objects, never the report.
    assert not any(
        "company-inventories" in r for x in statements(multi_synth, "FunctionsBackupWorker") for r in resources_of(x)
    )
