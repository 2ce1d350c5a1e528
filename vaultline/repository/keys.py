"""Key slots: the several keys that each unwrap the vault's one data key (docs/vault-format.md, section 4.4).

The config's own ``wrapped_key`` is the original slot, named ``config``: the config is written once, so it stays.
Every further slot is its own plaintext object ``keys/<slot id>``, created once and deleted by ``key remove``:

- kind ``kms``: the data key as a KMS ``CiphertextBlob`` under another KMS key (another region's, another
  account's, a multi-Region replica), with that key's ARN and region, so it unwraps in the key's own region;
- kind ``passphrase``: the data key sealed with AES-256-GCM under a key derived from a passphrase with scrypt,
  for break-glass recovery with no call to KMS at all.

Whatever a slot unwraps is checked against the config's ``key_check`` before it is used, so a wrong passphrase or a
foreign slot is a clear error, never a cipher that reads garbage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from vaultline.aws import client
from vaultline.errors import KeyUnavailable, VaultError, WrongKeyError
from vaultline.model import DEFERRED, VaultlineModel
from vaultline.repository.config import EncryptionSettings, VaultConfig, b64, unb64
from vaultline.repository.crypto import NONCE_SIZE, TAG_SIZE, key_check_value
from vaultline.repository.layout import KEYS_PREFIX, key_slot_key
from vaultline.storage import Storage

CONFIG_SLOT = "config"  # the id under which `key list` shows the config's own wrapped key
SLOT_VERSION: Literal[1] = 1
DATA_KEY_SIZE = 32
SALT_SIZE = 32
_SLOT_ID = re.compile(r"^[0-9a-f]{16}$")
# Bounds a reader enforces on a slot's scrypt parameters, so that a planted slot cannot make opening the vault
# take unbounded memory (128 * n * r * p bytes) or time.
MAX_SCRYPT_N = 2**20
MAX_SCRYPT_MEMORY = 1 << 30
# KMS error codes that mean "this key cannot be used now" (its state, its policy, its region), not "wrong key".
_UNAVAILABLE_CODES = frozenset(
    {"DisabledException", "KMSInvalidStateException", "AccessDeniedException", "NotFoundException"}
)


@dataclass(frozen=True)
class ScryptCost:
    """scrypt's cost parameters. The default, N = 2^17, r = 8, p = 1 (128 MiB; 0.33 s to 1.4 s on a shared 2-core
    box), is above restic's floor (N = 2^14, calibrated up to ~500 ms and 60 MiB): the passphrase is typed only for
    break-glass recovery, so a slow unlock costs little and every offline guess costs as much. Tests pass a lower
    cost."""

    n: int = 2**17
    r: int = 8
    p: int = 1


DEFAULT_SCRYPT_COST = ScryptCost()


class ScryptParams(VaultlineModel):
    """The KDF of a passphrase slot: scrypt(passphrase, salt, N, r, p) -> 32 bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: Literal["scrypt"] = "scrypt"
    n: int = Field(ge=2, le=MAX_SCRYPT_N)
    r: int = Field(ge=1, le=32)
    p: int = Field(ge=1, le=16)
    salt: str

    @field_validator("n")
    @classmethod
    def _power_of_two(cls, n: int) -> int:
        if n & (n - 1):
            raise ValueError("must be a power of two")
        return n

    @field_validator("salt")
    @classmethod
    def _salt(cls, salt: str) -> str:
        if len(_decode(salt)) < 16:
            raise ValueError("must be at least 16 bytes, base64")
        return salt

    @model_validator(mode="after")
    def _memory(self) -> ScryptParams:
        if 128 * self.n * self.r * self.p > MAX_SCRYPT_MEMORY:
            raise ValueError(f"128 * n * r * p exceeds {MAX_SCRYPT_MEMORY} bytes")
        return self


