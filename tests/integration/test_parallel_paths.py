"""The parallel parts of the CLI's data path: large objects restored in ranges on several threads, multipart parts
uploaded side by side, and sealing and uploads on worker threads, all as exact and as safe as the serial path."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import vaultline.operations.restore as restore_module
import vaultline.repository.blob_writer as blob_writer_module
import vaultline.targets.s3 as s3_target_module
from vaultline.errors import IntegrityError, TargetError, VaultError
from vaultline.operations.backup import run_backup
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.chunking import Chunker
from vaultline.repository.layout import DATA_PREFIX
from vaultline.repository.manifest import iter_entries, list_recovery_point_ids
from vaultline.repository.vault import Vault
from vaultline.sources import LocalSource, open_source
from vaultline.storage import LocalStorage
from vaultline.targets import DirectoryTarget, S3Target
from vaultline.targets.base import RangedWrite

MiB = 1024 * 1024


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def mixed_tree(root: Path) -> dict[str, bytes]:
    """Small files around two large ones: text (compressible) and random bytes, of several megabytes each."""
    rng = random.Random(11)
    files = {
        "a-small.txt": b"hello\n" * 100,
        "b-large.bin": rng.randbytes(5 * MiB + 12345),
        "c-small.bin": rng.randbytes(70_000),
        "d-large.log": b"".join(b"line %d of a log\n" % i for i in range(300_000)),
        "e/f-small.txt": b"tail",
    }
    write_tree(root, files)
    return files


class RecordingTarget(DirectoryTarget):
    """A directory target that notes which threads wrote ranges of which keys."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writers: dict[str, set[str]] = {}

    def write_ranges(self, entry: Any, key: str, size: int) -> RangedWrite | None:
        inner = super().write_ranges(entry, key, size)
        assert inner is not None
        threads = self.writers.setdefault(key, set())

        class Noting(RangedWrite):
            def write_at(self, offset: int, data: bytes) -> None:
                threads.add(threading.current_thread().name)
                inner.write_at(offset, data)

            def commit(self) -> None:
                inner.commit()

            def abort(self) -> None:
                inner.abort()

        return Noting()


