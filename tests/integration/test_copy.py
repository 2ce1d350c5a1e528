"""Copying recovery points into a vault in another region under another KMS key: restored bit-exact from the copy,
resumed after a crash, and copied only once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import Run
from tests.integration.test_dynamodb import put_all, scan_all, simple_table
from vaultline.errors import VaultError
from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.copy import COPIED_FROM, copied_from, run_copy
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.operations.table_backup import run_table_backup
from vaultline.repository.layout import manifest_key
from vaultline.repository.manifest import iter_entries, list_recovery_point_ids, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.sources import LocalSource, S3Source
from vaultline.storage import LocalStorage, S3Storage
from vaultline.targets import DirectoryTarget

KiB = 1024
SOURCE = "s3://vault-src/v"
TARGET = "s3://vault-dst/v"
NO_SLEEP: Callable[[float], None] = lambda _: None  # noqa: E731


@pytest.fixture
def objects(s3: Any, rand: Callable[[int, int], bytes]) -> dict[str, bytes]:
    s3.create_bucket(Bucket="data")
    made = {f"dir/obj-{i:02d}.bin": rand(40 * KiB * (i + 1), i) for i in range(8)}
    made["big.bin"] = rand(3 * 1024 * KiB, 99)  # several content-defined chunks
    made["empty"] = b""
    for key, body in made.items():
        s3.put_object(Bucket="data", Key=key, Body=body)
    return made


@pytest.fixture
def source(s3: Any, kms: Any, small_packs: Callable[[Vault, int], Vault]) -> Vault:
    s3.create_bucket(Bucket="vault-src")
    key = kms.create_key(Description="source vault key")["KeyMetadata"]["Arn"]
    return small_packs(Vault.init(S3Storage("vault-src", "v"), encryption="kms", kms_key_id=key), 512 * KiB)


@pytest.fixture
def target(aws: None, small_packs: Callable[[Vault, int], Vault]) -> Vault:
    """A vault in eu-west-1 under an eu-west-1 KMS key: another region, another key, another data key."""
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="vault-dst", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    key = boto3.client("kms", region_name="eu-west-1").create_key(Description="copy key")["KeyMetadata"]["Arn"]
    assert ":eu-west-1:" in key
    return small_packs(Vault.init(S3Storage("vault-dst", "v"), encryption="kms", kms_key_id=key), 512 * KiB)


def restored(run: Run, vault: str, rp: str, to: Path, read_tree: Callable[[Path], dict[str, bytes]]) -> dict:
    code, _, err = run("--vault", vault, "restore", rp, "--to", str(to))
    assert code == 0, err
    return read_tree(to)


def test_copy_to_another_region_and_key_restores_bit_exact_and_copies_each_point_once(
    run: Run,
    s3: Any,
    source: Vault,
    target: Vault,
    objects: dict[str, bytes],
    tmp_path: Path,
    read_tree: Callable[[Path], dict[str, bytes]],
    rand: Callable[[int, int], bytes],
) -> None:
    first = run_backup(source, S3Source("s3://data"))
    s3.put_object(Bucket="data", Key="dir/obj-03.bin", Body=rand(90 * KiB, 1234))
    second = run_backup(source, S3Source("s3://data"))
    assert second.parent == first.id

    code, out, err = run("--vault", SOURCE, "copy", "--all", "--to", TARGET, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["copied"] == sorted([first.id, second.id])  # id order: oldest first, by second
    assert report["bytes_transferred"] > sum(len(b) for b in objects.values())  # incompressible, sealed
    # The second point took the ids of its unchanged chunks from the first one's copy: only the change was read.
    assert report["chunks_mapped"] > 0

    assert restored(run, TARGET, first.id, tmp_path / "one", read_tree) == objects
    changed = objects | {"dir/obj-03.bin": rand(90 * KiB, 1234)}
    assert restored(run, TARGET, second.id, tmp_path / "two", read_tree) == changed

    copy = Vault.open(target.storage)
    header = load_recovery_point(copy, second.id)
    record = copied_from(header)
    assert record and record.vault_id == source.config.vault_id and record.recovery_point == second.id
    assert header.source == "s3://data" and header.time == second.time and header.parent == first.id
    # Chunk ids are keyed per vault: the same data has other ids in the copy, and dedups by them there.
    here = {c for e in iter_entries(source, second) for c in e.chunks}
    there = {c for e in iter_entries(copy, header) for c in e.chunks}
    assert len(here) == len(there) and not here & there
    assert check_vault(copy, read_data=True).ok

    code, out, err = run("--vault", SOURCE, "copy", "--all", "--to", TARGET, "--json")
    assert code == 0, err
    again = json.loads(out)
    assert again["copied"] == [] and again["already_copied"] == sorted([first.id, second.id])
    assert again["bytes_transferred"] == 0 and again["bytes_read"] == 0


@pytest.mark.parametrize(("prefix", "nth"), [("data/", 4), ("index/", 1), ("recovery-points/", 1)])
def test_copy_interrupted_at_a_request_leaves_no_recovery_point_and_the_next_copy_resumes(
    run: Run,
    source: Vault,
    target: Vault,
    objects: dict[str, bytes],
    tmp_path: Path,
    read_tree: Callable[[Path], dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    prefix: str,
    nth: int,
) -> None:
    rp = run_backup(source, S3Source("s3://data"))
    # Packs, index objects and manifests are conditional creates (If-None-Match): the copy's writes of them.
    creates = S3Storage.create
    calls = {"n": 0}

    def dies_at_the_nth_put(self: S3Storage, key: str, data: bytes) -> bool:
        if self.bucket == "vault-dst" and key.startswith(prefix):
            calls["n"] += 1
            if calls["n"] == nth:
                raise VaultError(f"{self.url}: {key}: connection reset by peer")
        return creates(self, key, data)

    monkeypatch.setattr(S3Storage, "create", dies_at_the_nth_put)
    code, out, err = run("--vault", SOURCE, "copy", rp.id, "--to", TARGET, "--json")
    assert code == 1 and "connection reset" in err and out == ""
    assert list_recovery_point_ids(Vault.open(target.storage)) == []
    assert list(target.storage.list("locks/")) == []
    assert len(list(target.storage.list("data/"))) >= nth - 1

    monkeypatch.setattr(S3Storage, "create", creates)
    code, out, err = run("--vault", SOURCE, "copy", rp.id[:10], "--to", TARGET, "--json")
    assert code == 0, err
    assert json.loads(out)["copied"] == [rp.id]
    assert restored(run, TARGET, rp.id, tmp_path / "out", read_tree) == objects
    assert check_vault(Vault.open(target.storage)).ok


def test_a_point_whose_parent_was_forgotten_in_the_source_copies_whole_and_restores(
    run: Run,
    s3: Any,
    source: Vault,
    target: Vault,
    objects: dict[str, bytes],
    tmp_path: Path,
    read_tree: Callable[[Path], dict[str, bytes]],
) -> None:
    first = run_backup(source, S3Source("s3://data"))
    assert run("--vault", SOURCE, "copy", "latest", "--to", TARGET)[0] == 0
    s3.put_object(Bucket="data", Key="new.txt", Body=b"new")
    second = run_backup(source, S3Source("s3://data"))
    source.storage.delete(manifest_key(first.id))  # what forget does

    code, out, err = run("--vault", SOURCE, "copy", second.id, "--to", TARGET, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["copied"] == [second.id] and report["chunks_mapped"] == 0
    assert report["chunks_copied"] <= 2  # new.txt and the entry stream: the rest was in the target already
    assert restored(run, TARGET, second.id, tmp_path / "out", read_tree) == objects | {"new.txt": b"new"}


def test_dedup_in_the_target_is_by_its_own_ids_against_its_backups_and_other_copies(
    tmp_path: Path, rand: Callable[[int, int], bytes], read_tree: Callable[[Path], dict[str, bytes]]
) -> None:
    files = {f"f{i}.bin": rand(300 * KiB, i) for i in range(4)}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for key, body in files.items():
            (tmp_path / name / key).write_bytes(body)
    source = Vault.init(LocalStorage(tmp_path / "src"))
    target = Vault.init(LocalStorage(tmp_path / "dst"))
    own = run_backup(target, LocalSource(tmp_path / "a"))  # the target's own backup of the same data
    first, second = run_backup(source, LocalSource(tmp_path / "a")), run_backup(source, LocalSource(tmp_path / "b"))

    report = run_copy(source, Vault.open(target.storage), [first.id, second.id])
    assert report.copied == [first.id, second.id]
    data_chunks = own.stats.new_chunks - len(own.entry_blobs)
    # Every data chunk was in the target already (its own backup, by its own ids): only entry streams are new.
    assert report.chunks_present >= data_chunks and report.chunks_copied <= 2
    out = tmp_path / "out"
    restore_entries(
        Vault.open(target.storage),
        select_entries(Vault.open(target.storage), load_recovery_point(target, second.id)),
        DirectoryTarget(out),
    )
    assert read_tree(out) == files


def test_table_recovery_points_copy_and_restore_into_a_new_table(
    run: Run, ddb: Any, source: Vault, target: Vault
) -> None:
    simple_table(ddb, "users")
    put_all(ddb, "users", [{"pk": {"S": f"u{n}"}, "v": {"N": str(n)}, "b": {"B": bytes([n])}} for n in range(60)])
    first = run_table_backup(source, "dynamodb://users", sleep=NO_SLEEP)
    ddb.put_item(TableName="users", Item={"pk": {"S": "u7"}, "v": {"S": "changed"}})
    second = run_table_backup(source, "dynamodb://users", sleep=NO_SLEEP)

    code, out, err = run("--vault", SOURCE, "copy", "--source", "dynamodb://users", "--to", TARGET, "--json")
    assert code == 0, err
    assert json.loads(out)["copied"] == sorted([first.id, second.id])
    code, _, err = run("--vault", TARGET, "restore", second.id, "--to", "dynamodb://users-copy")
    assert code == 0, err
    assert scan_all(ddb, "users-copy") == scan_all(ddb, "users")
    assert COPIED_FROM in load_recovery_point(Vault.open(target.storage), second.id).extra


def test_bad_copies_are_clear_errors_and_write_nothing(
    run: Run, s3: Any, source: Vault, target: Vault, objects: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    rp = run_backup(source, S3Source("s3://data"))
    code, _, err = run("--vault", SOURCE, "copy", "20990101T000000Z-deadbeef", "--to", TARGET)
    assert code == 1 and "20990101T000000Z-deadbeef does not exist" in err
    s3.create_bucket(Bucket="empty")
    code, _, err = run("--vault", SOURCE, "copy", rp.id, "--to", "s3://empty/v")
    assert code == 1 and "no vault here" in err and list(S3Storage("empty").list("")) == []
    code, _, err = run("--vault", SOURCE, "copy", rp.id, "--to", SOURCE)
    assert code == 2 and "is the source vault itself" in err
    code, _, err = run("--vault", SOURCE, "copy", "--to", TARGET)
    assert code == 2 and "exactly one of them" in err
    code, _, err = run("--vault", SOURCE, "copy", "--source", "s3://other", "--to", TARGET)
    assert code == 1 and "no recovery points of source s3://other" in err

    real = S3Storage.create

    def denied(self: S3Storage, key: str, data: bytes) -> bool:
        if self.bucket == "vault-dst" and key.startswith("data/"):
            raise self._fail(ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "PutObject"), key)
        return real(self, key, data)

    monkeypatch.setattr(S3Storage, "create", denied)
    code, _, err = run("--vault", SOURCE, "copy", rp.id, "--to", TARGET)
    assert code == 1 and "AccessDenied" in err
    assert list_recovery_point_ids(Vault.open(target.storage)) == []