class _Slot(VaultlineModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = SLOT_VERSION
    id: str
    vault_id: str
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @field_validator("id")
    @classmethod
    def _id(cls, slot_id: str) -> str:
        if not _SLOT_ID.match(slot_id):
            raise ValueError("must be 16 lower-case hex characters")
        return slot_id


class KmsSlot(_Slot):
    """The data key as a KMS CiphertextBlob under ``kms_key_arn``, decrypted in ``region``."""

    kind: Literal["kms"] = "kms"
    kms_key_arn: str
    region: str
    wrapped_key: str


class PassphraseSlot(_Slot):
    """The data key sealed (AES-256-GCM) under the scrypt-derived key of a passphrase."""

    kind: Literal["passphrase"] = "passphrase"
    kdf: ScryptParams
    aead: Literal["AES-256-GCM"] = "AES-256-GCM"
    sealed_key: str

    @field_validator("sealed_key")
    @classmethod
    def _sealed_length(cls, sealed: str) -> str:
        if len(_decode(sealed)) != NONCE_SIZE + DATA_KEY_SIZE + TAG_SIZE:
            raise ValueError(f"must be {NONCE_SIZE + DATA_KEY_SIZE + TAG_SIZE} bytes, base64")
        return sealed


KeySlot = Annotated[KmsSlot | PassphraseSlot, Field(discriminator="kind")]
_SLOT_ADAPTER: TypeAdapter[KmsSlot | PassphraseSlot] = TypeAdapter(KeySlot, config=DEFERRED)


def _decode(text: str) -> bytes:
    try:
        return unb64(text)
    except ValueError:
        raise ValueError("is not base64") from None


def new_slot_id() -> str:
    """64 random bits as 16 hex characters: the slot's name under ``keys/``."""
    return os.urandom(8).hex()


def encode_slot(slot: KmsSlot | PassphraseSlot) -> bytes:
    """The slot object's bytes: UTF-8 JSON, 2-space indented, final newline."""
    return slot.model_dump_json(indent=2).encode() + b"\n"


def decode_slot(data: bytes, where: str) -> KmsSlot | PassphraseSlot:
    """Parse a slot object; a malformed one is a VaultError naming the field."""
    try:
        return _SLOT_ADAPTER.validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise VaultError(f"{where}: invalid key slot field {field}: {first['msg']}") from None


# -- passphrase slots ------------------------------------------------------------------------------------------


def slot_associated_data(vault_id: str, slot_id: str) -> bytes:
    """AES-GCM associated data of a passphrase slot: binds the sealed key to its vault and its name."""
    return f"vaultline key slot {vault_id} {slot_id}".encode()


def derive_passphrase_key(passphrase: bytes, kdf: ScryptParams) -> bytes:
    """scrypt(passphrase, salt, N, r, p), 32 bytes: the AES-256-GCM key of a passphrase slot."""
    # cryptography is imported where a key slot or an encrypted blob needs it (see crypto.Cipher.seal).
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=unb64(kdf.salt), length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(passphrase)


def seal_passphrase_slot(
    master: bytes, passphrase: bytes, vault_id: str, cost: ScryptCost | None = None
) -> PassphraseSlot:
    """A new passphrase slot holding ``master``; ``cost`` sets scrypt's N, r, p (default ``DEFAULT_SCRYPT_COST``,
    read when called, which tests lower)."""
    if not passphrase:
        raise VaultError("the passphrase is empty")
    cost = cost or DEFAULT_SCRYPT_COST
    slot_id = new_slot_id()
    kdf = ScryptParams(n=cost.n, r=cost.r, p=cost.p, salt=b64(os.urandom(SALT_SIZE)))
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_SIZE)
    sealed = nonce + AESGCM(derive_passphrase_key(passphrase, kdf)).encrypt(
        nonce, master, slot_associated_data(vault_id, slot_id)
    )
    return PassphraseSlot(id=slot_id, vault_id=vault_id, kdf=kdf, sealed_key=b64(sealed))


