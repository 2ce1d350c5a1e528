"""Key material, blob encryption (AES-256-GCM) and keyed chunk ids (BLAKE3 keyed hash).

Two modes exist. ``none`` stores blobs in the clear but still keys chunk ids with a random per-vault key, so
that ids from two vaults never collide by accident. ``kms`` draws a 256-bit data key from KMS
(GenerateDataKey), keeps only its KMS-wrapped form in the vault config, and derives two independent keys from
it with BLAKE3's key-derivation mode: one encrypts blobs, one keys chunk ids (so ids reveal nothing).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import blake3

from vaultline.errors import IntegrityError, WrongKeyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12
TAG_SIZE = 16
ID_SIZE = 32
_ENC_CONTEXT = "vaultline 2026-11 blob encryption key v1"
_ID_CONTEXT = "vaultline 2026-11 chunk id key v1"
_CHECK_CONTEXT = "vaultline 2026-11 key check v1"


def derive_key(master: bytes, context: str) -> bytes:
    """Derive a 32-byte subkey of ``master`` for one purpose (BLAKE3 derive_key mode)."""
    return blake3.blake3(master, derive_key_context=context).digest()


def key_check_value(master: bytes) -> str:
    """A public value that lets a reader tell a wrong key from corrupt data, without revealing the key."""
    return derive_key(master, _CHECK_CONTEXT).hex()[:32]


@dataclass(frozen=True)
class Cipher:
    """Seals and opens blobs. ``aead_key`` is None in mode ``none``: blobs are stored as they are."""

    id_key: bytes
    aead_key: bytes | None = None

    @classmethod
    def from_master(cls, master: bytes) -> Cipher:
        return cls(id_key=derive_key(master, _ID_CONTEXT), aead_key=derive_key(master, _ENC_CONTEXT))

    @classmethod
    def unencrypted(cls, seed: bytes) -> Cipher:
        """Mode ``none``: no blob encryption, chunk ids still keyed by a per-vault secret."""
        return cls(id_key=derive_key(seed, _ID_CONTEXT))

    @property
    def encrypted(self) -> bool:
        return self.aead_key is not None

    @property
    def overhead(self) -> int:
        return NONCE_SIZE + TAG_SIZE if self.encrypted else 0

    @cached_property
    def _aead(self) -> AESGCM:
        """One AESGCM for the cipher's life, shared by every thread (it holds only the key: each call makes its
        own context), rather than one built, and its key checked, per blob."""
        # cryptography is imported by the first encrypted blob, not with the engine: ~7 MiB and 40 ms that an
        # unencrypted vault's backup, restore or --help never needs.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        assert self.aead_key is not None  # callers return early in mode none
        return AESGCM(self.aead_key)

    def chunk_id(self, data: bytes | memoryview) -> bytes:
        """Keyed BLAKE3 of the plaintext chunk: the chunk's name in the vault."""
        return blake3.blake3(data, key=self.id_key).digest()

    def seal(self, payload: bytes, associated: bytes) -> bytes:
        """Encrypt ``payload`` bound to ``associated`` (a blob id or an object name): nonce || ciphertext || tag."""
        if self.aead_key is None:
            return payload
        nonce = os.urandom(NONCE_SIZE)
        return nonce + self._aead.encrypt(nonce, payload, associated)

    def open(self, stored: bytes | memoryview, associated: bytes, what: str) -> bytes:
        """Decrypt and authenticate; ``what`` names the blob or object in the error if it fails."""
        if self.aead_key is None:
            return bytes(stored)
        if len(stored) < NONCE_SIZE + TAG_SIZE:
            raise IntegrityError(f"{what}: {len(stored)} bytes is too short to be an encrypted blob")
        from cryptography.exceptions import InvalidTag

        view = memoryview(stored)
        try:
            # Views, not copies: AESGCM reads any buffer, and a copy of each blob's ciphertext cost a third of the
            # time of decrypting it.
            return self._aead.decrypt(view[:NONCE_SIZE], view[NONCE_SIZE:], associated)
        except InvalidTag:
            raise IntegrityError(f"{what}: authentication failed (tampered or corrupt data)") from None


def check_key(master: bytes, expected: str, where: str) -> None:
    """Raise WrongKeyError if ``master`` is not the key whose check value is ``expected``."""
    if key_check_value(master) != expected:
        raise WrongKeyError(f"{where}: the key does not open this vault")
