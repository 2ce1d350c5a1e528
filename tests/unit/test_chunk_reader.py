"""ChunkReader: small chunks read in groups and ranges, yielded in order, each error raised at its own chunk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vaultline.errors import IntegrityError, ObjectMissing
from vaultline.repository import blob_reader
from vaultline.repository.blob_reader import ChunkReader
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.layout import pack_key
from vaultline.repository.packs import BlobType
from vaultline.repository.vault import Vault
from vaultline.storage import LocalStorage


def stored(vault: Vault, blobs: list[bytes]) -> tuple[Vault, list[str]]:
    with BlobWriter(vault, threads=2) as writer:
        ids = [writer.add(blob, BlobType.DATA).hex() for blob in blobs]
        writer.flush()
    return Vault.open(vault.storage), ids


def test_small_chunks_of_several_packs_stream_in_order_with_repeats(
    local_vault: Vault, small_packs: Callable[[Vault, int], Vault], rand: Callable[[int, int], bytes]
) -> None:
    blobs = [rand(200 + seed * 37, seed) for seed in range(300)] + [rand(300_000, 999)]
    vault, ids = stored(small_packs(local_vault, 20_000), blobs)
    order = ids[::-1] + ids[:50] + ids[:50]  # across packs, backwards, with repeats inside one group
    reader = ChunkReader(vault, lookahead=3)
    try:
        expected = {chunk: blob for chunk, blob in zip(ids, blobs, strict=True)}
        assert list(reader.stream(order)) == [expected[chunk] for chunk in order]
        assert list(reader.read(ids[:40])) == blobs[:40]
    finally:
        reader.close()


def test_neighbouring_blobs_of_a_pack_are_read_in_one_range(
    local_vault: Vault, rand: Callable[[int, int], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    vault, ids = stored(local_vault, [rand(1000, seed) for seed in range(100)])
    reads: list[int] = []
    get_range = LocalStorage.get_range

    def counted(self: LocalStorage, key: str, start: int, length: int) -> bytes:
        reads.append(length)
        return get_range(self, key, start, length)

    monkeypatch.setattr(LocalStorage, "get_range", counted)
    reader = ChunkReader(vault)
    try:
        assert len(list(reader.stream(ids))) == 100
    finally:
        reader.close()
    assert len(reads) == 1


def test_a_missing_blob_raises_after_the_chunks_before_it(
    local_vault: Vault, rand: Callable[[int, int], bytes]
) -> None:
    blobs = [rand(500, seed) for seed in range(10)]
    vault, ids = stored(local_vault, blobs)
    absent = "ab" * 32
    reader = ChunkReader(vault)
    got: list[bytes] = []
    try:
        with pytest.raises(ObjectMissing, match=absent):
            got.extend(reader.stream([*ids[:6], absent, *ids[6:]]))
    finally:
        reader.close()
    assert got == blobs[:6]


def test_a_corrupt_blob_fails_its_id_check_and_names_its_pack(
    local_vault: Vault, rand: Callable[[int, int], bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = [rand(500, seed) for seed in range(10)]
    vault, ids = stored(local_vault, blobs)
    location = vault.lookup.get(bytes.fromhex(ids[4]))
    assert location is not None
    path = Path(vault.storage.url) / pack_key(location.pack_id)
    data = bytearray(path.read_bytes())
    data[location.entry.offset + 10] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    monkeypatch.setattr(blob_reader, "GROUP_BYTES", 2000)  # groups of a few chunks: the error is in the third
    reader = ChunkReader(vault)
    got: list[bytes] = []
    try:
        with pytest.raises(IntegrityError, match=location.pack_id[:16]):
            got.extend(reader.stream(ids))
    finally:
        reader.close()
    assert got == blobs[:4]