def open_passphrase_slot(slot: PassphraseSlot, passphrase: bytes, where: str) -> bytes:
    """The data key a passphrase slot holds; WrongKeyError if the passphrase is not this slot's."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    sealed = unb64(slot.sealed_key)
    try:
        return AESGCM(derive_passphrase_key(passphrase, slot.kdf)).decrypt(
            sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], slot_associated_data(slot.vault_id, slot.id)
        )
    except InvalidTag:
        raise WrongKeyError(f"{where}: wrong passphrase for key slot {slot.id}") from None


# -- KMS -------------------------------------------------------------------------------------------------------


def region_of(kms_key_id: str | None) -> str | None:
    """The region a KMS key ARN names (``arn:aws:kms:REGION:ACCOUNT:key/...``); None for ids and aliases."""
    if kms_key_id and kms_key_id.startswith("arn:"):
        parts = kms_key_id.split(":")
        if len(parts) >= 6 and parts[2] == "kms" and parts[3]:
            return parts[3]
    return None


def generate_data_key(kms_key_id: str) -> tuple[bytes, bytes]:
    """A fresh 32-byte data key and its CiphertextBlob under ``kms_key_id`` (no encryption context)."""
    try:
        response = client("kms", region_of(kms_key_id)).generate_data_key(KeyId=kms_key_id, KeySpec="AES_256")
    except Exception as exc:  # botocore raises many shapes; all mean the key cannot be used
        raise VaultError(f"KMS key {kms_key_id}: cannot generate a data key ({_aws_message(exc)})") from None
    return response["Plaintext"], response["CiphertextBlob"]


KmsClients = Callable[[str | None], Any]
"""The KMS client to call in a region (None: the default one): ambient credentials unless a caller opening a vault
through an assumed role (a copy's target) hands its own."""


def ambient_kms(region: str | None) -> Any:
    """The process's own KMS client for ``region``."""
    return client("kms", region)


def unwrap_with_kms(wrapped: bytes, kms_key_id: str | None, where: str, kms: KmsClients = ambient_kms) -> bytes:
    """KMS Decrypt of a wrapped data key, in the key's own region. A key that is disabled, pending deletion,
    denied or gone raises KeyUnavailable (its state in the message); any other failure WrongKeyError."""
    args: dict[str, Any] = {"CiphertextBlob": wrapped}
    if kms_key_id:
        args["KeyId"] = kms_key_id
    try:
        plaintext: bytes = kms(region_of(kms_key_id)).decrypt(**args)["Plaintext"]
        return plaintext
    except Exception as exc:
        message = f"{where}: KMS cannot unwrap the vault key ({_aws_message(exc)})"
        if _aws_code(exc) in _UNAVAILABLE_CODES:
            raise KeyUnavailable(message) from None
        raise WrongKeyError(message) from None


def wrap_in_kms_slot(master: bytes, kms_key_id: str, vault_id: str) -> KmsSlot:
    """A new KMS slot: ``master`` encrypted under ``kms_key_id`` in its region, then decrypted back, so that a key
    the caller may encrypt with but not decrypt with (another account's policy) is refused now, not at recovery."""
    region = region_of(kms_key_id)
    kms = client("kms", region)
    try:
        response = kms.encrypt(KeyId=kms_key_id, Plaintext=master)
    except Exception as exc:
        raise VaultError(f"KMS key {kms_key_id}: cannot encrypt the data key ({_aws_message(exc)})") from None
    arn: str = response["KeyId"]
    slot = KmsSlot(
        id=new_slot_id(),
        vault_id=vault_id,
        kms_key_arn=arn,
        region=region_of(arn) or region or kms.meta.region_name,
        wrapped_key=b64(response["CiphertextBlob"]),
    )
    if unwrap_kms_slot(slot) != master:
        raise VaultError(f"KMS key {arn}: decrypting the new slot does not give the data key back")
    return slot


def unwrap_kms_slot(slot: KmsSlot, kms: KmsClients = ambient_kms) -> bytes:
    """The data key of a KMS slot, decrypted in the slot's region."""
    args = {"CiphertextBlob": unb64(slot.wrapped_key), "KeyId": slot.kms_key_arn}
    try:
        plaintext: bytes = kms(slot.region).decrypt(**args)["Plaintext"]
        return plaintext
    except Exception as exc:
        message = f"key slot {slot.id}: KMS cannot unwrap it ({_aws_message(exc)})"
        if _aws_code(exc) in _UNAVAILABLE_CODES:
            raise KeyUnavailable(message) from None
        raise WrongKeyError(message) from None


def _aws_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _aws_message(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', '')}: {error.get('Message', '')}".strip(": ")
    return str(exc)


# -- the slots of a vault ----------------------------------------------------------------------------------


def read_slots(storage: Storage) -> list[KmsSlot | PassphraseSlot]:
    """Every slot under ``keys/``, by id. Bounded: a vault has a handful of slots, not one per backup."""
    slots = []
    for obj in sorted(storage.list(KEYS_PREFIX), key=lambda o: o.key):
        slot_id = obj.key[len(KEYS_PREFIX) :]
        if not _SLOT_ID.match(slot_id):
            continue  # a stray file (.DS_Store, a copy tool's temporary) is not a slot and must not stop an open
        slot = decode_slot(storage.get(obj.key), f"{storage.url}: {obj.key}")
        if slot.id != slot_id:
            raise VaultError(f"{storage.url}: {obj.key} holds key slot {slot.id}, not {slot_id}")
        slots.append(slot)
    return slots


def write_slot(storage: Storage, slot: KmsSlot | PassphraseSlot) -> None:
    """Create ``keys/<id>`` once (a conditional create: an existing slot is never replaced)."""
    if not storage.create(key_slot_key(slot.id), encode_slot(slot)):
        raise VaultError(f"{storage.url}: key slot {slot.id} exists already")


def require_encrypted(config: VaultConfig, where: str) -> EncryptionSettings:
    """The encryption settings of a vault that has a data key; VaultError for mode ``none``."""
    enc = config.encryption
    if enc.mode != "kms" or not enc.key_check or not enc.wrapped_key:
        raise VaultError(
            f"{where}: the vault is not encrypted (encryption mode {enc.mode}): it has no data key to wrap, "
            "so it has no key slots"
        )
    return enc


@dataclass(frozen=True)
class Unlocked:
    """The data key of a vault and the slot that gave it."""

    master: bytes
    slot: str


def unlock(
    storage: Storage,
    config: VaultConfig,
    passphrase: bytes | None = None,
    slots: list[KmsSlot | PassphraseSlot] | None = None,
    kms: KmsClients = ambient_kms,
) -> Unlocked:
    """Unwrap the data key of an encrypted vault.

    With ``passphrase``: only passphrase slots are tried, and KMS is never called. Without: the config's KMS key
    first (what a deployed stack's functions use; the ``keys/`` slots are read only if it fails), then every
    ``kms`` slot, in id order. ``slots`` replaces the vault's own (to ask whether the others would do). ``kms``
    gives the KMS clients (a vault opened through an assumed role unwraps with that role's).
    """
    enc = require_encrypted(config, storage.url)
    checked = _checker(enc.key_check or "", storage.url)
    if passphrase is not None:
        return _unlock_by_passphrase(storage, passphrase, checked, slots)
    try:
        master = unwrap_with_kms(unb64(enc.wrapped_key or ""), enc.kms_key_id, storage.url, kms)
        return Unlocked(checked(master), CONFIG_SLOT)
    except WrongKeyError as first:
        failure = first
    slots = read_slots(storage) if slots is None else slots
    others = []
    for slot in slots:
        if isinstance(slot, KmsSlot):
            try:
                return Unlocked(checked(unwrap_kms_slot(slot, kms)), slot.id)
            except WrongKeyError as exc:
                others.append(str(exc))
    message = "; ".join([str(failure), *others])
    if any(isinstance(slot, PassphraseSlot) for slot in slots):
        message += "; open it with a passphrase slot instead: vaultline --passphrase-file FILE ..."
    raise type(failure)(message)


def _unlock_by_passphrase(
    storage: Storage,
    passphrase: bytes,
    checked: Callable[[bytes], bytes],
    given: list[KmsSlot | PassphraseSlot] | None,
) -> Unlocked:
    slots = [slot for slot in (read_slots(storage) if given is None else given) if isinstance(slot, PassphraseSlot)]
    if not slots:
        raise VaultError(f"{storage.url}: the vault has no passphrase key slot (add one with `vaultline key add`)")
    for slot in slots:
        try:
            return Unlocked(checked(open_passphrase_slot(slot, passphrase, storage.url)), slot.id)
        except WrongKeyError:
            continue
    raise WrongKeyError(f"{storage.url}: wrong passphrase (it opens none of the vault's {len(slots)} passphrase slots)")


def _checker(expected: str, where: str) -> Callable[[bytes], bytes]:
    def checked(master: bytes) -> bytes:
        if len(master) != DATA_KEY_SIZE or key_check_value(master) != expected:
            raise WrongKeyError(f"{where}: the key does not open this vault")
        return master

    return checked
