"""`vaultline init --object-lock`, `vaultline lock status` and `vaultline lock extend`: what they print and exit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import Run
from vaultline.repository import locks
from vaultline.repository.layout import OBJECT_LOCK_KEY
from vaultline.repository.object_lock import ObjectLockSettings, load_object_lock
from vaultline.storage import S3Storage


def test_init_with_object_lock_records_bounded_settings_and_locks_what_backups_write(s3: Any, run: Run) -> None:
    s3.create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket="src")
    s3.put_object(Bucket="src", Key="a", Body=b"alpha " * 3000)
    code, out, _ = run("--vault", "s3://worm", "init", "--object-lock", "compliance", "--lock-days", "7", "--json")
    assert code == 0 and json.loads(out)["object_lock"]["mode"] == "COMPLIANCE"
    assert load_object_lock(S3Storage("worm")) == ObjectLockSettings.bounded("COMPLIANCE", 7)
    assert run("--vault", "s3://worm", "backup", "s3://src")[0] == 0

    code, out, _ = run("--vault", "s3://worm", "lock", "status", "--json")
    status = json.loads(out)
    by_prefix = {p["prefix"]: p for p in status["prefixes"]}
    assert code == 0 and status["settings"]["days"] == 7
    assert by_prefix["data/"]["locked"] >= 1 and by_prefix["data/"]["unlocked"] == 0
    assert by_prefix["recovery-points/"]["locked"] == 1 and by_prefix["object-lock"]["locked"] == 1
    assert by_prefix["data/"]["lapsing"] == 0 and by_prefix["data/"]["earliest"] is not None

    code, out, _ = run("--vault", "s3://worm", "lock", "extend", "--json")
    extended = json.loads(out)
    assert code == 0 and extended["recovery_points"] == 1 and extended["objects_extended"] == 0
    assert extended["packs"]["checked"] >= 1 and extended["manifests"]["checked"] == 1
    code, out, _ = run("--vault", "s3://worm", "lock", "extend")
    assert code == 0 and "kept 1 recovery points locked" in out


def test_init_with_object_lock_on_a_bucket_without_it_fails_and_writes_nothing(s3: Any, run: Run) -> None:
    s3.create_bucket(Bucket="plain")
    code, _, err = run("--vault", "s3://plain", "init", "--object-lock", "governance", "--lock-days", "30")
    assert code == 1 and "has no Object Lock" in err
    assert s3.list_objects_v2(Bucket="plain").get("KeyCount", 0) == 0


def test_lock_options_that_disagree_exit_2(s3: Any, run: Run) -> None:
    s3.create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
    assert run("--vault", "s3://worm", "init", "--object-lock", "governance")[0] == 2
    assert run("--vault", "s3://worm", "init", "--lock-days", "3")[0] == 2
    code, _, err = run(
        "--vault", "s3://worm", "init", "--object-lock", "governance", "--lock-days", "3", "--lock-min-days", "5"
    )
    assert code == 2 and "outside" in err
    assert run("--vault", "s3://worm", "init", "--object-lock", "governance", "--lock-days", "0")[0] == 2
    assert s3.list_objects_v2(Bucket="worm").get("KeyCount", 0) == 0


def test_lock_status_of_a_directory_vault_says_nothing_is_locked(tmp_path: Any, run: Run) -> None:
    assert run("--vault", str(tmp_path / "v"), "init")[0] == 0
    code, out, _ = run("--vault", str(tmp_path / "v"), "lock", "status")
    assert code == 0 and "no S3 Object Lock" in out
    code, out, _ = run("--vault", str(tmp_path / "v"), "lock", "extend", "--json")
    assert code == 0 and json.loads(out)["enabled"] is False


def test_lock_set_raises_the_settings_and_refuses_to_lower_them(s3: Any, run: Run) -> None:
    s3.create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
    assert run("--vault", "s3://worm", "init", "--object-lock", "governance", "--lock-days", "7")[0] == 0

    code, out, _ = run("--vault", "s3://worm", "lock", "set", "--lock-days", "30", "--lock-max-days", "90", "--json")
    assert code == 0 and json.loads(out) == {
        "version": 2, "mode": "GOVERNANCE", "days": 30, "min_days": 7, "max_days": 90,
    }  # fmt: skip
    code, out, _ = run("--vault", "s3://worm", "lock", "set", "--lock-days", "35", "--mode", "compliance")
    assert code == 0 and "COMPLIANCE for 35 days, bounds 7..90" in out
    raised = ObjectLockSettings(version=2, mode="COMPLIANCE", days=35, min_days=7, max_days=90)
    assert load_object_lock(S3Storage("worm")) == raised

    for lowering, reason in (
        (["--lock-days", "35", "--mode", "governance"], "cannot be lowered to GOVERNANCE"),
        (["--lock-days", "5", "--lock-min-days", "5"], "days 5 is below min_days 7"),
        (["--lock-days", "35", "--lock-min-days", "5"], "min_days cannot be lowered"),
        (["--lock-days", "35", "--lock-max-days", "365"], "max_days cannot be raised"),
        (["--lock-days", "100"], "outside"),
    ):
        code, _, err = run("--vault", "s3://worm", "lock", "set", *lowering)
        assert code == 2 and reason in err, (lowering, err)
    assert load_object_lock(S3Storage("worm")) == raised


def test_lock_set_on_a_directory_vault_fails(tmp_path: Any, run: Run) -> None:
    assert run("--vault", str(tmp_path / "v"), "init")[0] == 0
    code, _, err = run("--vault", str(tmp_path / "v"), "lock", "set", "--lock-days", "7", "--mode", "governance")
    assert code == 1 and "change the vault's Object Lock settings" in err


def test_lock_set_takes_the_exclusive_vault_lock_so_it_cannot_race_a_prune(
    s3: Any, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
    assert run("--vault", "s3://worm", "init", "--object-lock", "governance", "--lock-days", "7")[0] == 0
    storage = S3Storage("worm")

    prune = locks.acquire(storage, "prune", exclusive=True)  # a maintenance run's prune, midway
    code, _, err = run("--vault", "s3://worm", "lock", "set", "--lock-days", "30")
    assert code == 1 and "vault is locked (prune lock held by" in err
    assert load_object_lock(storage) == ObjectLockSettings.bounded("GOVERNANCE", 7), "nothing changed"
    locks.release(storage, prune)

    # Once the prune is done it goes through, holding the exclusive lock while it writes the settings.
    held_while_writing: list[list[tuple[str, bool]]] = []
    put = S3Storage.put

    def watched(self: S3Storage, key: str, data: bytes) -> None:
        if key == OBJECT_LOCK_KEY:
            held_while_writing.append([(i.kind, i.exclusive) for _, i in locks.list_locks(storage) if i is not None])
        put(self, key, data)

    monkeypatch.setattr(S3Storage, "put", watched)
    code, _, _ = run("--vault", "s3://worm", "lock", "set", "--lock-days", "30")
    assert code == 0 and held_while_writing == [[("lock-set", True)]]
    assert load_object_lock(storage) == ObjectLockSettings.bounded("GOVERNANCE", 30, 7)
    assert locks.list_locks(storage) == [], "released when done"
