"""A compacted vault (index generation with catalog, shards and filter) under backup, restore and prune."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import tree_files
from tests.integration.test_prune import Crash, assert_restores, build, write
from vaultline.operations.backup import run_backup
from vaultline.operations.compact import compact_index
from vaultline.operations.prune import prune
from vaultline.repository.layout import pack_key
from vaultline.repository.sharded_index import ShardedIndex, current_catalog, list_generations
from vaultline.repository.vault import Vault
from vaultline.sources import open_source


def catalog_packs_exist(vault: Vault) -> bool:
    """Every pack the current catalog's generation names exists (vacuously, with no catalog)."""
    lookup = Vault.open(vault.storage).lookup
    if not isinstance(lookup, ShardedIndex):
        return True
    table = lookup.pack_table()
    return all(vault.storage.exists(pack_key(table[at : at + 32].hex())) for at in range(0, len(table), 32))


def test_a_backup_of_a_compacted_vault_dedups_through_the_shards(tmp_path: Path) -> None:
    vault, src, expected = build(tmp_path)
    assert compact_index(vault).generation is not None
    for name in ("f1", "f4"):  # the same bytes under new names: no parent entry to dedup against
        shutil.copy(src / name, src / f"copy-of-{name}")
    fresh = Vault.open(vault.storage)
    rp = run_backup(fresh, open_source(str(src)))
    assert isinstance(fresh.lookup, ShardedIndex)
    assert rp.stats.new_chunks == 1  # only the new entry stream
    assert fresh.lookup.counters.shard_gets >= 1
    expected[rp.id] = tree_files(src)
    assert_restores(vault, expected, tmp_path / "restore")


@pytest.mark.parametrize("fault_at", [None, "pack-written", "index-written", "index-deleted", "pack-deleted"])
def test_prune_after_compaction_never_leaves_a_catalog_naming_a_deleted_pack(
    tmp_path: Path, fault_at: str | None
) -> None:
    vault, _, expected = build(tmp_path)
    compact_index(vault)

    def fault(step: str) -> None:
        assert catalog_packs_exist(vault)
        if step == fault_at:
            raise Crash(step)

    if fault_at is None:
        prune(vault, fault=fault)
    else:
        with pytest.raises(Crash):
            prune(vault, fault=fault)
    assert catalog_packs_exist(vault)
    if fault_at in ("index-deleted", "pack-deleted"):  # Finish retires it before its first deletion
        assert list_generations(vault.storage) == []
    prune(Vault.open(vault.storage))
    assert_restores(vault, expected, tmp_path / "restore")
    compact_index(Vault.open(vault.storage))  # the next compaction makes a catalog again
    assert catalog_packs_exist(vault)
    assert_restores(vault, expected, tmp_path / "restore-again")


def test_a_prune_that_removes_nothing_keeps_the_catalog(tmp_path: Path) -> None:
    vault, src, _ = build(tmp_path)
    prune(vault)
    generation = compact_index(Vault.open(vault.storage)).generation
    report = prune(Vault.open(vault.storage))
    assert report.packs_deleted == report.packs_repacked == 0
    index_ids = {o.key[6:] for o in vault.storage.list("index/")}
    current = current_catalog(vault.storage, vault.cipher, index_ids)
    assert current is not None and current.generation == generation
    write(src, {"f5": 505})
    rp = run_backup(Vault.open(vault.storage), open_source(str(src)))
    assert rp.stats.new_chunks == 2  # the changed file and the entry stream
