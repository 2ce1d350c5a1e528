"""Prune and repack: what goes, what stays, crash safety at every step, and locking against backups."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import set_pack_size, tree_files
from vaultline.errors import IntegrityError
from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.forget_run import forget_staged
from vaultline.operations.prune import PruneOptions, prune
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.operations.retention import RetentionPolicy
from vaultline.repository.layout import LOCK_PREFIX, pack_key
from vaultline.repository.locks import VaultLocked, acquire, list_locks
from vaultline.repository.manifest import ObjectEntry, RecoveryPoint, list_recovery_points
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.sources.base import Source
from vaultline.storage import LocalStorage
from vaultline.targets import DirectoryTarget

BLOB = 20_000  # incompressible, one chunk each; three fill a 60 000-byte pack


class Crash(Exception):
    """Stands for the process dying at a fault point."""


def write(src: Path, files: dict[str, int]) -> None:
    for name, seed in files.items():
        (src / name).write_bytes(random.Random(seed).randbytes(BLOB))


def build(tmp: Path) -> tuple[Vault, Path, dict[str, dict[str, bytes]]]:
    """RP1 holds f0..f5 (packs [f0 f1 f2] [f3 f4 f5] [manifest]); RP2 changes f1 f2 f3. Forgetting RP1 leaves
    the first pack one-third live (repack), the second two-thirds live (keep), RP1's manifest pack garbage."""
    src = tmp / "src"
    src.mkdir()
    vault = set_pack_size(Vault.init(LocalStorage(tmp / "vault")), 3 * BLOB)
    write(src, {f"f{i}": i for i in range(6)})
    rp1 = run_backup(vault, open_source(str(src)))
    write(src, {"f1": 101, "f2": 102, "f3": 103})
    rp2 = run_backup(vault, open_source(str(src)))
    expected = {rp2.id: tree_files(src)}
    forget_staged(vault, [], every_source=RetentionPolicy(keep_last=1))
    assert [rp.id for rp in list_recovery_points(vault)] == [rp2.id] and rp1.id not in expected
    return vault, src, expected


def assert_restores(vault: Vault, expected: dict[str, dict[str, bytes]], scratch: Path) -> None:
    fresh = Vault.open(vault.storage)
    for rp in list_recovery_points(fresh):
        target = scratch / rp.id
        restore_entries(fresh, select_entries(fresh, rp), DirectoryTarget(target))
        assert tree_files(target) == expected[rp.id]
    assert check_vault(fresh, read_data=True).errors == []


def test_prune_deletes_garbage_repacks_sparse_packs_and_keeps_every_live_chunk(tmp_path: Path) -> None:
    vault, _, expected = build(tmp_path)
    before = list_pack_ids(vault.storage)
    report = prune(vault)
    assert (report.packs_deleted, report.packs_repacked, report.packs_written) == (1, 1, 1)
    assert report.blobs_repacked == 1 and report.bytes_freed > 2 * BLOB
    after = list_pack_ids(vault.storage)
    assert len(after) == len(before) - 1 and report.packs_after == len(after)
    assert_restores(vault, expected, tmp_path / "restore")
    again = prune(vault)
    assert (again.packs_deleted, again.packs_repacked, again.unindexed_packs_deleted) == (0, 0, 0)
    assert list(vault.storage.list(LOCK_PREFIX)) == []


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    vault, _, _ = build(tmp_path)
    before = sorted(o.key for o in vault.storage.list(""))
    report = prune(vault, PruneOptions(dry_run=True))
    assert report.dry_run and report.packs_repacked == 1
    assert sorted(o.key for o in vault.storage.list("")) == before


def test_a_threshold_of_zero_deletes_but_never_repacks(tmp_path: Path) -> None:
    vault, _, expected = build(tmp_path)
    report = prune(vault, PruneOptions(repack_threshold=0.0))
    assert (report.packs_deleted, report.packs_repacked) == (1, 0)
    assert_restores(vault, expected, tmp_path / "restore")


def test_a_crash_after_any_step_loses_nothing_and_the_next_prune_finishes(tmp_path: Path) -> None:
    steps_seen: list[str] = []
    crash_at = 0
    while True:
        case = tmp_path / f"crash-{crash_at}"
        case.mkdir()
        vault, _, expected = build(case)
        calls: list[str] = []

        def fault(step: str, calls: list[str] = calls, at: int = crash_at) -> None:
            calls.append(step)
            if len(calls) == at + 1:
                raise Crash(step)

        try:
            prune(vault, fault=fault)
        except Crash:
            steps_seen.append(calls[-1])
            assert_restores(vault, expected, case / "after-crash")
            finished = prune(Vault.open(vault.storage))
            assert_restores(vault, expected, case / "after-next-prune")
            assert check_vault(Vault.open(vault.storage)).warnings == []
            idle = prune(Vault.open(vault.storage))
            assert (idle.packs_deleted, idle.packs_repacked, idle.unindexed_packs_deleted) == (0, 0, 0), finished
            crash_at += 1
            continue
        break
    # Every kind of step was interrupted at least once: upload, index write, index delete, pack delete.
    assert set(steps_seen) == {"pack-written", "index-written", "index-deleted", "pack-deleted"}
    assert crash_at == len(steps_seen) >= 5


