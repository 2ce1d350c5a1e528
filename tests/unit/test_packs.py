"""Pack format: blobs, sealed header, trailer."""

from __future__ import annotations

import blake3
import pytest

from vaultline.errors import IntegrityError
from vaultline.repository.compression import compress
from vaultline.repository.crypto import Cipher
from vaultline.repository.layout import pack_id_of_key, pack_key
from vaultline.repository.packs import TRAILER, BlobType, PackBuilder, SealedBlob, read_pack_entries, split_trailer

CIPHERS = {"encrypted": Cipher.from_master(b"k" * 32), "plain": Cipher.unencrypted(b"s" * 32)}


def build(cipher: Cipher, blobs: list[bytes]) -> tuple[str, bytes, list[SealedBlob]]:
    builder = PackBuilder()
    sealed = []
    for i, data in enumerate(blobs):
        blob_id = cipher.chunk_id(data)
        kind, payload = compress(data, 3)
        blob = SealedBlob(
            blob_id, BlobType.MANIFEST if i % 2 else BlobType.DATA, kind, len(data), cipher.seal(payload, blob_id)
        )
        builder.add(blob)
        sealed.append(blob)
    pack_id, data = builder.finish(cipher)
    return pack_id, data, sealed


@pytest.mark.parametrize("mode", sorted(CIPHERS))
def test_finish_and_read_entries_round_trip(mode: str) -> None:
    cipher = CIPHERS[mode]
    blobs = [b"a" * 5000, b"hello", bytes(range(256)) * 3, b""]
    pack_id, data, sealed = build(cipher, blobs)
    assert pack_id == blake3.blake3(data).hexdigest()
    entries = read_pack_entries(data, cipher, "pack")
    assert [e.id for e in entries] == [s.id for s in sealed]
    assert [e.type for e in entries] == [s.type for s in sealed]
    assert [e.raw_length for e in entries] == [len(b) for b in blobs]
    for entry, blob, original in zip(entries, sealed, blobs, strict=True):
        stored = data[entry.offset : entry.offset + entry.stored_length]
        assert stored == blob.payload
        from vaultline.repository.compression import decompress

        plain = decompress(cipher.open(stored, entry.id, "blob"), entry.compression, entry.raw_length, "blob")
        assert plain == original


def test_empty_pack_round_trips() -> None:
    cipher = CIPHERS["encrypted"]
    _, data = PackBuilder().finish(cipher)
    assert read_pack_entries(data, cipher, "pack") == []


def test_bad_trailer_magic_raises_integrity_error() -> None:
    cipher = CIPHERS["plain"]
    _, data, _ = build(cipher, [b"x" * 100])
    broken = data[:-4] + b"XXXX"
    with pytest.raises(IntegrityError, match="bad pack trailer"):
        read_pack_entries(broken, cipher, "pack")


def test_truncated_tail_raises_integrity_error() -> None:
    cipher = CIPHERS["plain"]
    _, data, _ = build(cipher, [b"x" * 100, b"y" * 100])
    with pytest.raises(IntegrityError):
        read_pack_entries(data[:-10], cipher, "pack")


@pytest.mark.parametrize("mode", sorted(CIPHERS))
def test_truncated_front_raises_integrity_error(mode: str) -> None:
    cipher = CIPHERS[mode]
    _, data, _ = build(cipher, [b"x" * 100, b"y" * 100])
    with pytest.raises(IntegrityError, match="header starts at"):
        read_pack_entries(data[10:], cipher, "pack")


def test_too_short_to_be_a_pack() -> None:
    with pytest.raises(IntegrityError, match="too short"):
        read_pack_entries(b"VLP", CIPHERS["plain"], "pack")


def test_header_length_beyond_pack_size_raises_integrity_error() -> None:
    tail = TRAILER.pack(10_000, b"VLP1")
    with pytest.raises(IntegrityError, match="exceeds the pack size"):
        split_trailer(tail, 100, "pack")


def test_tampered_encrypted_header_raises_integrity_error() -> None:
    cipher = CIPHERS["encrypted"]
    _, data, _ = build(cipher, [b"x" * 100])
    broken = bytearray(data)
    broken[-TRAILER.size - 3] ^= 0xFF
    with pytest.raises(IntegrityError, match="authentication failed"):
        read_pack_entries(bytes(broken), cipher, "pack")


def test_header_of_wrong_entry_size_raises_integrity_error() -> None:
    cipher = CIPHERS["plain"]
    header = b"\x00" * 41
    data = header + TRAILER.pack(len(header), b"VLP1")
    with pytest.raises(IntegrityError, match="not a multiple"):
        read_pack_entries(data, cipher, "pack")


def test_pack_key_spreads_by_prefix_and_round_trips() -> None:
    pack_id = "ab" + "cd" * 31
    key = pack_key(pack_id)
    assert key == f"data/ab/{pack_id}"
    assert pack_id_of_key(key) == pack_id


def test_stray_files_under_data_are_not_packs() -> None:
    assert pack_id_of_key("data/.D/.DS_Store") is None
    assert pack_id_of_key("data/ab/.tmp-123") is None
    assert pack_id_of_key("data/cd/ab" + "00" * 31) is None  # filed under the wrong prefix