def test_large_objects_restore_in_parallel_ranges_bit_exact(
    tmp_path: Path, local_vault: Vault, read_tree: Callable[[Path], dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restore_module, "RANGED_MIN_SIZE", 1 * MiB)
    files = mixed_tree(tmp_path / "src")
    rp = run_backup(local_vault, LocalSource(tmp_path / "src"))
    target = RecordingTarget(tmp_path / "dst")
    outcome = restore_entries(local_vault, select_entries(local_vault, rp), target)
    assert read_tree(tmp_path / "dst") == files
    assert outcome.stats.objects == len(files)
    assert outcome.stats.bytes == sum(len(d) for d in files.values())
    # Only the large objects went the ranged way, each written by the reader's threads, not the caller's.
    assert set(target.writers) == {"b-large.bin", "d-large.log"}
    assert all(name.startswith("vl-read") for names in target.writers.values() for name in names)
    assert not list((tmp_path / "dst").rglob(".vaultline-*"))


def test_a_corrupt_chunk_fails_a_ranged_restore_and_leaves_no_file(
    tmp_path: Path, local_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(restore_module, "RANGED_MIN_SIZE", 1 * MiB)
    write_tree(tmp_path / "src", {"big.bin": random.Random(3).randbytes(4 * MiB)})
    rp = run_backup(local_vault, LocalSource(tmp_path / "src"))
    (pack,) = (tmp_path / "vault").glob(f"{DATA_PREFIX}*/*")
    damaged = bytearray(pack.read_bytes())
    damaged[2 * MiB] ^= 0xFF  # inside one chunk in the middle of the object
    pack.write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError):
        restore_entries(local_vault, select_entries(local_vault, rp), DirectoryTarget(tmp_path / "dst"))
    assert list((tmp_path / "dst").iterdir()) == []  # neither the object nor its temporary file


class FailingTarget(DirectoryTarget):
    """A directory target that notes which threads wrote which keys, and fails one key."""

    def __init__(self, root: Path, failing: str | None = None) -> None:
        super().__init__(root)
        self.failing = failing
        self.threads: set[str] = set()

    def write(self, entry: Any, key: str, chunks: Any) -> None:
        self.threads.add(threading.current_thread().name)
        if key == self.failing:
            raise TargetError(f"cannot write {key}: disk full")
        super().write(entry, key, chunks)


def test_many_small_objects_restore_on_the_reader_threads_bit_exact_with_progress(
    tmp_path: Path, local_vault: Vault, read_tree: Callable[[Path], dict[str, bytes]]
) -> None:
    rng = random.Random(5)
    files = {f"d{n % 7}/f{n:04d}": rng.randbytes(rng.randint(0, 3000)) for n in range(700)}
    write_tree(tmp_path / "src", files)
    rp = run_backup(local_vault, LocalSource(tmp_path / "src"))
    target = FailingTarget(tmp_path / "dst")
    seen = [0, 0]

    def progress(objects: int, nbytes: int) -> None:
        seen[0] += objects
        seen[1] += nbytes

    outcome = restore_entries(local_vault, select_entries(local_vault, rp), target, progress)
    assert read_tree(tmp_path / "dst") == files
    assert outcome.stats.objects == seen[0] == len(files)
    assert outcome.stats.bytes == seen[1] == sum(len(d) for d in files.values())
    assert target.threads and all(name.startswith("vl-read") for name in target.threads)


def test_a_small_object_that_cannot_be_written_fails_the_restore_with_its_name(
    tmp_path: Path, local_vault: Vault
) -> None:
    write_tree(tmp_path / "src", {f"f{n:03d}": b"x" * n for n in range(200)})
    rp = run_backup(local_vault, LocalSource(tmp_path / "src"))
    target = FailingTarget(tmp_path / "dst", failing="f150")
    with pytest.raises(TargetError, match="f150"):
        restore_entries(local_vault, select_entries(local_vault, rp), target)
    # Every object before it was written whole; none left a temporary file.
    assert {p.name for p in (tmp_path / "dst").iterdir()} >= {f"f{n:03d}" for n in range(150)}
    assert not list((tmp_path / "dst").rglob(".vaultline-*"))


def test_large_object_restores_into_s3_with_parts_uploaded_in_parallel(
    s3: Any, make_bucket: Callable[..., str], s3_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    # S3's smallest part is 5 MiB: four parts and a short last one, so several are in flight at once.
    monkeypatch.setattr(s3_target_module, "PART_SIZE", 5 * MiB)
    monkeypatch.setattr(s3_target_module, "MULTIPART_THRESHOLD", 5 * MiB)
    make_bucket("big")
    data = random.Random(8).randbytes(16 * MiB + 7)
    s3.put_object(Bucket="big", Key="blob.bin", Body=data)
    rp = run_backup(s3_vault, open_source("s3://big"))
    make_bucket("big-copy")
    restore_entries(s3_vault, select_entries(s3_vault, rp), S3Target("s3://big-copy"))
    assert s3.get_object(Bucket="big-copy", Key="blob.bin")["Body"].read() == data
    assert s3.list_multipart_uploads(Bucket="big-copy").get("Uploads", []) == []


def test_a_failed_part_aborts_the_multipart_upload(
    s3: Any, make_bucket: Callable[..., str], s3_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_target_module, "PART_SIZE", 5 * MiB)
    monkeypatch.setattr(s3_target_module, "MULTIPART_THRESHOLD", 5 * MiB)
    make_bucket("big")
    s3.put_object(Bucket="big", Key="blob.bin", Body=random.Random(9).randbytes(16 * MiB))
    rp = run_backup(s3_vault, open_source("s3://big"))
    make_bucket("big-copy")
    target = S3Target("s3://big-copy")
    real_part = target._part

    def flaky_part(upload: dict[str, Any], number: int, body: bytes) -> dict[str, Any]:
        if number == 2:
            raise ConnectionResetError("part 2: connection reset by peer")
        return real_part(upload, number, body)

    monkeypatch.setattr(target, "_part", flaky_part)
    with pytest.raises(ConnectionResetError, match="part 2"):
        restore_entries(s3_vault, select_entries(s3_vault, rp), target)
    assert s3.list_multipart_uploads(Bucket="big-copy").get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket="big-copy").get("KeyCount") == 0


class FailingPuts(LocalStorage):
    """Local storage whose pack uploads fail after the first: a disk or a network failing mid-backup."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.packs = 0

    def create(self, key: str, data: bytes) -> bool:  # packs are conditional creates
        if key.startswith(DATA_PREFIX):
            self.packs += 1
            if self.packs > 1:
                raise VaultError(f"{key}: no space left on device")
        return super().create(key, data)


def test_a_failed_upload_on_a_worker_thread_fails_the_backup_and_commits_nothing(
    tmp_path: Path, small_packs: Callable[[Vault, int], Vault]
) -> None:
    write_tree(tmp_path / "src", {f"f{i}.bin": random.Random(i).randbytes(300_000) for i in range(12)})
    storage = FailingPuts(tmp_path / "vault")
    vault = small_packs(Vault.init(storage), 1 * MiB)
    with pytest.raises(VaultError, match="no space left on device"):
        run_backup(vault, LocalSource(tmp_path / "src"))
    assert list_recovery_point_ids(Vault.open(LocalStorage(tmp_path / "vault"))) == []


def test_a_failed_seal_on_a_worker_thread_fails_the_backup_and_commits_nothing(
    tmp_path: Path, local_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_tree(tmp_path / "src", {f"f{i}.bin": random.Random(i).randbytes(200_000) for i in range(10)})
    real = blob_writer_module.compress
    calls = []

    def failing(data: bytes, level: int) -> Any:
        calls.append(threading.current_thread().name)
        if len(calls) == 5:
            raise MemoryError("zstd: cannot allocate the compression context")
        return real(data, level)

    monkeypatch.setattr(blob_writer_module, "compress", failing)
    with pytest.raises(MemoryError, match="compression context"):
        run_backup(local_vault, LocalSource(tmp_path / "src"))
    assert all(name.startswith("vaultline-seal") for name in calls)
    assert list_recovery_point_ids(local_vault) == []


def test_manifest_holds_the_serial_chunking_in_listing_order_whatever_the_threads_did(
    tmp_path: Path, local_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = mixed_tree(tmp_path / "src")
    chunker = Chunker(local_vault.config.chunker)
    expected = [
        (key, len(data), [local_vault.cipher.chunk_id(c).hex() for c in chunker.split_bytes(data)])
        for key, data in sorted(files.items())
    ]
    for threads in (1, 4):  # a second vault state each time: the first run stores, the second finds every blob
        monkeypatch.setattr(blob_writer_module, "default_threads", lambda threads=threads: threads)
        rp = run_backup(local_vault, LocalSource(tmp_path / "src"))
        assert [(e.key, e.size, e.chunks) for e in iter_entries(local_vault, rp)] == expected
