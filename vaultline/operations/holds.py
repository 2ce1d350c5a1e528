"""Legal holds: place or lift S3 Object Lock legal holds on every object a recovery point needs.

A recovery point needs its manifest, the packs holding its entry blobs and chunks, and the index objects that
locate those packs (a restore finds blobs through the index, so an unheld index object would leave held packs
unreadable to the CLI). A held object cannot be deleted by anyone, in either retention mode, until its hold is
lifted; forget and prune already defer every held object and report it.

Holding an index object also keeps every pack it lists (prune never deletes a pack that a held index object
names), so a hold may keep a little more than its recovery point alone needs; that errs on the side a legal hold
exists for.

Each hold is recorded in ``holds/<recovery point id>`` (plaintext JSON, see docs/vault-format.md): the record is
written before the first object is held and deleted after the last one is lifted, so a crash part-way leaves a
record in state ``placing`` or ``lifting`` that says so, and running the same command again finishes it. Lifting a
hold leaves on hold whatever another held recovery point needs.

Ceiling: one hold holds the set of pack ids its recovery point uses (about 100 bytes each, at most the vault's
pack count: ~650,000 packs at 10 TB, ~65 MB) and a lift also streams every other held recovery point; the requests
are one per object.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError

from vaultline.errors import IntegrityError, ObjectMissing, VaultError
from vaultline.model import VaultlineModel
from vaultline.repository.index import iter_index_tables
from vaultline.repository.layout import HOLDS_PREFIX, hold_key, index_key, manifest_key, pack_key
from vaultline.repository.manifest import RecoveryPoint, load_recovery_point, needed_blobs
from vaultline.repository.vault import Vault

LISTED = 100  # object keys a report names; its counts are complete


class HoldRecord(VaultlineModel):
    """The record ``holds/<recovery point id>`` of one legal hold."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    recovery_point: str
    state: Literal["placing", "held", "lifting"]
    placed: datetime
    reason: str = ""


class HoldReport(VaultlineModel):
    """What ``hold add`` / ``hold remove`` / ``hold list RP`` found or did."""

    recovery_point: str
    state: Literal["held", "lifted", "placing", "lifting", "none"]
    objects: int = 0
    held: int = 0
    changed: int = 0
    kept_for_others: int = 0
    not_held: list[str] = Field(default_factory=list)
    reason: str = ""

    @property
    def complete(self) -> bool:
        """A recorded hold whose every object is on hold (or no hold at all)."""
        return self.state == "none" or not self.not_held


def needed_packs(vault: Vault, rp: RecoveryPoint) -> set[str]:
    """The packs holding what ``rp`` needs; a blob in no index means a damaged vault, and nothing is held."""
    packs: set[str] = set()
    index = vault.index
    for blob in needed_blobs(vault, rp):
        location = index.get(blob)
        if location is None:
            raise IntegrityError(
                f"{vault.url}: recovery point {rp.id} needs blob {blob.hex()[:16]}, which no index lists; run check"
            )
        packs.add(location.pack_id)
    return packs


def needed_objects(vault: Vault, rp: RecoveryPoint) -> list[str]:
    """The keys of every object ``rp`` needs: its manifest, its packs and the index objects listing them."""
    packs = needed_packs(vault, rp)
    raw = {bytes.fromhex(p) for p in packs}
    indexes = [
        index_id
        for index_id, table in iter_index_tables(vault.storage, vault.cipher)
        if any(pack_id in raw for pack_id in table.pack_ids)
    ]
    return [*(pack_key(p) for p in sorted(packs)), *(index_key(i) for i in sorted(indexes)), manifest_key(rp.id)]


def load_hold(vault: Vault, rp_id: str) -> HoldRecord | None:
    """The hold record of ``rp_id``, or None when it has none."""
    try:
        raw = vault.storage.get(hold_key(rp_id))
    except ObjectMissing:
        return None
    try:
        return HoldRecord.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise VaultError(f"{vault.url}: invalid {hold_key(rp_id)} ({exc})") from None


def list_holds(vault: Vault) -> list[HoldRecord]:
    """Every hold record of the vault, by recovery point id (one small object each)."""
    ids = sorted(obj.key[len(HOLDS_PREFIX) :] for obj in vault.storage.list(HOLDS_PREFIX))
    return [record for rp_id in ids if (record := load_hold(vault, rp_id)) is not None]


def _save(vault: Vault, record: HoldRecord) -> None:
    vault.storage.put(hold_key(record.recovery_point), record.model_dump_json(indent=2).encode() + b"\n")


def add_hold(vault: Vault, rp_id: str, reason: str = "", now: datetime | None = None) -> HoldReport:
    """Place a legal hold on every object ``rp_id`` needs (idempotent: an interrupted add finishes on a rerun)."""
    vault.storage.require_object_lock("place a legal hold")
    rp = load_recovery_point(vault, rp_id)
    keys = needed_objects(vault, rp)
    record = load_hold(vault, rp_id)
    placed = record.placed if record is not None and record.state != "lifting" else (now or datetime.now(UTC))
    _save(vault, HoldRecord(recovery_point=rp_id, state="placing", placed=placed, reason=reason))
    changed = 0
    for key in keys:
        changed += vault.storage.set_legal_hold(key, True)
    _save(vault, HoldRecord(recovery_point=rp_id, state="held", placed=placed, reason=reason))
    return HoldReport(
        recovery_point=rp_id, state="held", objects=len(keys), held=len(keys), changed=changed, reason=reason
    )


def remove_hold(vault: Vault, rp_id: str) -> HoldReport:
    """Lift the legal hold of ``rp_id`` from every object it needs that no other held recovery point needs."""
    vault.storage.require_object_lock("lift a legal hold")
    record = load_hold(vault, rp_id)
    if record is None:
        raise VaultError(f"{vault.url}: recovery point {rp_id} has no legal hold (see `vaultline hold list`)")
    _save(vault, record.model_copy(update={"state": "lifting"}))
    keys = set(needed_objects(vault, load_recovery_point(vault, rp_id)))
    others: set[str] = set()
    for other in list_holds(vault):
        if other.recovery_point != rp_id and other.state != "lifting":
            others.update(keys.intersection(needed_objects(vault, load_recovery_point(vault, other.recovery_point))))
    changed = 0
    for key in sorted(keys - others):
        changed += vault.storage.set_legal_hold(key, False)
    vault.storage.delete(hold_key(rp_id))
    return HoldReport(
        recovery_point=rp_id,
        state="lifted",
        objects=len(keys),
        held=len(others),
        changed=changed,
        kept_for_others=len(others),
        reason=record.reason,
    )


def hold_status(vault: Vault, rp_id: str) -> HoldReport:
    """Whether ``rp_id`` is held, and which of the objects it needs are not actually on hold (one request each;
    a recorded hold with objects off hold is incomplete: an interrupted add, or someone lifted holds by hand)."""
    rp = load_recovery_point(vault, rp_id)
    record = load_hold(vault, rp_id)
    keys = needed_objects(vault, rp)
    not_held = [key for key in keys if not vault.storage.legal_hold(key)]
    state = "none" if record is None else record.state
    return HoldReport(
        recovery_point=rp_id,
        state=state,
        objects=len(keys),
        held=len(keys) - len(not_held),
        not_held=not_held[:LISTED],
        reason=record.reason if record else "",
    )


__all__ = [
    "HoldRecord",
    "HoldReport",
    "add_hold",
    "hold_status",
    "list_holds",
    "load_hold",
    "needed_objects",
    "needed_packs",
    "remove_hold",
]
