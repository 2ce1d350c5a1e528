"""The vault as the stack really deploys it (issue 9): created once even by two first runs at a time, Object Lock
on the bucket with versioning and no default retention (the functions lock per object from their environment),
and forget and prune working there."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vaultline.aws import client
from vaultline.errors import VaultExists, VaultNotFound
from vaultline.operations.forget_run import forget_staged
from vaultline.operations.lock_extension import extend_locks, vault_settings
from vaultline.operations.prune import prune
from vaultline.operations.retention import RetentionPolicy
from vaultline.repository import locks
from vaultline.repository.layout import CONFIG_KEY, MANIFEST_PREFIX, OBJECT_LOCK_KEY, STAGING_PREFIX, pack_key
from vaultline.repository.object_lock import ObjectLockSettings, load_object_lock, save_object_lock
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.runs import backup_steps
from vaultline.runs.models import BackupWorkerEvent, CommitEvent, PrepareEvent, WorkItem
from vaultline.runs.staging import open_deployed_vault, vault_from_environment
from vaultline.storage import LocalStorage, S3Storage

# --- one config, even when two first runs create the vault at the same moment ---------------------------------


def _stack_environment(monkeypatch: pytest.MonkeyPatch, **extra: str) -> None:
    monkeypatch.setenv("VAULT_URL", "s3://vault-bucket")
    monkeypatch.setenv("VAULT_ENCRYPTION", extra.pop("encryption", "none"))
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def test_two_first_runs_end_with_one_config_and_both_use_it(s3: Any, kms: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.create_bucket(Bucket="vault-bucket")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    _stack_environment(monkeypatch, encryption="kms", VAULT_KMS_KEY_ID=key)
    client("s3"), client("kms")  # the engine's clients, made before the threads share them
    # Both runs find no config, then both create one at once: the window in which a plain put lets both win.
    barrier = threading.Barrier(2)
    looked = S3Storage.exists

    def racing_exists(self: S3Storage, name: str) -> bool:
        if name == CONFIG_KEY:
            barrier.wait(timeout=10)
            return False
        return looked(self, name)

    monkeypatch.setattr(S3Storage, "exists", racing_exists)
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: vault_from_environment(), range(2))

    stored = s3.get_object(Bucket="vault-bucket", Key=CONFIG_KEY)["Body"].read()
    assert first.config == second.config and first.config.to_bytes() == stored
    # The same data key: what one run writes, the other reads.
    assert first.cipher.chunk_id(b"same chunk") == second.cipher.chunk_id(b"same chunk")
    versions = s3.list_object_versions(Bucket="vault-bucket", Prefix=CONFIG_KEY).get("Versions", [])
    assert len(versions) == 1


def test_init_that_lost_the_race_refuses_and_leaves_the_winners_config(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.create_bucket(Bucket="vault-bucket")
    winner = Vault.init(S3Storage("vault-bucket"))
    monkeypatch.setattr(S3Storage, "exists", lambda self, name: False)  # it looked before the winner wrote

    with pytest.raises(VaultExists, match="created concurrently"):
        Vault.init(S3Storage("vault-bucket"))
    assert Vault.open(S3Storage("vault-bucket")).config == winner.config


def test_a_directory_vault_is_created_exclusively_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path / "vault")
    assert storage.create("config", b"first") is True
    assert storage.create("config", b"second") is False
    assert storage.get("config") == b"first"
    assert [p.name for p in (tmp_path / "vault").iterdir()] == ["config"]  # no temporary file left
    (tmp_path / "vault" / "config").unlink()
    winner = Vault.init(storage)
    monkeypatch.setattr(LocalStorage, "exists", lambda self, name: False)
    with pytest.raises(VaultExists):
        Vault.init(storage)
    assert Vault.open(storage).config == winner.config


def test_only_a_step_allowed_to_create_a_vault_creates_one(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.create_bucket(Bucket="vault-bucket")
    _stack_environment(monkeypatch, VAULT_CREATE="false")
    with pytest.raises(VaultNotFound, match="no vault here"):
        vault_from_environment()
    assert "Contents" not in s3.list_objects_v2(Bucket="vault-bucket")


# --- Object Lock as deployed: enabled, versioned, no default retention; retention set per object -------------


@pytest.fixture
def deployed(s3: Any, monkeypatch: pytest.MonkeyPatch) -> Vault:
    """The stack's vault bucket (Object Lock and versioning on, no default retention) as a function opens it."""
    s3.create_bucket(Bucket="vault-bucket", ObjectLockEnabledForBucket=True)
    s3.put_bucket_versioning(Bucket="vault-bucket", VersioningConfiguration={"Status": "Enabled"})
    assert "Rule" not in s3.get_object_lock_configuration(Bucket="vault-bucket")["ObjectLockConfiguration"]
    s3.create_bucket(Bucket="source")
    _stack_environment(
        monkeypatch, VAULT_CREATE="true", VAULT_OBJECT_LOCK_MODE="GOVERNANCE", VAULT_OBJECT_LOCK_DAYS="30"
    )
    return vault_from_environment()


