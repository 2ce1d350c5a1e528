"""BlobWriter: dedup, packs of the configured size, one index per flush, blobs readable after flush."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from vaultline.repository import blob_writer
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.compact_index import KEY_SIZE
from vaultline.repository.layout import INDEX_PREFIX
from vaultline.repository.packs import BlobType
from vaultline.repository.vault import Vault


def test_duplicate_blobs_are_stored_once(local_vault: Vault) -> None:
    with BlobWriter(local_vault) as writer:
        first = writer.add(b"same" * 1000, BlobType.DATA)
        second = writer.add(b"same" * 1000, BlobType.DATA)
        stats = writer.flush()
    assert first == second
    assert stats.new_blobs == 1
    assert stats.duplicate_blobs == 1
    assert len(stats.packs) == 1
    assert local_vault.read_blob(first) == b"same" * 1000


def test_blobs_already_in_the_vault_are_not_stored_again(local_vault: Vault) -> None:
    with BlobWriter(local_vault) as writer:
        writer.add(b"once", BlobType.DATA)
        writer.flush()
    reopened = Vault.open(local_vault.storage)
    with BlobWriter(reopened) as writer:
        writer.add(b"once", BlobType.DATA)
        stats = writer.flush()
    assert stats.new_blobs == 0
    assert stats.packs == []
    assert stats.index_ids == []


def test_packs_are_cut_at_the_configured_size(
    local_vault: Vault, small_packs: Callable[[Vault, int], Vault], rand: Callable[[int, int], bytes]
) -> None:
    vault = small_packs(local_vault, 100_000)
    blobs = [rand(30_000, seed) for seed in range(10)]
    with BlobWriter(vault, threads=2) as writer:
        ids = [writer.add(b, BlobType.DATA) for b in blobs]
        stats = writer.flush()
    assert len(stats.packs) >= 3
    assert len(stats.index_ids) == 1
    assert len(list(vault.storage.list(INDEX_PREFIX))) == 1
    fresh = Vault.open(vault.storage)
    assert [fresh.read_blob(i) for i in ids] == blobs
    for pack_id in stats.packs:
        header = [e.id[:KEY_SIZE] for e in fresh.read_verified_pack_entries(pack_id)]
        assert header == [e.id for e in fresh.index.packs[pack_id]]


def test_unflushed_blobs_are_not_indexed(local_vault: Vault) -> None:
    with BlobWriter(local_vault) as writer:
        writer.add(b"abandoned", BlobType.DATA)
    assert list(local_vault.storage.list(INDEX_PREFIX)) == []
    assert len(Vault.open(local_vault.storage).index) == 0


def test_a_long_write_indexes_its_packs_every_few_blobs_and_still_dedups(
    local_vault: Vault, small_packs: Callable[[Vault, int], Vault], rand: Callable[[int, int], bytes]
) -> None:
    vault = small_packs(local_vault, 50_000)
    blobs = [rand(30_000, seed) for seed in range(20)]
    with BlobWriter(vault, threads=2) as writer:
        writer.flush_blobs = 4
        ids = [writer.add(b, BlobType.DATA) for b in blobs]
        indexed_before_flush = len(list(vault.storage.list(INDEX_PREFIX)))
        pending_before_flush = len(writer._pending)
        again = writer.add(blobs[0], BlobType.DATA)
        stats = writer.flush()
    assert indexed_before_flush >= 2
    assert pending_before_flush < len(blobs)
    assert again == ids[0] and stats.duplicate_blobs == 1 and stats.new_blobs == len(blobs)
    assert len(stats.index_ids) == len(list(vault.storage.list(INDEX_PREFIX))) >= 3
    fresh = Vault.open(vault.storage)
    assert set(fresh.index.packs) == set(stats.packs)
    assert [fresh.read_blob(i) for i in ids] == blobs


def test_blobs_added_in_groups_are_stored_and_deduplicated_as_blobs_added_one_by_one(
    local_vault: Vault, rand: Callable[[int, int], bytes]
) -> None:
    blobs = [rand(3000, seed % 40) for seed in range(100)]  # 40 distinct blobs, each several times
    with BlobWriter(local_vault, threads=2) as writer:
        groups = [writer.add_group(blobs[start : start + 7], BlobType.DATA) for start in range(0, 100, 7)]
        writer.resolve_groups()
        ids = [blob_id for group in groups for blob_id in group.ids()]
        stats = writer.flush()
    assert ids == [local_vault.cipher.chunk_id(b) for b in blobs]
    assert (stats.new_blobs, stats.duplicate_blobs) == (40, 60)
    fresh = Vault.open(local_vault.storage)
    assert [fresh.read_blob(i) for i in ids] == blobs
    with BlobWriter(fresh) as writer:
        writer.add_group(blobs, BlobType.DATA)
        again = writer.flush()
    assert (again.new_blobs, again.packs) == (0, [])


def test_a_group_s_ids_are_not_given_before_the_writer_has_them(local_vault: Vault) -> None:
    with BlobWriter(local_vault) as writer:
        group = writer.add_group([b"x" * 100], BlobType.DATA)
        with pytest.raises(RuntimeError, match="resolve_groups"):
            group.ids()
        writer.flush()
        assert group.ids() == [local_vault.cipher.chunk_id(b"x" * 100)]


def test_what_a_flushed_writer_holds_is_stored_as_a_few_packs_side_by_side(
    local_vault: Vault, rand: Callable[[int, int], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_writer, "FINAL_PIECE_BYTES", 50_000)
    local_vault.storage.put_concurrency = 2  # as S3's: the last pack's pieces upload together
    blobs = [rand(30_000, seed) for seed in range(20)]
    with BlobWriter(local_vault, threads=2) as writer:
        ids = [writer.add(b, BlobType.DATA) for b in blobs]
        stats = writer.flush()
    # 600 KB, far below one pack: cut in FINAL_PIECES packs of about equal size, each blob in one of them.
    assert len(stats.packs) == blob_writer.FINAL_PIECES
    fresh = Vault.open(local_vault.storage)
    assert [fresh.read_blob(i) for i in ids] == blobs
    sizes = []
    for pack_id in stats.packs:
        entries = fresh.read_verified_pack_entries(pack_id)
        assert [e.id[:KEY_SIZE] for e in entries] == [e.id for e in fresh.index.packs[pack_id]]
        sizes.append(sum(e.stored_length for e in entries))
    assert sum(sizes) == sum(len(b) for b in blobs) and max(sizes) - min(sizes) <= 2 * 30_000


def test_a_writer_with_one_upload_at_a_time_keeps_its_last_pack_whole(
    local_vault: Vault, rand: Callable[[int, int], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(blob_writer, "FINAL_PIECE_BYTES", 50_000)
    with BlobWriter(local_vault, threads=2) as writer:
        for seed in range(20):
            writer.add(rand(30_000, seed), BlobType.DATA)
        assert len(writer.flush().packs) == 1
