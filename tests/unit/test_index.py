"""Index objects (version 1 JSON and version 2 binary), the compact master index, loading from storage."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultline.errors import FormatVersionError, IntegrityError
from vaultline.repository import index as index_module
from vaultline.repository.compact_index import KEY_SIZE, CompactIndexBuilder
from vaultline.repository.compression import compress_document, decompress_document
from vaultline.repository.crypto import Cipher
from vaultline.repository.index import MasterIndex, decode_index, encode_index, load_master_index, write_index
from vaultline.repository.index_codec import INDEX_AAD, V2_MAGIC, V2_RECORD
from vaultline.repository.layout import CONFIG_KEY, INDEX_PREFIX
from vaultline.repository.packs import BlobEntry
from vaultline.repository.vault import Vault
from vaultline.storage import LocalStorage

CIPHERS = {"encrypted": Cipher.from_master(b"k" * 32), "plain": Cipher.unencrypted(b"s" * 32)}


def pack_id(n: int) -> str:
    return blake3.blake3(b"pack %d" % n).hexdigest()


def blob_id(n: int) -> bytes:
    return blake3.blake3(b"blob %d" % n).digest()


PACKS = [
    (pack_id(1), [BlobEntry(blob_id(1), 0, 1, 0, 100, 400), BlobEntry(blob_id(2), 1, 0, 100, 50, 50)]),
    (pack_id(2), [BlobEntry(blob_id(3), 0, 0, 0, 7, 7)]),
    (pack_id(3), []),
]

u32 = st.integers(min_value=0, max_value=2**32 - 1)
entries = st.lists(
    st.builds(BlobEntry, st.binary(min_size=32, max_size=32), st.integers(0, 1), st.integers(0, 1), u32, u32, u32),
    max_size=6,
)
packs_strategy = st.lists(st.tuples(st.binary(min_size=32, max_size=32).map(bytes.hex), entries), max_size=5)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("mode", sorted(CIPHERS))
def test_encode_decode_round_trip(mode: str, version: int) -> None:
    cipher = CIPHERS[mode]
    index_id, stored = encode_index(PACKS, cipher, version)
    assert len(index_id) == 64
    assert decode_index(stored, cipher, "index") == PACKS


@settings(max_examples=60, deadline=None)
@given(packs=packs_strategy, version=st.sampled_from([1, 2]))
def test_any_packs_round_trip_in_pack_order(packs: list[tuple[str, list[BlobEntry]]], version: int) -> None:
    _, stored = encode_index(packs, CIPHERS["plain"], version)
    decoded = decode_index(stored, CIPHERS["plain"], "index")
    if version == 1:
        assert decoded == packs
    else:  # version 2 keeps each pack's entries in offset order (a pack header's order)
        assert [(p, sorted(e, key=astuple)) for p, e in decoded] == [(p, sorted(e, key=astuple)) for p, e in packs]
        assert all([x.offset for x in e] == sorted(x.offset for x in e) for _, e in decoded)


def test_version_2_is_binary_with_records_sorted_by_blob_id() -> None:
    _, stored = encode_index(PACKS, CIPHERS["plain"], 2)
    body = decompress_document(CIPHERS["plain"].open(stored, INDEX_AAD, "index"), "index")
    assert body[:4] == V2_MAGIC
    records = body[12 + 32 * len(PACKS) :]
    ids = [r[0] for r in V2_RECORD.iter_unpack(records)]
    assert ids == sorted([blob_id(1), blob_id(2), blob_id(3)])
    assert body[12 : 12 + 32] == bytes.fromhex(pack_id(1))


def test_version_2_is_no_bigger_than_version_1() -> None:
    many = [(pack_id(p), [BlobEntry(blob_id(p * 100 + i), 0, 1, i * 10, 10, 20) for i in range(50)]) for p in range(40)]
    assert len(encode_index(many, CIPHERS["plain"], 2)[1]) < len(encode_index(many, CIPHERS["plain"], 1)[1])


def test_encrypted_index_hides_blob_ids() -> None:
    for version in (1, 2):
        _, stored = encode_index(PACKS, CIPHERS["encrypted"], version)
        assert blob_id(1) not in stored and blob_id(1).hex().encode() not in stored


def test_decode_with_wrong_key_raises_integrity_error() -> None:
    _, stored = encode_index(PACKS, CIPHERS["encrypted"], 2)
    with pytest.raises(IntegrityError):
        decode_index(stored, Cipher.from_master(b"z" * 32), "index")


def test_truncated_index_raises_integrity_error() -> None:
    _, stored = encode_index(PACKS, CIPHERS["plain"], 2)
    with pytest.raises(IntegrityError):
        decode_index(stored[: len(stored) // 2], CIPHERS["plain"], "index")


def test_malformed_index_document_raises_integrity_error() -> None:
    stored = compress_document(b'{"version": 1, "packs": [{"id": "x"}]}')
    with pytest.raises(IntegrityError, match="malformed index"):
        decode_index(stored, CIPHERS["plain"], "index")


def test_version_2_body_of_the_wrong_length_raises_integrity_error() -> None:
    _, stored = encode_index(PACKS, CIPHERS["plain"], 2)
    body = decompress_document(stored, "index")
    with pytest.raises(IntegrityError, match="malformed index"):
        decode_index(compress_document(body[:-1]), CIPHERS["plain"], "index")


def test_version_2_record_naming_a_missing_pack_raises_integrity_error() -> None:
    body = V2_MAGIC + (1).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(32)
    body += V2_RECORD.pack(blob_id(1), 7, 0, 1, 1, 0, 0)
    with pytest.raises(IntegrityError, match="names pack 7"):
        decode_index(compress_document(body), CIPHERS["plain"], "index")


def test_unknown_index_body_raises_format_version_error() -> None:
    with pytest.raises(FormatVersionError, match="supported: 1, 2"):
        decode_index(compress_document(b"VLI9...."), CIPHERS["plain"], "index")
    with pytest.raises(FormatVersionError, match="version 3"):
        decode_index(compress_document(b'{"version": 3, "packs": []}'), CIPHERS["plain"], "index")


def test_master_index_first_writer_wins() -> None:
    index = MasterIndex()
    entry = BlobEntry(blob_id(9), 0, 0, 0, 1, 1)
    index.add_pack(pack_id(1), [entry])
    index.add_pack(pack_id(2), [entry])
    assert entry.id in index
    assert len(index) == 1
    location = index.get(entry.id)
    assert location is not None and location.pack_id == pack_id(1)
    assert set(index.packs) == {pack_id(1), pack_id(2)}


@given(st.lists(st.integers(0, 40), max_size=30), st.lists(st.integers(0, 40), max_size=10))
@settings(max_examples=50, deadline=None)
def test_sorted_pack_ids_merge_the_compact_runs_and_the_recent_packs_once_each(
    loaded: list[int], added: list[int]
) -> None:
    # The verify plan merge-joins this stream with the listing of data/: it must be sorted and without repeats.
    builder = CompactIndexBuilder()
    for n in loaded:
        builder.add_pack(pack_id(n), [BlobEntry(blob_id(n), 0, 0, 0, 1, 1)])
    index = MasterIndex(builder.finish())
    for n in added:
        index.add_pack(pack_id(n), [BlobEntry(blob_id(100 + n), 0, 0, 0, 1, 1)])
    assert list(index.sorted_pack_ids()) == sorted({pack_id(n) for n in loaded + added})


def test_lookups_match_full_ids_and_return_the_full_id_given() -> None:
    builder = CompactIndexBuilder()
    for p, e in PACKS:
        builder.add_pack(p, e)
    index = MasterIndex(builder.finish())
    location = index.get(blob_id(2))
    assert location is not None
    assert location.pack_id == pack_id(1)
    assert location.entry == BlobEntry(blob_id(2), 1, 0, 100, 50, 50)
    assert blob_id(4) not in index and index.get(blob_id(4)) is None
    # the key is the id's first 16 bytes: an id differing only after them is the same key
    assert blob_id(2)[:KEY_SIZE] + bytes(16) in index
    assert index.packs[pack_id(1)] == [
        BlobEntry(blob_id(1)[:KEY_SIZE], 0, 1, 0, 100, 400),
        BlobEntry(blob_id(2)[:KEY_SIZE], 1, 0, 100, 50, 50),
    ]
    assert index.packs[pack_id(3)] == []
    assert pack_id(4) not in index.packs and "not hex" not in index.packs


def test_a_pack_listed_by_two_index_objects_is_taken_once(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    write_index(storage, PACKS, CIPHERS["plain"], 2)
    write_index(storage, PACKS[:1], CIPHERS["plain"], 1)
    index = load_master_index(storage, CIPHERS["plain"])
    assert len(index) == 3
    assert len(index.packs) == 3
    assert [e.offset for e in index.packs[pack_id(1)]] == [0, 100]


def test_load_master_index_merges_version_1_and_version_2_objects(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    cipher = CIPHERS["plain"]
    first = write_index(storage, PACKS[:1], cipher, 1)
    second = write_index(storage, PACKS[1:], cipher, 2)
    index = load_master_index(storage, cipher)
    assert index.index_ids == {first, second}
    assert set(index.packs) == {p for p, _ in PACKS}
    assert len(index) == 3
    assert all(blob_id(n) in index for n in (1, 2, 3))


def test_load_master_index_detects_a_renamed_or_altered_index(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    cipher = CIPHERS["plain"]
    index_id = write_index(storage, PACKS, cipher, 2)
    stored = storage.get(INDEX_PREFIX + index_id)
    storage.put(INDEX_PREFIX + index_id, stored[:-3])
    with pytest.raises(IntegrityError, match="does not hash to its name"):
        load_master_index(storage, cipher)


def test_added_packs_fold_into_compact_runs_and_stay_findable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index_module, "RECENT_LIMIT", 7)
    index = MasterIndex()
    for p in range(60):
        index.add_pack(pack_id(p), [BlobEntry(blob_id(p * 3 + i), 0, 0, i * 5, 5, 5) for i in range(3)])
    index.add_pack(pack_id(99), [BlobEntry(blob_id(0), 0, 0, 0, 5, 5)])  # a duplicate blob, in a later pack
    assert len(index._recent) < 7 and len(index._runs) <= 8
    assert len(index) == 180
    assert len(index.packs) == 61
    assert all(blob_id(n) in index for n in range(180))
    first = index.get(blob_id(0))
    assert first is not None and first.pack_id == pack_id(0)
    assert [e.offset for e in index.packs[pack_id(42)]] == [0, 5, 10]
    assert sorted(key for key, _ in index.blobs()) == sorted(blob_id(n)[:KEY_SIZE] for n in range(180))


def test_compact_index_holds_under_40_bytes_per_blob() -> None:
    builder = CompactIndexBuilder()
    per_pack = 50
    for p in range(400):
        builder.add_pack(pack_id(p), [BlobEntry(blob_id(p * per_pack + i), 0, 1, i, 1, 1) for i in range(per_pack)])
    compact = builder.finish()
    compact.pack_entries(pack_id(0))  # builds the per-pack permutation too
    assert compact.nbytes() / compact.rows <= 40


def test_a_version_1_vault_gets_version_1_index_objects(tmp_path: Path) -> None:
    vault = Vault.init(LocalStorage(tmp_path))
    vault.storage.put(CONFIG_KEY, vault.config.model_copy(update={"version": 1}).to_bytes())
    old = Vault.open(vault.storage)
    index_id = old.write_index(PACKS)
    body = decompress_document(old.cipher.open(old.storage.get(INDEX_PREFIX + index_id), INDEX_AAD, "i"), "i")
    assert body.startswith(b'{"version":1')
    fresh = Vault.init(LocalStorage(tmp_path / "v2"))
    assert fresh.config.version == 2
    stored = fresh.storage.get(INDEX_PREFIX + fresh.write_index(PACKS))
    assert decompress_document(fresh.cipher.open(stored, INDEX_AAD, "i"), "i").startswith(V2_MAGIC)


def test_loading_an_index_whose_blob_names_a_missing_pack_raises_integrity_error(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    cipher = CIPHERS["plain"]
    body = V2_MAGIC + (1).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(32)
    stored = cipher.seal(compress_document(body + V2_RECORD.pack(blob_id(1), 7, 0, 1, 1, 0, 0)), INDEX_AAD)
    storage.put(INDEX_PREFIX + blake3.blake3(stored).hexdigest(), stored)
    with pytest.raises(IntegrityError, match="names a pack it does not list"):
        load_master_index(storage, cipher)
