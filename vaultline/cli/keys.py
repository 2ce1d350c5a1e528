"""The key slot commands: ``key list``, ``key add --kms-key-id ID | --passphrase-file F``, ``key remove ID``.

Exit codes as everywhere: 0 done, 1 refused or failed (a vault without encryption, the config slot, the last
slot known to work, a KMS key that cannot be used), 2 bad usage (an unreadable or empty passphrase file).
"""

from __future__ import annotations

import argparse

from rich.table import Table

from vaultline.cli.context import passphrase_of, read_passphrase_file, vault_url
from vaultline.cli.output import emit_json, out
from vaultline.operations.keys import (
    KeySlotInfo,
    add_kms_slot,
    add_passphrase_slot,
    list_key_slots,
    remove_slot,
)
from vaultline.repository.keys import require_encrypted
from vaultline.repository.vault import Vault
from vaultline.storage import open_storage


def _describe(slot: KeySlotInfo) -> str:
    if slot.kind == "kms":
        return f"{slot.kms_key_id}" + (f" ({slot.region})" if slot.region else "")
    return slot.kdf or ""


def cmd_key_list(args: argparse.Namespace) -> int:
    slots = list_key_slots(open_storage(vault_url(args)))
    if args.json:
        emit_json([slot.model_dump(mode="json") for slot in slots])
        return 0
    table = Table("id", "kind", "key", "created")
    for slot in slots:
        created = f"{slot.created:%Y-%m-%d %H:%M:%S}" if slot.created else ""
        table.add_row(slot.id, slot.kind, _describe(slot), created)
    out.print(table)
    return 0


def _open_encrypted(args: argparse.Namespace) -> Vault:
    storage = open_storage(vault_url(args))
    # Refuse a vault without encryption before reading a passphrase or calling KMS: it has no key to wrap.
    require_encrypted(Vault.read_config(storage), storage.url)
    return Vault.open(storage, passphrase=passphrase_of(args))


def cmd_key_add(args: argparse.Namespace) -> int:
    vault = _open_encrypted(args)
    if args.kms_key_id:
        slot = add_kms_slot(vault, args.kms_key_id)
    else:
        slot = add_passphrase_slot(vault, read_passphrase_file(args.new_passphrase_file))
    if args.json:
        emit_json(slot.model_dump(mode="json"))
    else:
        out.print(f"added key slot {slot.id} ({slot.kind}: {_describe(slot)})")
    return 0


def cmd_key_remove(args: argparse.Namespace) -> int:
    slot = remove_slot(_open_encrypted(args), args.slot)
    if args.json:
        emit_json(slot.model_dump(mode="json"))
    else:
        out.print(f"removed key slot {slot.id} ({slot.kind}: {_describe(slot)})")
    return 0
