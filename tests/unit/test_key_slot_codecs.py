"""Key slot codecs: objects round-trip, passphrase slots open only with their passphrase, and a reader refuses a
malformed or over-costly slot with the field named (docs/vault-format.md, section 4.4)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultline.errors import VaultError, WrongKeyError
from vaultline.repository.keys import (
    KmsSlot,
    PassphraseSlot,
    ScryptCost,
    decode_slot,
    encode_slot,
    open_passphrase_slot,
    region_of,
    seal_passphrase_slot,
)

FAST = ScryptCost(n=16, r=1, p=1)  # the format allows it; only tests use a cost this low
VAULT_ID = "587efc12df574c479d59ea53a32b34c0"
hex_ids = st.binary(min_size=8, max_size=8).map(bytes.hex)
times = st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))


@settings(max_examples=40, deadline=None)
@given(master=st.binary(min_size=32, max_size=32), passphrase=st.binary(min_size=1, max_size=64))
def test_passphrase_slot_round_trips_through_its_bytes(master: bytes, passphrase: bytes) -> None:
    slot = seal_passphrase_slot(master, passphrase, VAULT_ID, FAST)
    decoded = decode_slot(encode_slot(slot), "keys/x")
    assert decoded == slot
    assert isinstance(decoded, PassphraseSlot)
    assert open_passphrase_slot(decoded, passphrase, "vault") == master


@settings(max_examples=20, deadline=None)
@given(passphrase=st.binary(min_size=1, max_size=32), other=st.binary(min_size=1, max_size=32))
def test_passphrase_slot_opens_with_no_other_passphrase(passphrase: bytes, other: bytes) -> None:
    slot = seal_passphrase_slot(bytes(32), passphrase, VAULT_ID, FAST)
    if other != passphrase:
        with pytest.raises(WrongKeyError, match=f"wrong passphrase for key slot {slot.id}"):
            open_passphrase_slot(slot, other, "vault")


@given(
    slot_id=hex_ids,
    created=times,
    region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"]),
    account=st.integers(10**11, 10**12 - 1),
    blob=st.binary(min_size=1, max_size=300),
)
def test_kms_slot_round_trips_through_its_bytes(
    slot_id: str, created: datetime, region: str, account: int, blob: bytes
) -> None:
    arn = f"arn:aws:kms:{region}:{account}:key/0cb9b2f9-85da-4770-b936-3a34d90644a1"
    slot = KmsSlot(
        id=slot_id,
        vault_id=VAULT_ID,
        created=created,
        kms_key_arn=arn,
        region=region_of(arn) or "",
        wrapped_key=base64.b64encode(blob).decode(),
    )
    assert decode_slot(encode_slot(slot), "keys/x") == slot
    assert slot.region == region


def test_passphrase_slot_is_opened_from_the_documented_layout_alone() -> None:
    """A second implementation's view: scrypt, then AES-256-GCM with nonce || ciphertext || tag and the AAD of
    section 4.4, straight from the JSON."""
    master = bytes(range(32))
    raw = json.loads(encode_slot(seal_passphrase_slot(master, b"pw", VAULT_ID, FAST)))
    kdf = raw["kdf"]
    derived = hashlib.scrypt(b"pw", salt=base64.b64decode(kdf["salt"]), n=kdf["n"], r=kdf["r"], p=kdf["p"], dklen=32)
    sealed = base64.b64decode(raw["sealed_key"])
    aad = f"vaultline key slot {raw['vault_id']} {raw['id']}".encode()
    assert AESGCM(derived).decrypt(sealed[:12], sealed[12:], aad) == master
    assert set(raw) == {"version", "id", "vault_id", "created", "kind", "kdf", "aead", "sealed_key"}
    assert raw["version"] == 1 and raw["kind"] == "passphrase" and raw["aead"] == "AES-256-GCM"


def test_tampered_sealed_key_is_a_wrong_key_never_garbage() -> None:
    slot = seal_passphrase_slot(bytes(32), b"pw", VAULT_ID, FAST)
    sealed = bytearray(base64.b64decode(slot.sealed_key))
    sealed[20] ^= 1
    tampered = slot.model_copy(update={"sealed_key": base64.b64encode(bytes(sealed)).decode()})
    with pytest.raises(WrongKeyError):
        open_passphrase_slot(tampered, b"pw", "vault")
    # The sealed key is bound to its slot's name: renamed, it does not open.
    with pytest.raises(WrongKeyError):
        open_passphrase_slot(slot.model_copy(update={"id": "0" * 16}), b"pw", "vault")


def _passphrase_json(**changes: Any) -> bytes:
    raw = json.loads(encode_slot(seal_passphrase_slot(bytes(32), b"pw", VAULT_ID, FAST)))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = raw
        for name in parents:
            target = target[name]
        target[leaf] = value
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kdf__n": 1000}, "passphrase.kdf.n"),
        ({"kdf__n": 2**21}, "passphrase.kdf.n"),
        ({"kdf__n": 2**20, "kdf__r": 16}, "passphrase.kdf"),
        ({"kdf__r": 0}, "passphrase.kdf.r"),
        ({"kdf__algorithm": "argon2id"}, "passphrase.kdf.algorithm"),
        ({"kdf__salt": "c2hvcnQ="}, "passphrase.kdf.salt"),
        ({"sealed_key": "AAAA"}, "passphrase.sealed_key"),
        ({"id": "../config"}, "passphrase.id"),
        ({"version": 2}, "passphrase.version"),
        ({"aead": "ChaCha20-Poly1305"}, "passphrase.aead"),
        ({"extra": 1}, "passphrase.extra"),
        ({"kind": "pgp"}, ""),
    ],
)
def test_malformed_slot_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(VaultError, match=f"keys/x: invalid key slot field {field}"):
        decode_slot(_passphrase_json(**changes), "keys/x")


def test_slot_that_is_not_json_is_refused() -> None:
    with pytest.raises(VaultError, match="keys/x: invalid key slot"):
        decode_slot(b"\x00not json", "keys/x")


@pytest.mark.parametrize(
    ("key_id", "region"),
    [
        ("arn:aws:kms:eu-west-1:111122223333:key/0cb9b2f9-85da-4770-b936-3a34d90644a1", "eu-west-1"),
        ("arn:aws:kms:us-west-2:111122223333:alias/backup", "us-west-2"),
        ("arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1", "us-gov-west-1"),
        ("0cb9b2f9-85da-4770-b936-3a34d90644a1", None),
        ("alias/backup", None),
        (None, None),
    ],
)
def test_region_of_a_key_comes_from_its_arn(key_id: str | None, region: str | None) -> None:
    assert region_of(key_id) == region


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(VaultError, match="empty"):
        seal_passphrase_slot(bytes(32), b"", VAULT_ID, FAST)


def test_the_documented_test_vector_opens_to_its_master_key() -> None:
    """docs/vault-format.md, section 4.4: the slot printed there, read from the document, opens as it says."""
    doc = (Path(__file__).parents[2] / "docs" / "vault-format.md").read_text()
    section = doc[doc.index("### 4.4 Key slots") : doc.index("## 5. Chunk ids")]
    vector = section[section.index("A test vector") :]
    body = vector[vector.index("```json") + len("```json") : vector.index("```", vector.index("```json") + 7)]
    slot = decode_slot(body.encode(), "docs")
    assert isinstance(slot, PassphraseSlot)
    assert open_passphrase_slot(slot, b"correct horse battery staple", "docs") == bytes(range(32))
