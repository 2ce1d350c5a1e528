"""Prune: delete what no recovery point needs, and repack packs that are mostly garbage.

Mark and sweep under an exclusive vault lock (no backup runs meanwhile, see :mod:`vaultline.repository.locks`):

1. **Mark.** Read every manifest and its entry stream; the live set is every ``MANIFEST`` blob and every chunk.
   If any live blob has no existing pack, or any manifest cannot be read, stop before touching anything.
2. **Plan.** Each live blob is assigned to one pack that holds it (packs with the larger live share first, so a
   copy left by an interrupted repack wins over the old, mostly empty pack). A pack with no assigned blob is
   garbage; one whose assigned bytes are under ``repack_threshold`` of its blob bytes is repacked; packs under
   ``data/`` that no index lists are leftovers of crashed backups or prunes and are garbage too.
   Objects under S3 Object Lock retention are held: never deleted, never repacked, reported with their date.
3. **Sweep**, in an order that is safe to stop after any single request:
   a. copy the live blobs of repacked packs, stored bytes verbatim (a sealed blob is bound to its id, not to its
      pack), into new packs and upload them;
   b. write new index objects listing the new packs and every surviving pack of the index objects being replaced;
   c. delete the replaced index objects;
   d. delete the garbage and repacked packs.
   Until (b) completes, the new packs are unindexed leftovers and the old index still finds every blob; after it,
   every live blob is indexed at least once and its pack exists; after (c), the old packs are unindexed
   leftovers. The next prune deletes leftovers, so it finishes whatever a crashed one began.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import blake3
from pydantic import BaseModel, Field

from vaultline.errors import IntegrityError
from vaultline.repository.index import iter_index_objects
from vaultline.repository.layout import index_key, pack_key
from vaultline.repository.locks import STALE_AFTER, remove_stale, vault_lock
from vaultline.repository.manifest import iter_entries, list_recovery_point_ids, load_recovery_point
from vaultline.repository.packs import BlobEntry, PackBuilder, SealedBlob, list_pack_ids
from vaultline.repository.vault import Vault

# Repack a pack when less than half of its blob bytes are live: copying s bytes frees (1 - s) bytes, so below
# one half every byte copied frees more than a byte, and each pack is rewritten at most about log2(n) times
# over its data's life. restic's default (--max-unused 5 %) repacks more eagerly, at a higher request cost.
DEFAULT_REPACK_THRESHOLD = 0.5
# Packs per index object written by prune: keeps each index object a few MiB at most.
PACKS_PER_INDEX = 2000

Fault = Callable[[str], None]
"""Called after each step of the sweep with its name; tests raise from it to simulate a crash there."""


class HeldObject(BaseModel):
    """An object prune would delete but Object Lock retention forbids; it is deferred to a later prune."""

    key: str
    mode: str | None
    retain_until: datetime | None
    legal_hold: bool = False


class PruneOptions(BaseModel):
    """Knobs of a prune."""

    repack_threshold: float = Field(default=DEFAULT_REPACK_THRESHOLD, ge=0.0, le=1.0)
    dry_run: bool = False
    stale_after_seconds: float = Field(default=STALE_AFTER.total_seconds(), gt=0)


class PruneReport(BaseModel):
    """What a prune found and did (or, with dry_run, would do)."""

    dry_run: bool = False
    recovery_points: int = 0
    live_blobs: int = 0
    packs_before: int = 0
    packs_after: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    unindexed_packs_deleted: int = 0
    blobs_repacked: int = 0
    bytes_repacked: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    bytes_freed: int = 0
    index_objects_written: int = 0
    index_objects_deleted: int = 0
    stale_locks_removed: int = 0
    held: list[HeldObject] = Field(default_factory=list)
    bytes_written: int = 0
    seconds: float = 0.0


@dataclass
class _IndexView:
    """The index as prune needs it: which index object lists which packs, and every location of every blob."""

    objects: dict[str, list[tuple[str, list[BlobEntry]]]] = field(default_factory=dict)
    packs: dict[str, list[BlobEntry]] = field(default_factory=dict)


@dataclass
class PrunePlan:
    """The decisions of steps 1 and 2, before anything is written or deleted."""

    live: set[bytes]
    stored: dict[str, int]
    view: _IndexView
    keep: set[str] = field(default_factory=set)
    delete: set[str] = field(default_factory=set)
    repack: dict[str, list[BlobEntry]] = field(default_factory=dict)
    unindexed: set[str] = field(default_factory=set)
    replaced_indexes: set[str] = field(default_factory=set)
    held: list[HeldObject] = field(default_factory=list)
    recovery_points: int = 0


def _load_view(vault: Vault) -> _IndexView:
    view = _IndexView()
    for index_id, packs in iter_index_objects(vault.storage, vault.cipher):
        view.objects[index_id] = packs
        for pack_id, entries in packs:
            view.packs[pack_id] = entries
    return view


def mark_live(vault: Vault) -> tuple[set[bytes], int]:
    """Every blob some recovery point needs, and the number of recovery points. Raises on any unreadable
    manifest or entry stream: a prune that cannot see everything live must not delete anything."""
    live: set[bytes] = set()
    ids = list_recovery_point_ids(vault)
    for rp_id in ids:
        rp = load_recovery_point(vault, rp_id)
        live.update(bytes.fromhex(b) for b in rp.entry_blobs)
        for entry in iter_entries(vault, rp):
            live.update(bytes.fromhex(c) for c in entry.chunks)
    return live, len(ids)


def plan_prune(vault: Vault, threshold: float = DEFAULT_REPACK_THRESHOLD, now: datetime | None = None) -> PrunePlan:
    """Steps 1 and 2: mark, assign live blobs to packs, classify packs, find what Object Lock holds."""
    vault.reload_index()  # entry streams are read through the vault's own index; take a fresh one
    view = _load_view(vault)
    live, count = mark_live(vault)
    stored = list_pack_ids(vault.storage)
    plan = PrunePlan(live=live, stored=stored, view=view, recovery_points=count)

    existing = {p: entries for p, entries in view.packs.items() if p in stored}
    located = {e.id for entries in existing.values() for e in entries}
    missing = live - located
    if missing:
        raise IntegrityError(
            f"{vault.url}: {len(missing)} blobs that recovery points need are in no existing pack "
            f"(first {min(missing).hex()}); prune refuses to run on a damaged vault: run check"
        )

    def live_share(pack_id: str) -> float:
        entries = existing[pack_id]
        total = sum(e.stored_length for e in entries) or 1
        return sum(e.stored_length for e in entries if e.id in live) / total

    assigned: dict[str, list[BlobEntry]] = {}
    claimed: set[bytes] = set()
    for pack_id in sorted(existing, key=lambda p: (-live_share(p), p)):
        mine = [e for e in existing[pack_id] if e.id in live and e.id not in claimed]
        claimed.update(e.id for e in mine)
        assigned[pack_id] = mine

    now = now or datetime.now(UTC)
    held_keys: set[str] = set()
    for pack_id, mine in assigned.items():
        total = sum(e.stored_length for e in existing[pack_id]) or 1
        share = sum(e.stored_length for e in mine) / total
        if mine and share >= threshold:
            plan.keep.add(pack_id)
        elif _held(vault, pack_key(pack_id), now, plan):
            held_keys.add(pack_id)
            plan.keep.add(pack_id)
        elif mine:
            plan.repack[pack_id] = mine
        else:
            plan.delete.add(pack_id)
    for pack_id in sorted(stored.keys() - view.packs.keys()):
        if not _held(vault, pack_key(pack_id), now, plan):
            plan.unindexed.add(pack_id)

    # Index objects that list a removed pack are replaced. One that is held stays, and so must every pack it
    # lists (a held index naming a deleted pack would be a dangling reference).
    removed = plan.delete | plan.repack.keys()
    for index_id, packs in view.objects.items():
        if not any(p in removed for p, _ in packs):
            continue
        if _held(vault, index_key(index_id), now, plan):
            for pack_id, _ in packs:
                if pack_id in removed:
                    plan.delete.discard(pack_id)
                    plan.repack.pop(pack_id, None)
                    plan.keep.add(pack_id)
        else:
            plan.replaced_indexes.add(index_id)
    return plan


def _held(vault: Vault, key: str, now: datetime, plan: PrunePlan) -> bool:
    retention = vault.storage.retention(key)
    if retention is None or not retention.holds(now):
        return False
    plan.held.append(
        HeldObject(key=key, mode=retention.mode, retain_until=retention.retain_until, legal_hold=retention.legal_hold)
    )
    return True


def _repack(
    vault: Vault, plan: PrunePlan, report: PruneReport, fault: Fault | None
) -> list[tuple[str, list[BlobEntry]]]:
    """Step 3a: copy live blobs of the repacked packs into new packs, verbatim."""
    written: list[tuple[str, list[BlobEntry]]] = []
    builder = PackBuilder()

    def ship() -> None:
        nonlocal builder
        pack_id, data = builder.finish(vault.cipher)
        vault.storage.put(pack_key(pack_id), data)
        written.append((pack_id, builder.entries))
        report.packs_written += 1
        report.bytes_written += len(data)
        builder = PackBuilder()
        if fault:
            fault("pack-written")

    for pack_id in sorted(plan.repack):
        data = vault.storage.get(pack_key(pack_id))
        intact = blake3.blake3(data).hexdigest() == pack_id
        for entry in plan.repack[pack_id]:
            stored = data[entry.offset : entry.offset + entry.stored_length]
            if not intact:
                # The pack is damaged somewhere; copy a blob only after proving it decodes to its id.
                vault.decode_blob(stored, entry, pack_id)
            builder.add(SealedBlob(entry.id, entry.type, entry.compression, entry.raw_length, stored))
            if builder.size >= vault.config.pack_size:
                ship()
    if len(builder):
        ship()
    return written


def execute_prune(vault: Vault, plan: PrunePlan, fault: Fault | None = None) -> PruneReport:
    """Step 3: the sweep, in the crash-safe order of the module docstring."""
    report = _summarize(plan)
    new_packs = _repack(vault, plan, report, fault)
    removed = plan.delete | plan.repack.keys()
    vault.invalidate_catalog(keep_current=not (removed or plan.replaced_indexes))  # before any index or pack goes
    if plan.replaced_indexes:
        survivors = {
            pack_id: entries
            for index_id in sorted(plan.replaced_indexes)
            for pack_id, entries in plan.view.objects[index_id]
            if pack_id not in removed
        }
        listing = sorted(survivors.items()) + new_packs
        for start in range(0, len(listing), PACKS_PER_INDEX):
            vault.write_index(listing[start : start + PACKS_PER_INDEX])
            report.index_objects_written += 1
            if fault:
                fault("index-written")
        for index_id in sorted(plan.replaced_indexes):
            vault.storage.delete(index_key(index_id))
            report.index_objects_deleted += 1
            if fault:
                fault("index-deleted")
    # A repack can rebuild, byte for byte, a pack that a crashed prune uploaded and that this one found unindexed
    # (in mode none packs are deterministic): that name is the new pack now and must not be deleted.
    rebuilt = {pack_id for pack_id, _ in new_packs}
    for pack_id in sorted((removed | plan.unindexed) - rebuilt):
        vault.storage.delete(pack_key(pack_id))
        if fault:
            fault("pack-deleted")
    report.packs_after = len(plan.stored | {p: 0 for p in rebuilt}) - len((removed | plan.unindexed) - rebuilt)
    report.bytes_after = report.bytes_before - report.bytes_freed + report.bytes_written
    vault.reload_index()
    return report


def _summarize(plan: PrunePlan) -> PruneReport:
    removed = plan.delete | plan.repack.keys() | plan.unindexed
    return PruneReport(
        recovery_points=plan.recovery_points,
        live_blobs=len(plan.live),
        packs_before=len(plan.stored),
        packs_deleted=len(plan.delete),
        packs_repacked=len(plan.repack),
        unindexed_packs_deleted=len(plan.unindexed),
        bytes_before=sum(plan.stored.values()),
        bytes_freed=sum(plan.stored.get(p, 0) for p in removed),
        held=plan.held,
        blobs_repacked=sum(len(v) for v in plan.repack.values()),
        bytes_repacked=sum(e.stored_length for v in plan.repack.values() for e in v),
        packs_after=len(plan.stored) - len(removed),
        bytes_after=sum(plan.stored.values()) - sum(plan.stored.get(p, 0) for p in removed),
    )


def prune(
    vault: Vault,
    options: PruneOptions | None = None,
    now: datetime | None = None,
    fault: Fault | None = None,
) -> PruneReport:
    """Take the exclusive lock, remove stale locks, mark, plan and (unless dry_run) sweep."""
    options = options or PruneOptions()
    clock = time.monotonic()
    stale_after = timedelta(seconds=options.stale_after_seconds)
    # A stale lock is left by a dead process; it must not keep the vault locked forever.
    stale = remove_stale(vault.storage, now, stale_after)
    with vault_lock(vault.storage, "prune", exclusive=True, now=now, stale_after=stale_after):
        plan = plan_prune(vault, options.repack_threshold, now)
        if options.dry_run:
            report = _summarize(plan)
            report.dry_run = True
        else:
            report = execute_prune(vault, plan, fault)
    report.stale_locks_removed = len(stale)
    report.seconds = round(time.monotonic() - clock, 3)
    return report


__all__ = [
    "DEFAULT_REPACK_THRESHOLD",
    "HeldObject",
    "PruneOptions",
    "PrunePlan",
    "PruneReport",
    "execute_prune",
    "mark_live",
    "plan_prune",
    "prune",
]
