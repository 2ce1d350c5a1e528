"""Legal holds: `vaultline hold` places S3 legal holds on everything a recovery point needs; forget and prune
leave held objects, lifting one hold keeps what another needs, and an interrupted hold says so and finishes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import Run
from vaultline.errors import VaultError
from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.forget_run import forget_staged
from vaultline.operations.holds import add_hold, hold_status, load_hold, needed_objects, remove_hold
from vaultline.operations.prune import prune
from vaultline.operations.retention import RetentionPolicy
from vaultline.repository.layout import MANIFEST_PREFIX, hold_key, manifest_key
from vaultline.repository.manifest import RecoveryPoint, load_recovery_point
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import LocalStorage, S3Storage

VAULT = "s3://held-vault/v"


@pytest.fixture
def held_vault(s3: Any) -> Vault:
    """A vault in a bucket with Object Lock (no default retention: only legal holds keep anything)."""
    s3.create_bucket(Bucket="held-vault", ObjectLockEnabledForBucket=True)
    s3.create_bucket(Bucket="source")
    Vault.init(S3Storage("held-vault", "v"))
    return Vault.open(S3Storage("held-vault", "v"))


def _backup(vault: Vault, s3: Any, **objects: bytes) -> RecoveryPoint:
    for key, body in objects.items():
        s3.put_object(Bucket="source", Key=key, Body=body)
    return run_backup(vault, open_source("s3://source"))


def _on_hold(s3: Any, key: str) -> bool:
    return bool(
        s3.get_object_legal_hold(Bucket="held-vault", Key="v/" + key).get("LegalHold", {}).get("Status") == "ON"
    )


def test_a_hold_covers_the_manifest_every_pack_and_the_index_objects_a_restore_needs(
    held_vault: Vault, s3: Any
) -> None:
    rp = _backup(held_vault, s3, a=b"alpha " * 5000, b=b"beta " * 7000)
    report = add_hold(held_vault, rp.id, reason="case 42")

    keys = needed_objects(held_vault, load_recovery_point(held_vault, rp.id))
    assert manifest_key(rp.id) in keys and any(k.startswith("data/") for k in keys)
    assert any(k.startswith("index/") for k in keys)
    assert report.objects == len(keys) and report.changed == len(keys)
    assert all(_on_hold(s3, key) for key in keys)
    assert hold_status(held_vault, rp.id).complete
    record = load_hold(held_vault, rp.id)
    assert record is not None and record.state == "held" and record.reason == "case 42"
    assert add_hold(held_vault, rp.id).changed == 0  # placing it again changes nothing


def test_forget_and_prune_leave_a_held_recovery_point_until_its_hold_is_lifted(held_vault: Vault, s3: Any) -> None:
    first = _backup(held_vault, s3, a=b"first version " * 3000)
    _backup(held_vault, s3, a=b"second version " * 3000)
    add_hold(held_vault, first.id)

    forgotten = forget_staged(held_vault, [], every_source=RetentionPolicy(keep_last=1))
    assert forgotten.removed == [] and [h.key for h in forgotten.held] == [MANIFEST_PREFIX + first.id]
    assert forgotten.held[0].legal_hold

    remove_hold(held_vault, first.id)
    assert load_hold(held_vault, first.id) is None
    assert forget_staged(held_vault, [], every_source=RetentionPolicy(keep_last=1)).removed == [first.id]
    packs_before = set(list_pack_ids(held_vault.storage))
    pruned = prune(Vault.open(held_vault.storage))
    assert pruned.held == [] and pruned.packs_deleted >= 1
    assert set(list_pack_ids(held_vault.storage)) < packs_before
    assert check_vault(Vault.open(held_vault.storage), read_data=True).errors == []


def test_prune_never_deletes_a_held_pack_even_when_the_manifest_is_gone(held_vault: Vault, s3: Any) -> None:
    first = _backup(held_vault, s3, a=b"only in the first " * 4000)
    add_hold(held_vault, first.id)
    s3.delete_object(Bucket="source", Key="a")
    _backup(held_vault, s3, b=b"something else " * 4000)
    held_packs = {
        k for k in needed_objects(held_vault, load_recovery_point(held_vault, first.id)) if k.startswith("data/")
    }
    # Someone deletes the manifest's key (in a versioned bucket a delete marker; the held version stays): prune no
    # longer sees the recovery point, so its packs look like garbage, and the legal hold is all that keeps them.
    s3.delete_object(Bucket="held-vault", Key="v/" + manifest_key(first.id))
    report = prune(Vault.open(held_vault.storage))
    assert held_packs <= {h.key for h in report.held} and all(h.legal_hold for h in report.held)
    assert held_packs <= {f"data/{p[:2]}/{p}" for p in list_pack_ids(held_vault.storage)}


def test_lifting_one_hold_keeps_the_objects_another_held_recovery_point_shares(held_vault: Vault, s3: Any) -> None:
    shared = b"shared by both recovery points " * 4000
    first = _backup(held_vault, s3, shared=shared)
    second = _backup(held_vault, s3, shared=shared, extra=b"only in the second " * 4000)
    add_hold(held_vault, first.id)
    add_hold(held_vault, second.id)

    lifted = remove_hold(held_vault, first.id)
    assert lifted.kept_for_others >= 2  # at least the shared pack and an index object
    assert hold_status(held_vault, second.id).complete
    assert not _on_hold(s3, manifest_key(first.id))
    assert _on_hold(s3, manifest_key(second.id))


def test_an_interrupted_hold_is_reported_incomplete_and_finishes_when_run_again(
    held_vault: Vault, s3: Any, monkeypatch: pytest.MonkeyPatch, run: Run
) -> None:
    rp = _backup(held_vault, s3, a=b"alpha " * 5000, b=b"beta " * 7000)
    storage_type = type(held_vault.storage)
    real = storage_type.set_legal_hold
    calls = {"n": 0}

    def crash_on_second(self: S3Storage, key: str, on: bool) -> bool:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(self, key, on)

    monkeypatch.setattr(storage_type, "set_legal_hold", crash_on_second)
    with pytest.raises(RuntimeError):
        add_hold(held_vault, rp.id)
    monkeypatch.setattr(storage_type, "set_legal_hold", real)

    record = load_hold(held_vault, rp.id)
    assert record is not None and record.state == "placing"
    code, out, err = run("--vault", VAULT, "hold", "list", rp.id, "--json")
    assert code == 1 and "incomplete" in err
    assert json.loads(out)["complete"] is False

    assert run("--vault", VAULT, "hold", "add", rp.id)[0] == 0
    code, out, _ = run("--vault", VAULT, "hold", "list", rp.id, "--json")
    assert code == 0 and json.loads(out)["state"] == "held" and json.loads(out)["complete"] is True


def test_the_cli_places_lists_and_lifts_holds(held_vault: Vault, s3: Any, run: Run) -> None:
    rp = _backup(held_vault, s3, a=b"alpha " * 5000)
    code, out, _ = run("--vault", VAULT, "hold", "add", "latest", "--reason", "audit 2026", "--json")
    assert code == 0 and json.loads(out)["recovery_point"] == rp.id and json.loads(out)["state"] == "held"

    code, out, _ = run("--vault", VAULT, "hold", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and [(h["recovery_point"], h["state"], h["reason"]) for h in listed] == [
        (rp.id, "held", "audit 2026")
    ]
    code, out, _ = run("--vault", VAULT, "hold", "list")
    assert code == 0 and rp.id in out and "audit 2026" in out

    code, out, _ = run("--vault", VAULT, "hold", "remove", rp.id, "--json")
    assert code == 0 and json.loads(out)["state"] == "lifted"
    assert not held_vault.storage.exists(hold_key(rp.id))
    assert json.loads(run("--vault", VAULT, "hold", "list", "--json")[1]) == []


def test_holds_need_a_bucket_with_object_lock(s3: Any, run: Run, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="plain-vault")
    s3.create_bucket(Bucket="source")
    vault = Vault.init(S3Storage("plain-vault", "v"))
    rp = _backup(vault, s3, a=b"alpha")
    code, _, err = run("--vault", "s3://plain-vault/v", "hold", "add", rp.id)
    assert code == 1 and "has no Object Lock" in err and "plain-vault" in err
    assert not vault.storage.exists(hold_key(rp.id))  # nothing recorded

    local = Vault.init(LocalStorage(tmp_path / "local"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x")
    local_rp = run_backup(local, open_source(str(tmp_path / "src")))
    code, _, err = run("--vault", str(tmp_path / "local"), "hold", "add", local_rp.id)
    assert code == 1 and "Object Lock" in err


def test_unknown_recovery_points_and_removing_a_hold_that_is_not_there_fail_clearly(
    held_vault: Vault, s3: Any, run: Run
) -> None:
    rp = _backup(held_vault, s3, a=b"alpha")
    code, _, err = run("--vault", VAULT, "hold", "add", "20200101T000000Z-nope")
    assert code != 0 and "20200101T000000Z-nope" in err
    code, _, err = run("--vault", VAULT, "hold", "remove", rp.id)
    assert code == 1 and "has no legal hold" in err


def test_a_held_recovery_point_outlives_its_retention_days(held_vault: Vault, s3: Any) -> None:
    first = _backup(held_vault, s3, a=b"old " * 3000)
    _backup(held_vault, s3, a=b"new " * 3000)
    add_hold(held_vault, first.id)
    later = datetime.now(UTC) + timedelta(days=400)
    assert forget_staged(held_vault, [], later, every_source=RetentionPolicy(keep_last=1)).removed == []


def test_a_denied_object_lock_question_is_an_error_not_a_bucket_without_object_lock(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A role without s3:GetBucketObjectLockConfiguration must not be told the bucket has no Object Lock: a step
    would then skip retention it owes, or refuse bounded settings with a reason that sends the operator to the
    bucket instead of the role."""
    s3.create_bucket(Bucket="held-vault", ObjectLockEnabledForBucket=True)
    storage = S3Storage("held-vault", "v")

    def denied(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetObjectLockConfiguration")

    monkeypatch.setattr(storage.s3, "get_object_lock_configuration", denied)
    with pytest.raises(VaultError, match=r"cannot tell whether bucket held-vault has Object Lock.*AccessDenied"):
        assert storage.object_lock_enabled, "unreachable: the question raised"


def test_a_bucket_created_without_object_lock_answers_that_it_has_none(s3: Any) -> None:
    s3.create_bucket(Bucket="plain-vault")
    assert S3Storage("plain-vault", "v").object_lock_enabled is False
