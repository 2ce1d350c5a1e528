"""S3 Object Lock: vault objects carry retention, and forget and prune never delete a held object early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.forget import forget
from vaultline.operations.prune import prune
from vaultline.operations.retention import RetentionPolicy
from vaultline.repository.layout import MANIFEST_PREFIX, pack_key
from vaultline.repository.manifest import list_recovery_point_ids
from vaultline.repository.object_lock import ObjectLockSettings, save_object_lock
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import S3Storage


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

    held = forget(locked_vault, RetentionPolicy(keep_last=1))
    assert held.removed == [] and [h.key for h in held.held] == [MANIFEST_PREFIX + first.id]
    assert held.held[0].retain_until is not None and held.held[0].retain_until > datetime.now(UTC)
    assert first.id in list_recovery_point_ids(locked_vault)

    later = datetime.now(UTC) + timedelta(days=2)
    assert forget(locked_vault, RetentionPolicy(keep_last=1), now=later).removed == [first.id]

    packs_before = set(list_pack_ids(locked_vault.storage))
    report = prune(locked_vault)
    held_keys = {h.key for h in report.held}
    assert held_keys and all(h.mode == "GOVERNANCE" for h in report.held)
    assert {k for k in held_keys if k.startswith("data/")} <= {pack_key(p) for p in packs_before}
    assert set(list_pack_ids(locked_vault.storage)) == packs_before  # the only garbage is held
    assert check_vault(Vault.open(locked_vault.storage), read_data=True).errors == []

    expired = prune(Vault.open(locked_vault.storage), now=later)
    assert expired.held == [] and expired.packs_deleted >= 1
    assert check_vault(Vault.open(locked_vault.storage), read_data=True).errors == []
