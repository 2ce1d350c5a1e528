"""Index objects: encode/decode, the master index, loading from storage."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultline.errors import IntegrityError
from vaultline.repository.crypto import Cipher
from vaultline.repository.index import MasterIndex, decode_index, encode_index, load_master_index, write_index
from vaultline.repository.layout import INDEX_PREFIX
from vaultline.repository.packs import BlobEntry
from vaultline.storage import LocalStorage

CIPHERS = {"encrypted": Cipher.from_master(b"k" * 32), "plain": Cipher.unencrypted(b"s" * 32)}

PACKS = [
    ("p1" * 32, [BlobEntry(b"\x01" * 32, 0, 1, 0, 100, 400), BlobEntry(b"\x02" * 32, 1, 0, 100, 50, 50)]),
    ("p2" * 32, [BlobEntry(b"\x03" * 32, 0, 0, 0, 7, 7)]),
    ("p3" * 32, []),
]


@pytest.mark.parametrize("mode", sorted(CIPHERS))
def test_encode_decode_round_trip(mode: str) -> None:
    cipher = CIPHERS[mode]
    index_id, stored = encode_index(PACKS, cipher)
    assert len(index_id) == 64
    assert decode_index(stored, cipher, "index") == PACKS


def test_encrypted_index_hides_blob_ids() -> None:
    _, stored = encode_index(PACKS, CIPHERS["encrypted"])
    assert (b"\x01" * 32).hex().encode() not in stored


def test_decode_with_wrong_key_raises_integrity_error() -> None:
    _, stored = encode_index(PACKS, CIPHERS["encrypted"])
    with pytest.raises(IntegrityError):
        decode_index(stored, Cipher.from_master(b"z" * 32), "index")


def test_truncated_index_raises_integrity_error() -> None:
    _, stored = encode_index(PACKS, CIPHERS["plain"])
    with pytest.raises(IntegrityError):
        decode_index(stored[: len(stored) // 2], CIPHERS["plain"], "index")


def test_malformed_index_document_raises_integrity_error() -> None:
    from vaultline.repository.compression import compress_document

    stored = compress_document(b'{"version": 1, "packs": [{"id": "x"}]}')
    with pytest.raises(IntegrityError, match="malformed index"):
        decode_index(stored, CIPHERS["plain"], "index")


def test_master_index_first_writer_wins() -> None:
    index = MasterIndex()
    entry = BlobEntry(b"\x09" * 32, 0, 0, 0, 1, 1)
    index.add_pack("a", [entry])
    index.add_pack("b", [entry])
    assert entry.id in index
    assert len(index) == 1
    location = index.get(entry.id)
    assert location is not None and location.pack_id == "a"
    assert set(index.packs) == {"a", "b"}


def test_load_master_index_merges_index_objects(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    cipher = CIPHERS["plain"]
    first = write_index(storage, PACKS[:1], cipher)
    second = write_index(storage, PACKS[1:], cipher)
    index = load_master_index(storage, cipher)
    assert index.index_ids == {first, second}
    assert set(index.packs) == {p for p, _ in PACKS}
    assert len(index) == 3


def test_load_master_index_detects_a_renamed_or_altered_index(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    cipher = CIPHERS["plain"]
    index_id = write_index(storage, PACKS, cipher)
    stored = storage.get(INDEX_PREFIX + index_id)
    storage.put(INDEX_PREFIX + index_id, stored[:-3])
    with pytest.raises(IntegrityError, match="does not hash to its name"):
        load_master_index(storage, cipher)
