"""S3 Object Lock: vault objects carry retention, and forget and prune never delete a held object early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.forget_run import forget_staged
from vaultline.operations.prune import prune
from vaultline.operations.retention import RetentionPolicy
from vaultline.repository.layout import CONFIG_KEY, MANIFEST_PREFIX, index_key, lock_key, pack_key, run_prefix
from vaultline.repository.manifest import list_recovery_point_ids
from vaultline.repository.object_lock import ObjectLockSettings, VaultObjectLock, save_object_lock
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import LocalStorage, S3Storage


@pytest.fixture
def locked_vault(s3: Any) -> Vault:
    s3.create_bucket(Bucket="locked-vault", ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket="source")
    vault = Vault.init(S3Storage("locked-vault", "v"))
    save_object_lock(vault.storage, ObjectLockSettings(mode="GOVERNANCE", days=1))
    return Vault.open(S3Storage("locked-vault", "v"))


def test_packs_index_and_manifests_are_written_with_retention(locked_vault: Vault, s3: Any) -> None:
    s3.put_object(Bucket="source", Key="a", Body=b"alpha" * 1000)
    rp = run_backup(locked_vault, open_source("s3://source"))
    keys = [pack_key(p) for p in list_pack_ids(locked_vault.storage)] + [MANIFEST_PREFIX + rp.id]
    keys += [o.key for o in locked_vault.storage.list("index/")]
    soon = datetime.now(UTC) + timedelta(hours=23)
    for key in keys:
        head = s3.head_object(Bucket="locked-vault", Key="v/" + key)
        assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockRetainUntilDate"] > soon, key
    assert "ObjectLockMode" not in s3.head_object(Bucket="locked-vault", Key="v/config")


def test_forget_and_prune_defer_held_objects_and_report_until_when(locked_vault: Vault, s3: Any) -> None:
    s3.put_object(Bucket="source", Key="a", Body=b"first version " * 2000)
    first = run_backup(locked_vault, open_source("s3://source"))
    save_object_lock(locked_vault.storage, None)  # later objects carry no retention
    s3.put_object(Bucket="source", Key="a", Body=b"second version " * 2000)
    run_backup(locked_vault, open_source("s3://source"))

    held = forget_staged(locked_vault, [], every_source=RetentionPolicy(keep_last=1))
    assert held.removed == [] and [h.key for h in held.held] == [MANIFEST_PREFIX + first.id]
    assert held.held[0].retain_until is not None and held.held[0].retain_until > datetime.now(UTC)
    assert first.id in list_recovery_point_ids(locked_vault)

    later = datetime.now(UTC) + timedelta(days=2)
    assert forget_staged(locked_vault, [], later, every_source=RetentionPolicy(keep_last=1)).removed == [first.id]

    packs_before = set(list_pack_ids(locked_vault.storage))
    report = prune(locked_vault)
    held_keys = {h.key for h in report.held}
    assert held_keys and all(h.mode == "GOVERNANCE" for h in report.held)
    assert report.held_count == len(report.held)
    assert report.held_until == min(h.retain_until for h in report.held if h.retain_until)
    assert {k for k in held_keys if k.startswith("data/")} <= {pack_key(p) for p in packs_before}
    assert set(list_pack_ids(locked_vault.storage)) == packs_before  # the only garbage is held
    assert check_vault(Vault.open(locked_vault.storage), read_data=True).errors == []

    expired = prune(Vault.open(locked_vault.storage), now=later)
    assert expired.held == [] and expired.packs_deleted >= 1
    assert check_vault(Vault.open(locked_vault.storage), read_data=True).errors == []


def test_the_vault_locks_what_a_recovery_point_needs_reading_its_settings_at_the_first_locked_write(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "v")
    save_object_lock(storage, ObjectLockSettings(mode="COMPLIANCE", days=3))
    policy = VaultObjectLock.of_vault(storage)
    for key in (lock_key("l"), CONFIG_KEY, run_prefix("r") + "run.json"):
        assert policy.retention_for(key) is None, key
    save_object_lock(storage, ObjectLockSettings(mode="GOVERNANCE", days=5))  # not read yet: this one counts
    soon = datetime.now(UTC) + timedelta(days=4, hours=23)
    for key in (pack_key("ab" * 32), index_key("i"), MANIFEST_PREFIX + "rp"):
        retention = policy.retention_for(key)
        assert retention is not None and retention.mode == "GOVERNANCE", key
        assert retention.retain_until is not None and retention.retain_until > soon, key
    save_object_lock(storage, None)
    assert policy.retention_for(pack_key("ab" * 32)) is not None  # read once; the storage's policy is new:
    assert storage.lock_policy is not None and storage.lock_policy.retention_for(pack_key("ab" * 32)) is None
    assert VaultObjectLock.fixed(None).retention_for(pack_key("ab" * 32)) is None  # a stack that locks nothing


def test_a_directory_vault_with_object_lock_settings_backs_up_and_checks(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "a").write_bytes(b"alpha" * 1000)
    vault = Vault.init(LocalStorage(tmp_path / "v"))
    save_object_lock(vault.storage, ObjectLockSettings(mode="GOVERNANCE", days=1))  # a directory has no lock
    run_backup(vault, open_source(str(source)))
    assert check_vault(Vault.open(LocalStorage(tmp_path / "v")), read_data=True).errors == []


def test_delete_many_hides_keys_in_one_request_and_leaves_locked_versions_as_aws_does(
    locked_vault: Vault, s3: Any
) -> None:
    keys = [pack_key(f"{n:02x}" * 32) for n in range(3)]
    for key in keys:
        locked_vault.storage.put(key, b"pack")  # under the vault's GOVERNANCE retention
    locked_vault.storage.delete_many(keys)
    assert [k for k in keys if locked_vault.storage.exists(k)] == []
    versions = s3.list_object_versions(Bucket="locked-vault", Prefix="v/data/")
    assert len(versions.get("Versions", [])) == 3 and len(versions.get("DeleteMarkers", [])) == 3
    with pytest.raises(ValueError, match="at most 1,000"):
        locked_vault.storage.delete_many([keys[0]] * 1001)