def _backup(vault: Vault, s3: Any) -> str:
    """One backup of s3://source through the serverless steps (Prepare, workers, Commit), as the state machine."""
    prepared = backup_steps.prepare(vault, PrepareEvent(request={"source": {"type": "s3", "url": "s3://source"}}))
    work_list = json.loads(s3.get_object(Bucket="vault-bucket", Key=prepared.work_list_key)["Body"].read())
    for item in work_list:
        backup_steps.work(vault, BackupWorkerEvent(recovery_point=prepared.recovery_point, item=WorkItem(**item)))
    return backup_steps.commit(vault, CommitEvent(prepared=prepared)).recovery_point


def _current(s3: Any, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="vault-bucket", Prefix=prefix).get("Contents", [])]


def test_the_functions_lock_what_a_recovery_point_needs_and_nothing_else(deployed: Vault, s3: Any) -> None:
    s3.put_object(Bucket="source", Key="a", Body=b"alpha " * 5000)
    rp = _backup(deployed, s3)

    locked = [pack_key(p) for p in list_pack_ids(deployed.storage)] + _current(s3, "index/")
    locked.append(MANIFEST_PREFIX + rp)
    soon = datetime.now(UTC) + timedelta(days=29)
    for key in locked:
        head = s3.head_object(Bucket="vault-bucket", Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"] > soon, key
    assert "ObjectLockMode" not in s3.head_object(Bucket="vault-bucket", Key=CONFIG_KEY)
    # The new vault recorded the stack's settings, bounded (version 2) so that no command or overwrite lowers
    # them, and locked their own record; the CLI writing to it locks the same way.
    assert load_object_lock(S3Storage("vault-bucket")) == ObjectLockSettings.bounded("GOVERNANCE", 30)
    assert s3.head_object(Bucket="vault-bucket", Key=OBJECT_LOCK_KEY)["ObjectLockMode"] == "GOVERNANCE"
    # Commit cleaned the run's staging area and released its lock: neither was locked.
    assert _current(s3, STAGING_PREFIX) == [] and _current(s3, locks.LOCK_PREFIX) == []


def test_a_deployed_vault_records_the_stacks_lock_bounds(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.create_bucket(Bucket="vault-bucket", ObjectLockEnabledForBucket=True)
    s3.put_bucket_versioning(Bucket="vault-bucket", VersioningConfiguration={"Status": "Enabled"})
    _stack_environment(
        monkeypatch,
        VAULT_OBJECT_LOCK_MODE="COMPLIANCE",
        VAULT_OBJECT_LOCK_DAYS="30",
        VAULT_OBJECT_LOCK_MIN_DAYS="14",
        VAULT_OBJECT_LOCK_MAX_DAYS="90",
    )
    vault_from_environment()
    assert load_object_lock(S3Storage("vault-bucket")) == ObjectLockSettings(
        version=2, mode="COMPLIANCE", days=30, min_days=14, max_days=90
    )


def test_forget_and_prune_work_and_report_what_object_lock_holds(deployed: Vault, s3: Any) -> None:
    s3.put_object(Bucket="source", Key="a", Body=b"first version " * 4000)
    first = _backup(deployed, s3)
    s3.put_object(Bucket="source", Key="a", Body=b"second version " * 4000)
    _backup(deployed, s3)
    # A stale lock left by a run that died: prune removes it.
    stale = locks.acquire(deployed.storage, "backup", exclusive=False, now=datetime.now(UTC) - timedelta(hours=2))

    report = forget_staged(deployed, [], every_source=RetentionPolicy(keep_last=1))
    assert report.removed == [] and [h.key for h in report.held] == [MANIFEST_PREFIX + first]

    later = datetime.now(UTC) + timedelta(days=31)
    assert forget_staged(deployed, [], later, every_source=RetentionPolicy(keep_last=1)).removed == [first]
    packs = set(list_pack_ids(deployed.storage))
    pruned = prune(Vault.open(deployed.storage))
    # The first backup's pack is garbage now but held: reported with its date, kept, and no error.
    assert pruned.held and all(h.mode == "GOVERNANCE" and h.retain_until for h in pruned.held)
    assert set(list_pack_ids(deployed.storage)) == packs
    assert pruned.stale_locks_removed == 1 and _current(s3, locks.LOCK_PREFIX) == []
    assert stale.key not in _current(s3, locks.LOCK_PREFIX)


def test_maintenance_on_a_vault_that_records_no_lock_locks_and_extends_by_the_stacks_settings(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A vault made by `vaultline init` without --object-lock, then deployed by a stack whose backups lock 30 days:
    # the backups lock by the stack, and maintenance must too, or nothing would keep their locks from lapsing.
    s3.create_bucket(Bucket="vault-bucket", ObjectLockEnabledForBucket=True)
    s3.put_bucket_versioning(Bucket="vault-bucket", VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket="source")
    Vault.init(S3Storage("vault-bucket"))
    _stack_environment(monkeypatch, VAULT_OBJECT_LOCK_MODE="GOVERNANCE", VAULT_OBJECT_LOCK_DAYS="30")
    s3.put_object(Bucket="source", Key="a", Body=b"alpha " * 5000)
    rp = _backup(vault_from_environment(), s3)
    assert load_object_lock(S3Storage("vault-bucket")) is None  # the stack never writes a record on its own

    maintenance = open_deployed_vault()
    later = datetime.now(UTC) + timedelta(days=25)  # 5 days left: due at the default period and margin
    report = extend_locks(maintenance, now=later)

    assert report.enabled and report.manifests.extended == 1 and report.packs.extended >= 1
    head = s3.head_object(Bucket="vault-bucket", Key=MANIFEST_PREFIX + rp)
    assert head["ObjectLockRetainUntilDate"] > later + timedelta(days=29)
    # What maintenance itself writes is locked the same way (a repack's packs hold live data).
    assert maintenance.storage.lock_policy is not None
    assert maintenance.storage.lock_policy.retention_for(pack_key("ab" * 32)) is not None


def test_maintenance_locks_by_the_vaults_record_when_there_is_one(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.create_bucket(Bucket="vault-bucket", ObjectLockEnabledForBucket=True)
    s3.put_bucket_versioning(Bucket="vault-bucket", VersioningConfiguration={"Status": "Enabled"})
    Vault.init(S3Storage("vault-bucket"))
    save_object_lock(S3Storage("vault-bucket"), ObjectLockSettings.bounded("COMPLIANCE", 60))
    _stack_environment(monkeypatch, VAULT_OBJECT_LOCK_MODE="GOVERNANCE", VAULT_OBJECT_LOCK_DAYS="30")
    assert vault_settings(open_deployed_vault()) == ObjectLockSettings.bounded("COMPLIANCE", 60)
