"""Object Lock follows the data: maintenance extends the retention of what live recovery points need, and only that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from vaultline.errors import VaultError
from vaultline.operations.backup import run_backup
from vaultline.operations.forget_run import forget_staged
from vaultline.operations.lock_extension import LockExtendOptions, extend_locks
from vaultline.operations.retention import RetentionPolicy
from vaultline.repository.layout import OBJECT_LOCK_KEY, manifest_key, pack_key, run_prefix
from vaultline.repository.manifest import list_recovery_point_ids, load_recovery_point, needed_blobs
from vaultline.repository.object_lock import ObjectLockSettings, load_object_lock, save_object_lock
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import ObjectRetention, S3Storage

BUCKET = "locked-vault"


@pytest.fixture
def vault(s3: Any) -> Vault:
    s3.create_bucket(Bucket=BUCKET, ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket="source")
    storage = S3Storage(BUCKET, "v")
    Vault.init(storage)
    save_object_lock(storage, ObjectLockSettings.bounded("GOVERNANCE", 30))
    return Vault.open(S3Storage(BUCKET, "v"))


def _until(s3: Any, key: str) -> datetime:
    return s3.head_object(Bucket=BUCKET, Key="v/" + key)["ObjectLockRetainUntilDate"]


def _packs_of(vault: Vault, rp_id: str) -> set[str]:
    rp = load_recovery_point(vault, rp_id)
    return {pack_key(loc.pack_id) for b in needed_blobs(vault, rp) if (loc := vault.lookup.get(b)) is not None}


def test_a_pack_reused_by_a_new_recovery_point_is_extended_and_garbage_is_not(vault: Vault, s3: Any) -> None:
    s3.put_object(Bucket="source", Key="kept", Body=b"shared across days " * 4000)
    run_backup(vault, open_source("s3://source"))
    first_packs = {pack_key(p) for p in list_pack_ids(vault.storage)}
    s3.put_object(Bucket="source", Key="dropped", Body=b"only the second day " * 4000)
    run_backup(vault, open_source("s3://source"))
    s3.delete_object(Bucket="source", Key="dropped")
    third = run_backup(vault, open_source("s3://source"))
    later = datetime.now(UTC) + timedelta(days=31)  # the old recovery points' own locks have lapsed
    assert len(forget_staged(vault, [], later, every_source=RetentionPolicy(keep_last=1)).removed) == 2
    reused = _packs_of(vault, third.id)
    assert reused == first_packs  # the third recovery point needs only what the first one wrote
    garbage = {pack_key(p) for p in list_pack_ids(vault.storage)} - reused
    assert garbage
    written = {key: _until(s3, key) for key in [*reused, manifest_key(third.id)]}

    soon = datetime.now(UTC) + timedelta(days=20)  # 30 - 20 = 10 days left: under 30 - 2, so due
    report = extend_locks(Vault.open(S3Storage(BUCKET, "v")), now=soon)

    for key, before in written.items():
        assert _until(s3, key) > before + timedelta(days=19), key
    assert report.packs.extended == len(reused) and report.manifests.extended == 1
    assert report.recovery_points == 1 and report.blobs_unindexed == 0
    for key in garbage:
        assert _until(s3, key) < soon + timedelta(days=11), key
    assert list(vault.storage.list(run_prefix(""))) == []  # the run cleaned its staging


def test_only_what_lapses_before_the_next_run_is_extended(vault: Vault, s3: Any) -> None:
    s3.put_object(Bucket="source", Key="a", Body=b"alpha " * 5000)
    rp = run_backup(vault, open_source("s3://source"))
    fresh = extend_locks(vault)  # written a moment ago for 30 days: nothing is due
    assert fresh.objects_checked >= 2 and fresh.objects_extended == 0
    due = extend_locks(
        vault, LockExtendOptions(period_hours=24, margin_hours=24), now=datetime.now(UTC) + timedelta(days=3)
    )
    assert due.objects_extended == due.objects_checked - due.settings.checked + due.settings.extended
    assert due.manifests.extended == 1 and due.packs.extended == len(_packs_of(vault, rp.id))
    again = extend_locks(vault, now=datetime.now(UTC) + timedelta(days=3))
    assert again.objects_extended == 0  # each object once per period + margin, not once per run


def test_the_bounded_settings_record_is_locked_and_kept_locked(vault: Vault, s3: Any) -> None:
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="v/" + OBJECT_LOCK_KEY)["Versions"]
    head = s3.head_object(Bucket=BUCKET, Key="v/" + OBJECT_LOCK_KEY, VersionId=versions[0]["VersionId"])
    assert head["ObjectLockMode"] == "GOVERNANCE"
    report = extend_locks(vault, now=datetime.now(UTC) + timedelta(days=10))
    assert report.settings.extended == 1


def test_an_attacker_who_overwrites_or_deletes_the_settings_lowers_nothing(vault: Vault, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="v/" + OBJECT_LOCK_KEY, Body=b'{"version": 1, "mode": "GOVERNANCE", "days": 1}')
    assert load_object_lock(vault.storage) == ObjectLockSettings.bounded("GOVERNANCE", 30)
    s3.delete_object(Bucket=BUCKET, Key="v/" + OBJECT_LOCK_KEY)
    assert load_object_lock(vault.storage) == ObjectLockSettings.bounded("GOVERNANCE", 30)
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix="v/" + OBJECT_LOCK_KEY)["Versions"]
    locked = [v for v in versions if not v["IsLatest"]][-1]
    with pytest.raises(ClientError, match="AccessDenied"):
        s3.delete_object(Bucket=BUCKET, Key="v/" + OBJECT_LOCK_KEY, VersionId=locked["VersionId"])


def test_retention_is_never_shortened(vault: Vault, s3: Any) -> None:
    s3.put_object(Bucket="source", Key="a", Body=b"alpha " * 5000)
    rp = run_backup(vault, open_source("s3://source"))
    key = manifest_key(rp.id)
    found = vault.storage.retention(key)
    assert found is not None and found.retain_until is not None
    earlier = ObjectRetention(
        mode="GOVERNANCE", retain_until=found.retain_until - timedelta(days=1), version_id=found.version_id
    )
    with pytest.raises(VaultError, match="AccessDenied"):
        vault.storage.extend_retention(key, earlier)
    # Governance yields to whoever sends the bypass header (and holds s3:BypassGovernanceRetention); compliance never.
    retention = {"Mode": "GOVERNANCE", "RetainUntilDate": earlier.retain_until}
    version = {"VersionId": found.version_id or ""}
    s3.put_object_retention(
        Bucket=BUCKET, Key="v/" + key, Retention=retention, BypassGovernanceRetention=True, **version
    )
    compliance = ObjectRetention(
        mode="COMPLIANCE", retain_until=found.retain_until + timedelta(days=1), version_id=found.version_id
    )
    vault.storage.extend_retention(key, compliance)
    with pytest.raises(ClientError, match="AccessDenied"):
        shorter = {"Mode": "COMPLIANCE", "RetainUntilDate": found.retain_until}
        s3.put_object_retention(
            Bucket=BUCKET, Key="v/" + key, Retention=shorter, BypassGovernanceRetention=True, **version
        )
    with pytest.raises(VaultError, match="AccessDenied"):
        vault.storage.extend_retention(
            key,
            ObjectRetention(
                mode="GOVERNANCE", retain_until=found.retain_until + timedelta(days=2), version_id=found.version_id
            ),
        )


def test_a_bucket_without_object_lock_is_a_clear_error(s3: Any) -> None:
    s3.create_bucket(Bucket="plain")
    storage = S3Storage("plain")
    Vault.init(storage)
    with pytest.raises(VaultError, match="has no Object Lock"):
        save_object_lock(storage, ObjectLockSettings.bounded("GOVERNANCE", 7))
    save_object_lock(storage, ObjectLockSettings(mode="GOVERNANCE", days=7))
    with pytest.raises(VaultError, match="has no Object Lock"):
        extend_locks(Vault.open(S3Storage("plain")))


def test_a_vault_that_locks_nothing_extends_nothing(s3: Any) -> None:
    s3.create_bucket(Bucket="unlocked", ObjectLockEnabledForBucket=True)
    Vault.init(S3Storage("unlocked"))
    assert extend_locks(Vault.open(S3Storage("unlocked"))).enabled is False


def test_items_that_run_out_of_time_resume_on_their_cursor_and_extend_each_pack_once(
    vault: Vault, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaultline.operations import lock_extension

    for n in range(3):
        s3.put_object(Bucket="source", Key=f"day-{n}", Body=f"day {n} ".encode() * 5000)
        run_backup(vault, open_source("s3://source"))
    monkeypatch.setattr(lock_extension, "PACKS_PER_PARTITION", 1)  # several partitions even for three packs
    monkeypatch.setattr(lock_extension, "POINTS_PER_BATCH", 2)
    monkeypatch.setattr(lock_extension, "CHUNK", 1)
    soon = datetime.now(UTC) + timedelta(days=20)
    report = extend_locks(vault, now=soon, remaining_ms=lambda: 0)  # every item stops after one step
    packs = set().union(*(_packs_of(vault, rp) for rp in list_recovery_point_ids(vault)))
    assert report.packs.checked == report.packs.extended == len(packs) >= 3
    assert report.manifests.extended == report.recovery_points == 3
    assert all(_until(s3, key) > soon + timedelta(days=29) for key in packs)


def test_a_change_that_lowers_the_settings_is_refused_and_writes_nothing(vault: Vault, s3: Any) -> None:
    from vaultline.errors import ObjectLockRefused
    from vaultline.repository.object_lock import change_object_lock

    def versions() -> int:
        return len(s3.list_object_versions(Bucket=BUCKET, Prefix="v/" + OBJECT_LOCK_KEY)["Versions"])

    before = versions()
    with pytest.raises(ObjectLockRefused, match="below min_days 30"):
        change_object_lock(vault.storage, ObjectLockSettings.bounded("GOVERNANCE", 7))
    assert versions() == before
    stricter = change_object_lock(vault.storage, ObjectLockSettings.bounded("COMPLIANCE", 45, min_days=30))
    assert stricter == ObjectLockSettings.bounded("COMPLIANCE", 45, min_days=30) and versions() == before + 1
    with pytest.raises(ObjectLockRefused, match="cannot be lowered to GOVERNANCE"):
        change_object_lock(vault.storage, ObjectLockSettings.bounded("GOVERNANCE", 45, min_days=30))
