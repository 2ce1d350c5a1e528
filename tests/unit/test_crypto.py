"""Blob encryption (AES-256-GCM) and keyed chunk ids."""

from __future__ import annotations

import os

import pytest

from vaultline.errors import IntegrityError, WrongKeyError
from vaultline.repository.crypto import NONCE_SIZE, TAG_SIZE, Cipher, check_key, key_check_value

MASTER = bytes(range(32))
OTHER = bytes(reversed(range(32)))


def test_seal_open_round_trip() -> None:
    cipher = Cipher.from_master(MASTER)
    sealed = cipher.seal(b"hello vault", b"blob-1")
    assert sealed != b"hello vault"
    assert len(sealed) == len(b"hello vault") + NONCE_SIZE + TAG_SIZE
    assert cipher.open(sealed, b"blob-1", "blob") == b"hello vault"


def test_seal_uses_a_fresh_nonce_each_time() -> None:
    cipher = Cipher.from_master(MASTER)
    assert cipher.seal(b"same", b"a") != cipher.seal(b"same", b"a")


@pytest.mark.parametrize("position", [0, NONCE_SIZE, -1])
def test_tampered_byte_raises_integrity_error(position: int) -> None:
    cipher = Cipher.from_master(MASTER)
    sealed = bytearray(cipher.seal(b"payload" * 10, b"blob"))
    sealed[position] ^= 0x01
    with pytest.raises(IntegrityError, match="authentication failed"):
        cipher.open(bytes(sealed), b"blob", "blob")


def test_wrong_associated_data_raises_integrity_error() -> None:
    cipher = Cipher.from_master(MASTER)
    sealed = cipher.seal(b"payload", b"blob-1")
    with pytest.raises(IntegrityError):
        cipher.open(sealed, b"blob-2", "blob")


def test_wrong_key_raises_integrity_error() -> None:
    sealed = Cipher.from_master(MASTER).seal(b"payload", b"blob")
    with pytest.raises(IntegrityError, match="blob-name"):
        Cipher.from_master(OTHER).open(sealed, b"blob", "blob-name")


def test_too_short_blob_raises_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="too short"):
        Cipher.from_master(MASTER).open(b"\x00" * (NONCE_SIZE + TAG_SIZE - 1), b"blob", "blob")


def test_chunk_ids_are_keyed() -> None:
    data = b"the same chunk of data"
    a, b = Cipher.from_master(MASTER), Cipher.from_master(OTHER)
    assert a.chunk_id(data) == a.chunk_id(data)
    assert a.chunk_id(data) != b.chunk_id(data)
    assert len(a.chunk_id(data)) == 32
    assert Cipher.unencrypted(MASTER).chunk_id(data) != Cipher.unencrypted(OTHER).chunk_id(data)


def test_chunk_id_differs_from_an_unkeyed_hash() -> None:
    import blake3

    data = os.urandom(100)
    assert Cipher.unencrypted(MASTER).chunk_id(data) != blake3.blake3(data).digest()


def test_unencrypted_cipher_stores_blobs_as_they_are() -> None:
    cipher = Cipher.unencrypted(MASTER)
    assert not cipher.encrypted
    assert cipher.overhead == 0
    assert cipher.seal(b"clear", b"x") == b"clear"
    assert cipher.open(b"clear", b"x", "x") == b"clear"


def test_encryption_and_id_keys_are_independent() -> None:
    cipher = Cipher.from_master(MASTER)
    assert cipher.aead_key is not None
    assert cipher.aead_key != cipher.id_key
    assert MASTER not in (cipher.aead_key, cipher.id_key)


def test_check_key_accepts_right_key_and_rejects_wrong_one() -> None:
    expected = key_check_value(MASTER)
    check_key(MASTER, expected, "vault")
    with pytest.raises(WrongKeyError, match="does not open this vault"):
        check_key(OTHER, expected, "vault")