def test_prune_refuses_a_vault_whose_live_chunks_are_missing(tmp_path: Path) -> None:
    vault, _, _ = build(tmp_path)
    rp = list_recovery_points(vault)[0]
    first = next(iter(vault.index.packs))
    vault.storage.delete(pack_key(first))
    before = sorted(o.key for o in vault.storage.list("data/"))
    with pytest.raises(IntegrityError, match="prune refuses"):
        prune(Vault.open(vault.storage))
    assert sorted(o.key for o in vault.storage.list("data/")) == before and rp


class PausingSource(Source):
    """A directory source that runs ``during`` after listing its first object: a deterministic interleaving."""

    def __init__(self, inner: Source, during: object) -> None:
        self.inner = inner
        self.during = during
        self.url = inner.url
        self.kind = inner.kind

    def list(self) -> Iterator[ObjectEntry]:
        for n, entry in enumerate(self.inner.list()):
            yield entry
            if n == 0:
                self.during()  # type: ignore[operator]

    def open(self, entry: ObjectEntry):  # type: ignore[no-untyped-def]
        return self.inner.open(entry)


def test_a_prune_during_a_backup_is_refused_and_the_chunks_the_backup_reuses_survive(tmp_path: Path) -> None:
    vault, src, expected = build(tmp_path)
    # f0's original content is garbage-to-be only if the backup did not reuse it; restore it so the backup dedups
    # against chunks that no recovery point references right now (RP1 was forgotten).
    write(src, {"f1": 1, "f2": 2, "f3": 3})
    outcomes: list[str] = []

    def concurrent_prune() -> None:
        with pytest.raises(VaultLocked, match="backup lock"):
            prune(Vault.open(vault.storage))
        outcomes.append("refused")

    rp = run_backup(Vault.open(vault.storage), PausingSource(open_source(str(src)), concurrent_prune))
    assert outcomes == ["refused"]
    assert rp.stats.new_chunks == 1  # only the manifest blob: f1..f3 were deduplicated against forgotten data
    expected[rp.id] = tree_files(src)
    prune(Vault.open(vault.storage))
    assert_restores(vault, expected, tmp_path / "restore")


def test_a_backup_during_a_prune_is_refused_and_succeeds_afterwards(tmp_path: Path) -> None:
    vault, src, expected = build(tmp_path)
    refused: list[str] = []

    def fault(step: str) -> None:
        if step == "index-written":
            with pytest.raises(VaultLocked, match="prune lock"):
                run_backup(Vault.open(vault.storage), open_source(str(src)))
            refused.append(step)

    prune(vault, fault=fault)
    # Index objects are written twice: the sweep's for its new packs, then Finish's replacements.
    assert refused and set(refused) == {"index-written"}
    assert [k for k, _ in list_locks(vault.storage)] == []
    rp: RecoveryPoint = run_backup(Vault.open(vault.storage), open_source(str(src)))
    expected[rp.id] = tree_files(src)
    assert_restores(vault, expected, tmp_path / "restore")


def test_a_stale_lock_of_a_dead_backup_does_not_block_prune_but_a_fresh_one_does(tmp_path: Path) -> None:
    vault, _, _ = build(tmp_path)
    now = datetime.now(UTC)
    acquire(vault.storage, "backup", exclusive=False, now=now - timedelta(hours=2), owner="dead")
    report = prune(vault, now=now)
    assert report.stale_locks_removed == 1
    fresh = acquire(vault.storage, "backup", exclusive=False, owner="alive")
    with pytest.raises(VaultLocked, match="alive"):
        prune(Vault.open(vault.storage))
    # The refused prune removed its own lock object: only the live backup's remains.
    assert [k for k, _ in list_locks(vault.storage)] == [fresh.id]


def test_shared_locks_coexist_and_an_exclusive_lock_excludes_them(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "v")
    a = acquire(storage, "backup", exclusive=False)
    b = acquire(storage, "backup", exclusive=False)
    with pytest.raises(VaultLocked):
        acquire(storage, "prune", exclusive=True)
    assert sorted(k for k, _ in list_locks(storage)) == sorted([a.id, b.id])
