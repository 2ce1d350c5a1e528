"""The key slots of a vault: list them, add a KMS or passphrase slot, remove one (docs/vault-format.md, 4.4).

Rules:
- The ``config`` slot (the config's own wrapped key) cannot be removed: the config is written once. To revoke
  that KMS key, disable it or change its key policy in KMS; the vault then opens through its other slots.
- A slot is removed only if, after it is gone, some remaining slot is *known to work now*: the slot this vault was
  opened with (when it is not the one removed), else a KMS slot (the config's first) that KMS unwraps to the data
  key right now. Another passphrase slot is no proof (its passphrase is not known here): open the vault with it to
  remove the one you opened with. So removing the last usable slot is refused.
- Adding and removing are one conditional create or one delete of ``keys/<id>``: a crash leaves either no change
  or the whole change. Removal holds the exclusive vault lock, so concurrent removals are checked one after the
  other against the slots as they are then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict

from vaultline.errors import VaultError, WrongKeyError
from vaultline.model import VaultlineModel
from vaultline.repository.config import VaultConfig
from vaultline.repository.keys import (
    CONFIG_SLOT,
    KmsSlot,
    PassphraseSlot,
    ScryptCost,
    Unlocked,
    read_slots,
    region_of,
    require_encrypted,
    seal_passphrase_slot,
    unlock,
    wrap_in_kms_slot,
    write_slot,
)
from vaultline.repository.layout import key_slot_key
from vaultline.repository.locks import vault_lock
from vaultline.repository.vault import Vault
from vaultline.storage import Storage


class KeySlotInfo(VaultlineModel):
    """One key slot as `key list --json` prints it."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: Literal["kms", "passphrase"]
    kms_key_id: str | None = None
    region: str | None = None
    kdf: str | None = None
    created: datetime | None = None
    removable: bool = True


def _info(slot: KmsSlot | PassphraseSlot) -> KeySlotInfo:
    if isinstance(slot, KmsSlot):
        return KeySlotInfo(
            id=slot.id, kind="kms", kms_key_id=slot.kms_key_arn, region=slot.region, created=slot.created
        )
    kdf = f"scrypt N={slot.kdf.n} r={slot.kdf.r} p={slot.kdf.p}"
    return KeySlotInfo(id=slot.id, kind="passphrase", kdf=kdf, created=slot.created)


def list_key_slots(storage: Storage) -> list[KeySlotInfo]:
    """Every slot, the config's first; reads plaintext only (no key is unwrapped, KMS is not called)."""
    config = Vault.read_config(storage)
    enc = require_encrypted(config, storage.url)
    original = KeySlotInfo(
        id=CONFIG_SLOT,
        kind="kms",
        kms_key_id=enc.kms_key_id,
        region=region_of(enc.kms_key_id),
        created=config.created,
        removable=False,
    )
    return [original, *(_info(slot) for slot in read_slots(storage))]


def _unlocked(vault: Vault) -> Unlocked:
    require_encrypted(vault.config, vault.url)
    if vault.unlocked is None:
        raise VaultError(f"{vault.url}: the vault was opened without its data key")
    return vault.unlocked


def add_kms_slot(vault: Vault, kms_key_id: str) -> KeySlotInfo:
    """Wrap the data key under another KMS key (id, alias or ARN; an ARN's region is where it unwraps)."""
    slot = wrap_in_kms_slot(_unlocked(vault).master, kms_key_id, vault.config.vault_id)
    write_slot(vault.storage, slot)
    return _info(slot)


def add_passphrase_slot(vault: Vault, passphrase: bytes, cost: ScryptCost | None = None) -> KeySlotInfo:
    """Seal the data key under a passphrase (scrypt at ``cost``, default ``keys.DEFAULT_SCRYPT_COST``, then
    AES-256-GCM)."""
    slot = seal_passphrase_slot(_unlocked(vault).master, passphrase, vault.config.vault_id, cost)
    write_slot(vault.storage, slot)
    return _info(slot)


def remove_slot(vault: Vault, slot_id: str) -> KeySlotInfo:
    """Delete slot ``slot_id`` unless it is the config's, or no remaining slot is known to work (module rules)."""
    unlocked = _unlocked(vault)
    if slot_id == CONFIG_SLOT:
        raise VaultError(
            f"{vault.url}: the config slot cannot be removed (the config is written once); to revoke its KMS key, "
            "disable it or change its key policy in KMS"
        )
    # Exclusive, so that two removals cannot each keep the slot the other removes (the slots are re-read under
    # the lock, and the slot this vault was opened with counts only while it still exists).
    with vault_lock(vault.storage, "key-remove", exclusive=True):
        slots = read_slots(vault.storage)
        target = next((slot for slot in slots if slot.id == slot_id), None)
        if target is None:
            raise VaultError(f"{vault.url}: no key slot {slot_id} (see `vaultline key list`)")
        remaining = [s for s in slots if s.id != slot_id]
        opened_with_remains = unlocked.slot == CONFIG_SLOT or any(s.id == unlocked.slot for s in remaining)
        if not opened_with_remains:
            _require_another_working_slot(vault.storage, vault.config, remaining, slot_id)
        vault.storage.delete(key_slot_key(slot_id))
    return _info(target)


def _require_another_working_slot(
    storage: Storage, config: VaultConfig, remaining: list[KmsSlot | PassphraseSlot], slot_id: str
) -> None:
    # Only KMS can prove a slot works without a passphrase we do not hold: the config's key, then every remaining
    # KMS slot.
    try:
        unlock(storage, config, slots=remaining)
    except WrongKeyError as exc:
        others = sum(isinstance(slot, PassphraseSlot) for slot in remaining)
        hint = f"; open the vault with one of its {others} other passphrase slots to remove this one" if others else ""
        raise VaultError(
            f"{storage.url}: removing key slot {slot_id} would leave no slot known to work "
            f"(it opened the vault, and no KMS slot unwraps the key now: {exc}){hint}"
        ) from None
