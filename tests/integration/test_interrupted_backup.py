"""A backup that dies half way leaves no recovery point; the next one succeeds and reuses what was uploaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

import vaultline.repository.blob_writer
import vaultline.repository.commit
from vaultline.cli.main import main
from vaultline.errors import SourceError
from vaultline.operations.backup import recover_unindexed_packs, run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.chunking import Readable
from vaultline.repository.manifest import ObjectEntry, iter_entries, list_recovery_point_ids
from vaultline.repository.vault import Vault
from vaultline.sources import S3Source, Source
from vaultline.storage import LocalStorage
from vaultline.targets import DirectoryTarget

KiB = 1024
OBJECTS = 20
OBJECT_SIZE = 600 * KiB


class FailingSource(Source):
    """Delegates to a real source but fails when asked to open the ``fail_at``-th object (a dropped connection)."""

    def __init__(self, inner: Source, fail_at: int) -> None:
        self.inner = inner
        self.url = inner.url
        self.kind = inner.kind
        self.fail_at = fail_at
        self.opened = 0

    def list(self) -> Iterator[ObjectEntry]:
        return self.inner.list()

    def open(self, listed: ObjectEntry) -> AbstractContextManager[tuple[Readable, ObjectEntry]]:
        self.opened += 1
        if self.opened == self.fail_at:
            raise SourceError(f"s3://{listed.key}: connection reset by peer")
        return self.inner.open(listed)


@pytest.fixture
def bucket(s3: Any, make_bucket: Callable[..., str], rand: Callable[[int, int], bytes]) -> dict[str, bytes]:
    make_bucket("busy")
    objects = {f"part-{i:02d}.bin": rand(OBJECT_SIZE, i) for i in range(OBJECTS)}
    for key, data in objects.items():
        s3.put_object(Bucket="busy", Key=key, Body=data)
    return objects


@pytest.fixture
def vault(tmp_path: Path, small_packs: Callable[[Vault, int], Vault], monkeypatch: pytest.MonkeyPatch) -> Vault:
    # Packs of 1 MiB so that a few MiB of objects ship several packs before the crash; two sealing threads so
    # that what is still in flight at the crash (a few chunks per thread) does not depend on the machine's cores.
    monkeypatch.setattr(vaultline.repository.blob_writer, "default_threads", lambda: 2)
    return small_packs(Vault.init(LocalStorage(tmp_path / "vault")), 1024 * KiB)


def stored_pack_bytes(vault: Vault) -> int:
    return sum(o.size for o in vault.storage.list("data/"))


def test_backup_killed_mid_way_leaves_no_recovery_point_and_the_retry_reuses_uploaded_packs(
    bucket: dict[str, bytes], vault: Vault, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failing = FailingSource(S3Source("s3://busy"), fail_at=OBJECTS - 1)
    with pytest.raises(SourceError, match="connection reset"):
        run_backup(vault, failing)

    assert list_recovery_point_ids(Vault.open(vault.storage)) == []
    assert main(["--vault", str(vault.storage.url), "list", "--json"]) == 0
    assert capsys.readouterr().out.strip() == "[]"
    uploaded = stored_pack_bytes(vault)
    assert uploaded >= 10 * OBJECT_SIZE  # most of what was read reached storage before the failure
    report = check_vault(Vault.open(vault.storage))
    assert report.ok
    assert report.warnings and all("not indexed" in w for w in report.warnings)

    retry = run_backup(Vault.open(vault.storage), S3Source("s3://busy"))
    assert retry.stats.objects == OBJECTS
    total = OBJECTS * OBJECT_SIZE
    assert retry.stats.bytes_stored < total - uploaded + OBJECT_SIZE
    assert retry.stats.bytes_stored < uploaded / 2
    assert retry.stats.bytes_stored < total / 2
    assert retry.stats.duplicate_chunks > 0

    fresh = Vault.open(vault.storage)
    report = check_vault(fresh, read_data=True)
    assert report.errors == [] and report.warnings == []
    restore_entries(fresh, select_entries(fresh, retry), DirectoryTarget(tmp_path / "out"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == bucket


def test_recover_unindexed_packs_makes_orphan_packs_visible(bucket: dict[str, bytes], vault: Vault) -> None:
    with pytest.raises(SourceError):
        run_backup(vault, FailingSource(S3Source("s3://busy"), fail_at=OBJECTS))
    reopened = Vault.open(vault.storage)
    orphans = len(list(reopened.storage.list("data/"))) - len(reopened.index.packs)
    assert orphans > 0
    assert recover_unindexed_packs(reopened) == orphans
    assert recover_unindexed_packs(reopened) == 0
    again = Vault.open(vault.storage)
    assert set(again.index.packs) == {o.key.rsplit("/", 1)[-1] for o in again.storage.list("data/")}
    # The recovered entries are the packs' own headers: every blob reads back and verifies (by its full id, which
    # the headers hold; the index keeps 16-byte keys).
    for pack_id in again.index.packs:
        for entry in again.read_verified_pack_entries(pack_id):
            again.read_blob(entry.id)


def test_crash_before_the_manifest_is_written_leaves_no_recovery_point(
    bucket: dict[str, bytes], vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*_: object) -> None:
        raise RuntimeError("lambda timed out")

    with monkeypatch.context() as patch:
        patch.setattr(vaultline.repository.commit, "commit_recovery_point", crash)
        with pytest.raises(RuntimeError, match="timed out"):
            run_backup(vault, S3Source("s3://busy"))
    assert list_recovery_point_ids(Vault.open(vault.storage)) == []
    uploaded = stored_pack_bytes(vault)
    assert uploaded >= OBJECTS * OBJECT_SIZE

    retry = run_backup(Vault.open(vault.storage), S3Source("s3://busy"))
    assert retry.stats.new_chunks == 0
    assert retry.stats.bytes_stored == 0
    assert stored_pack_bytes(vault) == uploaded
    assert [e.key for e in iter_entries(vault, retry)] == sorted(bucket)
    assert list_recovery_point_ids(Vault.open(vault.storage)) == [retry.id]


def test_crash_in_the_cli_exits_1_and_writes_no_recovery_point(
    bucket: dict[str, bytes], vault: Vault, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def crash(*_: object) -> None:
        raise SourceError("source bucket busy vanished")

    monkeypatch.setattr(vaultline.repository.commit, "commit_recovery_point", crash)
    assert main(["--vault", str(vault.storage.url), "backup", "s3://busy", "--json"]) == 1
    assert "source bucket busy vanished" in capsys.readouterr().err
    monkeypatch.undo()
    assert list_recovery_point_ids(Vault.open(vault.storage)) == []
