"""Prune: delete what no recovery point needs, and repack packs that are mostly garbage.

A prune is a staged run (``staging/<run id>/``, records in :mod:`vaultline.operations.prune_records`) of steps that
each hold a bounded part of the vault; the Maintenance state machine runs them as Lambda steps and Distributed
Maps, and the CLI runs the very same steps in one process (:func:`prune`):

1. **Start** (:func:`start`) removes stale locks, takes the vault's **exclusive** lock (its id is in the run
   document: every later step checks that it still holds a fresh one and refreshes it, so the lock is held across
   invocations, and a step that finds it gone or stale fails before it deletes anything), lists the packs into
   ``packs`` and stages the mark work: batches of recovery points and batches of index objects.
2. **Mark** (:func:`mark`, a Map over those batches): a points item streams its recovery points' entries and writes
   the live blob ids (every ``MANIFEST`` blob and every chunk) as sorted runs per partition; an index item writes
   its index objects' entries as sorted ``located`` runs per partition, and which packs each index object lists.
   Any manifest or index object that cannot be read stops the run: a prune that cannot see everything live
   must not delete anything.
3. **Plan** (:func:`plan`, a Map over partitions) merges a partition's live and located runs: per pack, its entry
   bytes, live bytes and live offsets; a live blob in no existing pack fails the run (IntegrityError, nothing
   deleted); a live blob in more than one pack is listed apart (``dups``).
4. **Decide** (:func:`decide`) merges the partitions' per-pack partials in pack order and classifies each pack:
   each duplicated live blob is assigned to the pack with the larger live share (so a copy left by an interrupted
   repack wins over the old, mostly empty pack); a pack with no live blob is garbage; one whose live bytes are under
   ``repack_threshold`` of its entry bytes is repacked; a pack no index lists is a leftover of a crashed backup or
   prune and is garbage too. Index objects that list a removed pack are replaced; one under Object Lock retention
   is kept, and so is every pack it lists (a held index naming a deleted pack would be a dangling reference). It
   stages the sweep as batches of packs.
5. **Sweep** (:func:`sweep`, a Map over the batches) finds which packs Object Lock holds (never deleted, never
   repacked, reported with their date), copies the live blobs of repacked packs, stored bytes verbatim (a sealed
   blob is bound to its id, not to its pack), into new packs, uploads them, then writes an index object for them.
6. **Finish** (:func:`finish`) writes index objects listing every surviving pack of the index objects being
   replaced, deletes the replaced index objects, deletes the garbage and repacked packs (DeleteObjects, 1,000
   keys a request), releases the lock and cleans the staging.

In that order a crash after any single request leaves a consistent vault: until the new index objects are
written, the new packs are unindexed leftovers and the old index still finds every blob; after them, every live
blob is indexed at least once and its pack exists; after the replaced index objects are deleted, the old packs are
unindexed leftovers. The next prune deletes leftovers, so it finishes whatever a crashed one began. Mark, sweep and
finish items are time-budgeted: given ``remaining_ms``, an item stops when less than ``RESERVE_MS`` is left and
returns ``done: false`` with the cursor to continue from (the state machine loops the item).

Ceilings (memory per step, at 30 million chunks in 16 MiB packs, about 650,000 packs, 10 TB):

* start: the packs listing as 40 bytes a pack (26 MiB at 650,000 packs) and the recovery point ids (about 100
  bytes each: a million points in 100 MiB); index object ids are streamed into batches.
* mark: ``marks.FLUSH_RECORDS`` records (16 MiB of live ids, 36 MiB of located records) before a flush (the
  writer is shared with check and stats: vaultline/operations/marks.py), plus the vault's compact index (34 bytes
  per blob, about 1 GiB at 30 million chunks) that entry streams are read through; one recovery point's entry
  stream must be read within one invocation (the cursor is per recovery point).
* plan: one partition's live and located runs as bytes (about 110 bytes per chunk / partitions: 13 MiB at 256
  partitions), the packs listing (40 bytes per pack: 26 MiB), and a per-pack accumulator for the packs with a blob
  in the partition (about 200 bytes each).
* decide: one partial per partition in the merge, the removed packs' ids (32 bytes each: 21 MiB at most), the
  duplicated live blobs (normally a few packs' worth: copies of crashed repacks and of racing backups) and the index
  objects' ids; its time is one pass over the partials (about 4 bytes per live chunk plus 48 per pack and
  partition it has blobs in).
* sweep: ``SWEEP_PACKS`` packs' ids and one pack at a time (plus the pack being built).
* finish: the held and new packs' ids (about 100 bytes each) and one index object at a time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Literal

import blake3
from pydantic import Field

from vaultline.errors import IntegrityError, ObjectMissing, RecoveryPointNotFound, VaultError, VaultlineError
from vaultline.model import VaultlineModel
from vaultline.operations import prune_records as rec
from vaultline.operations.batching import batches
from vaultline.operations.defaults import DEFAULT_REPACK_THRESHOLD
from vaultline.operations.marks import RunWriter, stored_packs
from vaultline.repository import locks
from vaultline.repository.index import decode_index
from vaultline.repository.layout import (
    INDEX_PREFIX,
    STAGING_PREFIX,
    index_key,
    lock_key,
    pack_key,
)
from vaultline.repository.manifest import list_recovery_point_ids, load_recovery_point, needed_blobs
from vaultline.repository.packs import BlobEntry, PackBuilder, SealedBlob, read_pack_entries
from vaultline.repository.vault import Vault
from vaultline.storage import Storage

# Packs per index object written by prune: keeps each index object a few MiB at most.
PACKS_PER_INDEX = 2000
# Work per item: recovery points or index objects per mark batch, packs per sweep batch (one DeleteObjects).
POINTS_PER_BATCH = 64
INDEX_OBJECTS_PER_BATCH = 16
SWEEP_PACKS = 1000
SWEEP_REPACK_BYTES = 512 << 20  # live bytes one sweep item copies at most
DELETE_BATCH = 1000  # keys per DeleteObjects request (the S3 maximum)
RETENTION_LOOKUPS = 16  # Object Lock lookups (one HEAD each) in flight
# Partitions: enough that one partition's runs stay a few MiB (about PARTITION_INDEX_BYTES of index objects each).
MAX_PARTITION_BITS = 8
PARTITION_INDEX_BYTES = 8 << 20
# An item stops when less than this is left of its Lambda time: enough to flush its runs or packs and index.
RESERVE_MS = 60_000
MAX_HELD_LISTED = 1000

Fault = Callable[[str], None]
"""Called after each request of the sweep and finish with its name; tests raise from it to simulate a crash there."""
Remaining = Callable[[], int]


class HeldObject(VaultlineModel):
    """An object prune would delete but Object Lock retention forbids; it is deferred to a later prune."""

    key: str
    mode: str | None
    retain_until: datetime | None
    legal_hold: bool = False


class PruneOptions(VaultlineModel):
    """Knobs of a prune."""

    repack_threshold: float = Field(default=DEFAULT_REPACK_THRESHOLD, ge=0.0, le=1.0)
    dry_run: bool = False
    stale_after_seconds: float = Field(default=locks.STALE_AFTER.total_seconds(), gt=0)
    partition_bits: int | None = Field(default=None, ge=0, le=MAX_PARTITION_BITS)


class PruneReport(VaultlineModel):
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
    held: list[HeldObject] = Field(default_factory=list, description=f"the first {MAX_HELD_LISTED}")
    held_count: int = 0
    held_until: datetime | None = Field(
        default=None, description="the earliest retain-until of the held objects: when a prune can take the first"
    )
    bytes_written: int = 0
    seconds: float = 0.0


# -- the run's models -------------------------------------------------------------------------------------------


class PruneRun(VaultlineModel):
    """The run document, written by Start."""

    run_id: str
    lock_id: str
    now: datetime
    stale_after_seconds: float
    repack_threshold: float
    dry_run: bool
    bits: int
    stale_locks_removed: int
    recovery_points: int
    index_objects: int
    packs_before: int
    bytes_before: int
    mark_items: int


class MarkItem(VaultlineModel):
    """One mark work item: a staged batch of recovery points or index objects, from ``start`` on."""

    number: int
    kind: Literal["points", "index"]
    batch: str
    start: int = 0
    part: int = 0


class MarkBatch(VaultlineModel):
    ids: list[str]


class MarkResult(VaultlineModel):
    number: int
    part: int
    done: bool
    next: MarkItem | None = None
    points: int = 0
    index_objects: int = 0


class PlanResult(VaultlineModel):
    partition: int
    live_blobs: int
    located: int
    duplicated: int


class RepackPack(VaultlineModel):
    pack: str
    offsets: list[int]


class SweepBatch(VaultlineModel):
    """The packs one sweep item handles: repacked, deleted (garbage) and unindexed, with their stored sizes."""

    repack: list[RepackPack] = Field(default_factory=list)
    delete: list[str] = Field(default_factory=list)
    unindexed: list[str] = Field(default_factory=list)
    sizes: dict[str, int] = Field(default_factory=dict)


class SweepItem(VaultlineModel):
    number: int
    batch: str
    start: int = 0
    part: int = 0


class SweepResult(VaultlineModel):
    """What one part of a sweep item did; ``deletes`` are the packs Finish deletes."""

    number: int
    part: int
    done: bool
    next: SweepItem | None = None
    new_packs: list[str] = Field(default_factory=list)
    deletes: list[str] = Field(default_factory=list)
    held: list[HeldObject] = Field(default_factory=list)
    packs_deleted: int = 0
    packs_repacked: int = 0
    unindexed_packs_deleted: int = 0
    blobs_repacked: int = 0
    bytes_repacked: int = 0
    bytes_freed: int = 0
    packs_written: int = 0
    bytes_written: int = 0
    index_objects_written: int = 0


class Decision(VaultlineModel):
    """What Decide staged (``decision``): the index objects to replace, the packs kept because a held index lists
    them, the sweep's items, and the planned counts (what a dry run reports)."""

    replaced: list[str] = Field(default_factory=list)
    rescued: list[str] = Field(default_factory=list)
    held_indexes: list[HeldObject] = Field(default_factory=list)
    sweep_items: int = 0
    live_blobs: int = 0
    planned: PruneReport = Field(default_factory=PruneReport)


class FinishCursor(VaultlineModel):
    phase: Literal["index", "drop-index", "drop-packs"] = "index"
    position: int = 0


class FinishResult(VaultlineModel):
    done: bool
    next: FinishCursor | None = None
    report: PruneReport | None = None


RUN = "run.json"
DECISION = "decision.json"
# The report of a Finish that completed: all its run leaves behind, so that Finish run again (its first response
# lost, the invoke retried) reports that success instead of failing on a staging area it already cleaned. The next
# prune's Start deletes it; the staging lifecycle rule would too.
FINISHED = "finished.json"
PACKS = "packs"
REMOVED = "removed"


def _names(number: int, part: int) -> str:
    return f"{number:06d}-{part:04d}"


def _results(kind: str) -> str:
    return f"results/{kind}/"


# -- the lock across steps --------------------------------------------------------------------------------------


def _hold(vault: Vault, run: PruneRun) -> None:
    """Prove the run still holds its exclusive lock, never stale since Start (so no backup can have started), and
    refresh it; otherwise fail before anything is deleted."""
    key = lock_key(run.lock_id)
    try:
        info = locks.LockInfo.model_validate_json(vault.storage.get(key))
    except ObjectMissing:
        raise VaultError(f"{vault.url}: prune {run.run_id} lost its lock {key}; run prune again") from None
    now = max(datetime.now(UTC), run.now)
    if info.stale(now, timedelta(seconds=run.stale_after_seconds)):
        raise VaultError(f"{vault.url}: prune {run.run_id}'s lock {key} went stale; run prune again")
    locks.refresh(vault.storage, locks.Lock(id=run.lock_id, info=info), now)


def _open(vault: Vault, run_id: str) -> tuple[rec.Staging, PruneRun]:
    staging = rec.Staging(vault, run_id)
    run = staging.get_model(RUN, PruneRun)
    _hold(vault, run)
    return staging, run


def _forget_finished_runs(vault: Vault) -> None:
    """Delete the reports earlier prunes' Finish kept (under the exclusive lock no other prune runs, so what is
    under ``staging/prune-`` is those reports and what crashed runs left, bounded by the runs since the last)."""
    for obj in vault.storage.list(f"{STAGING_PREFIX}prune-"):
        if obj.key.endswith("/" + FINISHED):
            vault.storage.delete(obj.key)


def _low(remaining_ms: Remaining | None) -> bool:
    return remaining_ms is not None and remaining_ms() < RESERVE_MS


# -- 1. start ---------------------------------------------------------------------------------------------------


def _partition_bits(storage: Storage) -> int:
    index_bytes = sum(obj.size for obj in storage.list(INDEX_PREFIX))
    bits = 0
    while bits < MAX_PARTITION_BITS and (index_bytes >> bits) > PARTITION_INDEX_BYTES:
        bits += 1
    return bits


def start(
    vault: Vault, options: PruneOptions, now: datetime | None = None, owner: str | None = None
) -> tuple[PruneRun, list[MarkItem]]:
    """Remove stale locks, take the exclusive lock, list the packs, stage the mark work (raises VaultLocked while
    a backup holds the shared lock)."""
    moment = now or datetime.now(UTC)
    stale_after = timedelta(seconds=options.stale_after_seconds)
    # A stale lock is left by a dead process; it must not keep the vault locked forever.
    stale = locks.remove_stale(vault.storage, moment, stale_after)
    lock = locks.acquire(vault.storage, "prune", exclusive=True, now=moment, stale_after=stale_after, owner=owner)
    _forget_finished_runs(vault)
    run_id = f"prune-{moment:%Y%m%dT%H%M%SZ}-{lock.id[:8]}"
    staging = rec.Staging(vault, run_id)
    try:
        packs, size = 0, 0
        listing = bytearray()
        for pack_id, stored in stored_packs(vault.storage):
            listing += rec.STORED_PACK.pack(bytes.fromhex(pack_id), stored)
            packs, size = packs + 1, size + stored
        staging.put_bytes(PACKS, bytes(listing))
        del listing
        items: list[MarkItem] = []
        points = 0
        for batch in batches(list_recovery_point_ids(vault), POINTS_PER_BATCH):
            name = f"batches/mark/{len(items):06d}"
            staging.put_model(name, MarkBatch(ids=batch))
            items.append(MarkItem(number=len(items), kind="points", batch=name))
            points += len(batch)
        index_ids = (obj.key[len(INDEX_PREFIX) :] for obj in vault.storage.list(INDEX_PREFIX))
        index_objects = 0
        for batch in batches(index_ids, INDEX_OBJECTS_PER_BATCH):
            name = f"batches/mark/{len(items):06d}"
            staging.put_model(name, MarkBatch(ids=batch))
            items.append(MarkItem(number=len(items), kind="index", batch=name))
            index_objects += len(batch)
        bits = options.partition_bits if options.partition_bits is not None else _partition_bits(vault.storage)
        run = PruneRun(
            run_id=run_id,
            lock_id=lock.id,
            now=moment,
            stale_after_seconds=options.stale_after_seconds,
            repack_threshold=options.repack_threshold,
            dry_run=options.dry_run,
            bits=bits,
            stale_locks_removed=len(stale),
            recovery_points=points,
            index_objects=index_objects,
            packs_before=packs,
            bytes_before=size,
            mark_items=len(items),
        )
        staging.put_model(RUN, run)
    except BaseException:
        with contextlib.suppress(VaultlineError):
            staging.clean()
        with contextlib.suppress(VaultlineError):
            locks.release(vault.storage, lock)
        raise
    return run, items


# -- 2. mark ----------------------------------------------------------------------------------------------------


def mark(vault: Vault, run_id: str, item: MarkItem, remaining_ms: Remaining | None = None) -> MarkResult:
    """Write the live ids of a batch of recovery points (or the entries of a batch of index objects) as sorted
    runs per partition, from ``item.start`` until the batch ends or the time budget runs low."""
    staging, run = _open(vault, run_id)
    ids = staging.get_model(item.batch, MarkBatch).ids
    stem = _names(item.number, item.part)
    result = MarkResult(number=item.number, part=item.part, done=True)
    if item.kind == "points":
        writer = RunWriter(staging, "live", run.bits, stem)
        step: Callable[[str], None] = lambda rp_id: _mark_point(vault, rp_id, writer)  # noqa: E731
    else:
        writer = RunWriter(staging, "located", run.bits, stem, size=rec.LOCATED.size)
        objects: list[tuple[bytes, list[bytes]]] = []
        step = lambda index_id: objects.append(_mark_index(vault, index_id, writer))  # noqa: E731
    for position in range(item.start, len(ids)):
        if position > item.start and _low(remaining_ms):
            result.done = False
            result.next = item.model_copy(update={"start": position, "part": item.part + 1})
            break
        step(ids[position])
        if item.kind == "points":
            result.points += 1
        else:
            result.index_objects += 1
        if writer.full():
            writer.flush()
    writer.flush()
    if item.kind == "index":
        staging.put_bytes(f"index-packs/{stem}", rec.encode_index_packs(objects))
    # Only a finished item's result is under results/mark/: Plan and Decide prove every item finished by a listing.
    done = f"{_results('mark')}{item.number:06d}.json"
    staging.put_model(done if result.done else f"results/mark-parts/{stem}.json", result)
    return result


def _mark_point(vault: Vault, rp_id: str, writer: RunWriter) -> None:
    try:
        rp = load_recovery_point(vault, rp_id)
    except RecoveryPointNotFound:
        return  # forgotten since Start: what it alone needed is garbage now
    for blob in needed_blobs(vault, rp):
        writer.add(blob)
        if writer.full():
            writer.flush()


def _mark_index(vault: Vault, index_id: str, writer: RunWriter) -> tuple[bytes, list[bytes]]:
    key = index_key(index_id)
    stored = vault.storage.get(key)
    if blake3.blake3(stored).hexdigest() != index_id:
        raise IntegrityError(f"{vault.url}: {key} does not hash to its name (corrupt index); run check")
    packs = []
    for pack_id, entries in decode_index(stored, vault.cipher, f"{vault.url}: {key}"):
        pack = bytes.fromhex(pack_id)
        packs.append(pack)
        for e in entries:
            writer.add(rec.LOCATED.pack(e.id, pack, e.offset, e.stored_length))
    return bytes.fromhex(index_id), packs


# -- 3. plan ----------------------------------------------------------------------------------------------------


def plan(vault: Vault, run_id: str, partition: int) -> PlanResult:
    """Merge one partition's live and located runs: per pack its entry bytes, live bytes and live offsets (the
    partition's partials), and the live blobs found in more than one pack. Raises IntegrityError when a live blob
    is in no existing pack: prune refuses to run on a damaged vault."""
    staging, run = _open(vault, run_id)
    _check_results(staging, "mark", (f"{n:06d}" for n in range(run.mark_items)), f"prune {run_id}")
    pp = rec.partition_name(partition)
    stored = rec.SortedIds(staging.get_bytes(PACKS), rec.STORED_PACK.size)
    live = rec.merged((staging.get_bytes(n) for n in staging.names(f"live/{pp}/")), rec.ID)
    located = rec.merged((staging.get_bytes(n) for n in staging.names(f"located/{pp}/")), rec.LOCATED.size)
    packs: dict[bytes, rec.Partial] = {}
    dups: list[tuple[bytes, list[tuple[bytes, int, int]]]] = []
    counts = {"live": 0, "located": 0, "missing": 0}
    first_missing: list[bytes] = []

    def account(blob: bytes, group: list[tuple[bytes, int, int]], is_live: bool) -> None:
        counts["located"] += len(group)
        for pack, _, length in group:
            packs.setdefault(pack, rec.Partial(pack, 0, 0, [])).total += length
        if not is_live:
            return
        counts["live"] += 1
        if not group:
            counts["missing"] += 1
            if not first_missing:
                first_missing.append(blob)
        elif len(group) == 1:
            share = packs[group[0][0]]
            share.live += group[0][2]
            share.offsets.append(group[0][1])
        else:
            dups.append((blob, group))

    groups = (
        (blob, [(p, o, n) for _, p, o, n in records if p in stored])  # a listed pack that is gone is no location
        for blob, records in itertools.groupby((rec.LOCATED.unpack(r) for r in located), key=lambda r: r[0])
    )
    # A merge-join of two streams sorted by blob id: live ids, and each located blob's existing locations.
    next_live, next_group = next(live, None), next(groups, None)
    while next_live is not None or next_group is not None:
        if next_group is None or (next_live is not None and next_live < next_group[0]):
            assert next_live is not None  # the loop's condition: one stream has a next record
            account(next_live, [], True)
            next_live = next(live, None)
        elif next_live is None or next_group[0] < next_live:
            account(next_group[0], next_group[1], False)
            next_group = next(groups, None)
        else:
            account(next_live, next_group[1], True)
            next_live, next_group = next(live, None), next(groups, None)
    if counts["missing"]:
        raise IntegrityError(
            f"{vault.url}: {counts['missing']} blobs that recovery points need are in no existing pack "
            f"(first {first_missing[0].hex()}); prune refuses to run on a damaged vault: run check"
        )
    staging.put_bytes(f"partials/{pp}", rec.encode_partials(packs[p] for p in sorted(packs)))
    staging.put_bytes(f"dups/{pp}", rec.encode_dups(dups))
    result = PlanResult(partition=partition, live_blobs=counts["live"], located=counts["located"], duplicated=len(dups))
    staging.put_model(f"{_results('plan')}{pp}.json", result)
    return result


# -- 4. decide --------------------------------------------------------------------------------------------------


def _partitions(run: PruneRun) -> list[str]:
    return [rec.partition_name(p) for p in range(1 << run.bits)]


def _check_results(staging: rec.Staging, kind: str, expected: Iterable[str], what: str) -> None:
    present = staging.finished(_results(kind))
    missing = [name for name in expected if name not in present]
    if missing:
        raise IntegrityError(f"{what}: the {kind} results of {len(missing)} items {missing[:10]} are missing")


def _check_done(staging: rec.Staging, kind: str, model: type[SweepResult], items: int) -> list[str]:
    """The result names of a looping step, in item order; raises IntegrityError unless every item finished."""
    names = sorted(staging.names(_results(kind)))
    finished = set()
    for name in names:
        result = staging.get_model(name, model)
        if result.done:
            finished.add(result.number)
    missing = [n for n in range(items) if n not in finished]
    if missing:
        raise IntegrityError(f"prune {staging.run_id}: {kind} items {missing[:10]} did not finish")
    return names


def _partial_stream(staging: rec.Staging, run: PruneRun) -> Iterator[rec.Partial]:
    return rec.merged_partials(rec.decode_partials(staging.get_bytes(f"partials/{pp}")) for pp in _partitions(run))


def _claims(staging: rec.Staging, run: PruneRun) -> dict[bytes, tuple[int, list[int]]]:
    """Each duplicated live blob assigned to one of its packs, the one with the larger live share (counting every
    live blob it holds): live bytes and offsets added per pack."""
    dups = [d for pp in _partitions(run) for d in rec.decode_dups(staging.get_bytes(f"dups/{pp}"))]
    if not dups:
        return {}
    involved = {pack for _, locations in dups for pack, _, _ in locations}
    share: dict[bytes, float] = {}
    dup_bytes: dict[bytes, int] = {}
    for _, locations in dups:
        for pack, _, length in locations:
            dup_bytes[pack] = dup_bytes.get(pack, 0) + length
    for p in _partial_stream(staging, run):
        if p.pack in involved:
            share[p.pack] = (p.live + dup_bytes[p.pack]) / (p.total or 1)
    claims: dict[bytes, tuple[int, list[int]]] = {}
    for _, locations in dups:
        pack, offset, length = min(locations, key=lambda loc: (-share[loc[0]], loc[0]))
        live, offsets = claims.get(pack, (0, []))
        claims[pack] = (live + length, [*offsets, offset])
    return claims


class _SweepWriter:
    """Cuts the decided packs into sweep batches of at most SWEEP_PACKS packs and SWEEP_REPACK_BYTES copied."""

    def __init__(self, staging: rec.Staging) -> None:
        self.staging = staging
        self.items: list[SweepItem] = []
        self.batch = SweepBatch()
        self.copy = 0

    def add(self, kind: str, pack: str, size: int, offsets: list[int] | None = None, live: int = 0) -> None:
        if kind == "repack":
            self.batch.repack.append(RepackPack(pack=pack, offsets=sorted(offsets or [])))
            self.copy += live
        else:
            getattr(self.batch, kind).append(pack)
        self.batch.sizes[pack] = size
        if len(self.batch.sizes) >= SWEEP_PACKS or self.copy >= SWEEP_REPACK_BYTES:
            self.ship()

    def ship(self) -> None:
        if not self.batch.sizes:
            return
        name = f"batches/sweep/{len(self.items):06d}"
        self.staging.put_model(name, self.batch)
        self.items.append(SweepItem(number=len(self.items), batch=name))
        self.batch, self.copy = SweepBatch(), 0


def _stored_listing(staging: rec.Staging) -> Iterator[tuple[bytes, int]]:
    data = staging.get_bytes(PACKS)
    for at in range(0, len(data), rec.STORED_PACK.size):
        yield rec.STORED_PACK.unpack_from(data, at)


def decide(vault: Vault, run_id: str) -> tuple[Decision, list[SweepItem]]:
    """Classify every pack from the partitions' partials (raises IntegrityError when a mark or plan result is
    missing: nothing has been deleted), find the index objects to replace, stage the sweep batches."""
    staging, run = _open(vault, run_id)
    what = f"prune {run_id}"
    _check_results(staging, "mark", (f"{n:06d}" for n in range(run.mark_items)), what)
    _check_results(staging, "plan", _partitions(run), what)
    plans = [staging.get_model(f"{_results('plan')}{pp}.json", PlanResult) for pp in _partitions(run)]
    claims = _claims(staging, run)
    planned = PruneReport(
        dry_run=run.dry_run,
        recovery_points=run.recovery_points,
        live_blobs=sum(p.live_blobs for p in plans),
        packs_before=run.packs_before,
        bytes_before=run.bytes_before,
        stale_locks_removed=run.stale_locks_removed,
    )
    removed = bytearray()
    sweep = _SweepWriter(staging)
    partials = _partial_stream(staging, run)
    current = next(partials, None)
    for pack, size in _stored_listing(staging):
        while current is not None and current.pack < pack:
            current = next(partials, None)  # listed by an index, but not in storage: nothing to delete
        pack_id = pack.hex()
        if current is None or current.pack != pack:
            sweep.add("unindexed", pack_id, size)
            planned.unindexed_packs_deleted += 1
            planned.bytes_freed += size
            continue
        live, offsets = current.live, current.offsets
        if pack in claims:
            live, offsets = live + claims[pack][0], offsets + claims[pack][1]
        if live and live / (current.total or 1) >= run.repack_threshold:
            continue
        removed += pack
        planned.bytes_freed += size
        if live:
            sweep.add("repack", pack_id, size, offsets, live)
            planned.packs_repacked += 1
            planned.blobs_repacked += len(offsets)
            planned.bytes_repacked += live
        else:
            sweep.add("delete", pack_id, size)
            planned.packs_deleted += 1
    sweep.ship()
    removed_ids = rec.SortedIds(bytes(removed))
    staging.put_bytes(REMOVED, removed_ids.data)
    decision = _replaced_indexes(vault, staging, run, removed_ids)
    decision.sweep_items = len(sweep.items)
    decision.live_blobs = planned.live_blobs
    planned.packs_after = planned.packs_before - planned.packs_deleted - planned.packs_repacked
    planned.packs_after -= planned.unindexed_packs_deleted
    planned.bytes_after = planned.bytes_before - planned.bytes_freed
    planned.held = decision.held_indexes[:MAX_HELD_LISTED]
    planned.held_count = len(decision.held_indexes)
    planned.held_until = min((h.retain_until for h in decision.held_indexes if h.retain_until), default=None)
    decision.planned = planned
    staging.put_model(DECISION, decision)
    return decision, sweep.items


def _replaced_indexes(vault: Vault, staging: rec.Staging, run: PruneRun, removed: rec.SortedIds) -> Decision:
    """The index objects that list a removed pack: replaced, unless Object Lock holds them; then every removed pack
    they list is rescued (kept, and listed by the replacements of the other index objects naming it)."""
    candidates: dict[str, list[bytes]] = {}
    for name in sorted(staging.names("index-packs/")):
        for index_id, packs in rec.decode_index_packs(staging.get_bytes(name)):
            gone = [p for p in packs if p in removed]
            if gone:
                candidates[index_id.hex()] = gone
    decision = Decision()
    rescued: set[bytes] = set()
    for key, held in held_objects(vault, (index_key(i) for i in sorted(candidates)), run.now):
        if held is None:
            decision.replaced.append(key[len(INDEX_PREFIX) :])
        else:
            decision.held_indexes.append(held)
            rescued.update(candidates[key[len(INDEX_PREFIX) :]])
    decision.rescued = sorted(p.hex() for p in rescued)
    return decision


def held_objects(vault: Vault, keys: Iterable[str], now: datetime) -> Iterator[tuple[str, HeldObject | None]]:
    """Each key with what Object Lock holds of it (None: deletable), looked up a few at a time in parallel (one
    HEAD each): what forget and prune ask before they delete."""

    def held(key: str) -> tuple[str, HeldObject | None]:
        retention = vault.storage.retention(key)
        if retention is None or not retention.holds(now):
            return key, None
        return key, HeldObject(
            key=key, mode=retention.mode, retain_until=retention.retain_until, legal_hold=retention.legal_hold
        )

    with ThreadPoolExecutor(max_workers=RETENTION_LOOKUPS, thread_name_prefix="vl-retention") as pool:
        yield from pool.map(held, keys)


# -- 5. sweep ---------------------------------------------------------------------------------------------------


def sweep(
    vault: Vault, run_id: str, item: SweepItem, remaining_ms: Remaining | None = None, fault: Fault | None = None
) -> SweepResult:
    """Find what Object Lock holds of a batch's packs, repack the rest of its repacked packs into new packs and
    index them; record which packs Finish deletes. Re-running a part repeats its copies (harmless leftovers)."""
    staging, run = _open(vault, run_id)
    decision = staging.get_model(DECISION, Decision)
    rescued = set(decision.rescued)
    batch = staging.get_model(item.batch, SweepBatch)
    result = SweepResult(number=item.number, part=item.part, done=True)
    work = [(p.pack, "repack", p.offsets) for p in batch.repack]
    work += [(p, "delete", []) for p in batch.delete] + [(p, "unindexed", []) for p in batch.unindexed]
    work.sort()
    held = dict(held_objects(vault, (pack_key(p) for p, _, _ in work[item.start :]), run.now))
    writer = _Repacker(vault, result, fault)
    for position in range(item.start, len(work)):
        if position > item.start and _low(remaining_ms):
            result.done = False
            result.next = item.model_copy(update={"start": position, "part": item.part + 1})
            break
        pack_id, kind, offsets = work[position]
        hold = held[pack_key(pack_id)]
        if hold is not None:
            result.held.append(hold)
            continue
        if pack_id in rescued:
            continue  # a held index object lists it: it stays, and so listed
        if kind == "repack":
            writer.copy(pack_id, offsets)
            result.packs_repacked += 1
        elif kind == "delete":
            result.packs_deleted += 1
        else:
            result.unindexed_packs_deleted += 1
        result.deletes.append(pack_id)
        result.bytes_freed += batch.sizes[pack_id]
    writer.close()
    staging.put_model(f"{_results('sweep')}{_names(item.number, item.part)}.json", result)
    return result


class _Repacker:
    """Copies live blobs verbatim into new packs; indexes them once they are all uploaded."""

    def __init__(self, vault: Vault, result: SweepResult, fault: Fault | None) -> None:
        self.vault, self.result, self.fault = vault, result, fault
        self.builder = PackBuilder()
        self.written: list[tuple[str, list[BlobEntry]]] = []

    def copy(self, pack_id: str, offsets: list[int]) -> None:
        what = f"{self.vault.url}: {pack_key(pack_id)}"
        data = self.vault.storage.get(pack_key(pack_id))
        intact = blake3.blake3(data).hexdigest() == pack_id
        wanted = set(offsets)
        for entry in read_pack_entries(data, self.vault.cipher, what):
            if entry.offset not in wanted:
                continue
            stored = data[entry.offset : entry.offset + entry.stored_length]
            if not intact:
                # The pack is damaged somewhere; copy a blob only after proving it decodes to its id.
                self.vault.decode_blob(stored, entry, pack_id)
            self.builder.add(SealedBlob(entry.id, entry.type, entry.compression, entry.raw_length, stored))
            self.result.blobs_repacked += 1
            self.result.bytes_repacked += entry.stored_length
            if self.builder.size >= self.vault.config.pack_size:
                self.ship()

    def ship(self) -> None:
        pack_id, data = self.builder.finish(self.vault.cipher)
        self.vault.storage.create(pack_key(pack_id), data)  # content-addressed: never an overwrite
        self.written.append((pack_id, self.builder.entries))
        self.result.new_packs.append(pack_id)
        self.result.packs_written += 1
        self.result.bytes_written += len(data)
        self.builder = PackBuilder()
        if self.fault:
            self.fault("pack-written")

    def close(self) -> None:
        if len(self.builder):
            self.ship()
        for start_at in range(0, len(self.written), PACKS_PER_INDEX):
            self.vault.write_index(self.written[start_at : start_at + PACKS_PER_INDEX])
            self.result.index_objects_written += 1
            if self.fault:
                self.fault("index-written")


# -- 6. finish --------------------------------------------------------------------------------------------------


def finish(
    vault: Vault,
    run_id: str,
    cursor: FinishCursor | None = None,
    remaining_ms: Remaining | None = None,
    fault: Fault | None = None,
) -> FinishResult:
    """Write the replacements of the replaced index objects, delete those, delete the removed packs; then release
    the lock and clean the staging. Each phase goes on from ``cursor`` (a re-run repeats harmless requests); a
    re-run after it completed returns the completed run's report and touches nothing."""
    finished = rec.Staging(vault, run_id)
    if finished.exists(FINISHED):
        return FinishResult(done=True, report=finished.get_model(FINISHED, PruneReport))
    staging, run = _open(vault, run_id)
    cursor = cursor or FinishCursor()
    decision = staging.get_model(DECISION, Decision)
    names = _check_done(staging, "sweep", SweepResult, decision.sweep_items)
    results = [staging.get_model(name, SweepResult) for name in names]
    kept = {h.key for r in results for h in r.held} | {pack_key(p) for p in decision.rescued}
    removed = rec.SortedIds(staging.get_bytes(REMOVED))
    # Before any index object or pack goes, retire the index generations that name them: a catalog must never
    # outlive what it locates (docs/vault-format.md 9.5). Idempotent, so a looping Finish repeats it harmlessly.
    vault.invalidate_catalog(keep_current=not (decision.replaced or any(r.deletes for r in results)))
    written = 0
    if cursor.phase == "index":
        position = cursor.position
        seen: set[str] = set()
        listing: list[tuple[str, list[BlobEntry]]] = []

        def flush() -> None:
            nonlocal listing, written
            if listing:
                vault.write_index(listing)
                written += 1
                listing = []
                if fault:
                    fault("index-written")

        for position in range(cursor.position, len(decision.replaced)):
            if position > cursor.position and _low(remaining_ms):
                flush()
                return _continue(staging, FinishCursor(phase="index", position=position), written)
            index_id = decision.replaced[position]
            stored = vault.storage.get(index_key(index_id))
            for pack_id, entries in decode_index(stored, vault.cipher, f"{vault.url}: {index_key(index_id)}"):
                survives = bytes.fromhex(pack_id) not in removed or pack_key(pack_id) in kept
                if survives and pack_id not in seen:
                    seen.add(pack_id)
                    listing.append((pack_id, entries))
                    if len(listing) >= PACKS_PER_INDEX:
                        flush()
        flush()
        cursor = FinishCursor(phase="drop-index")
    deleted_indexes = 0
    if cursor.phase == "drop-index":
        keys = [index_key(i) for i in decision.replaced]
        for position in range(cursor.position, len(keys), DELETE_BATCH):
            if position > cursor.position and _low(remaining_ms):
                return _continue(staging, FinishCursor(phase="drop-index", position=position), written)
            vault.storage.delete_many(keys[position : position + DELETE_BATCH])
            deleted_indexes += len(keys[position : position + DELETE_BATCH])
            if fault:
                fault("index-deleted")
        cursor = FinishCursor(phase="drop-packs")
    # A repack can rebuild, byte for byte, a pack that a crashed prune uploaded and that this one found unindexed
    # (in mode none packs are deterministic): that name is the new pack now and must not be deleted.
    rebuilt = {p for r in results for p in r.new_packs}
    for position in range(cursor.position, len(results)):
        if position > cursor.position and _low(remaining_ms):
            return _continue(staging, FinishCursor(phase="drop-packs", position=position), written)
        doomed = [pack_key(p) for p in results[position].deletes if p not in rebuilt]
        if doomed:
            vault.storage.delete_many(doomed)
            if fault:
                fault("pack-deleted")
    report = _report(staging, run, decision, results)
    report.index_objects_written += written
    # Recorded before the lock goes: from here on a re-run only reads it back.
    staging.put_model(FINISHED, report)
    locks.release(vault.storage, run.lock_id)
    staging.clean(keep=(FINISHED,))
    vault.forget_index()  # what changed is read afresh on next use; Finish itself never needs the whole index
    return FinishResult(done=True, report=report)


def _continue(staging: rec.Staging, cursor: FinishCursor, written: int) -> FinishResult:
    if written:
        name = f"{_results('finish')}{cursor.phase}-{cursor.position:08d}.json"
        staging.put_model(name, FinishWritten(index_objects_written=written))
    return FinishResult(done=False, next=cursor)


class FinishWritten(VaultlineModel):
    """The index objects one part of Finish wrote (for the report of a Finish that looped)."""

    index_objects_written: int


def _report(staging: rec.Staging, run: PruneRun, decision: Decision, results: list[SweepResult]) -> PruneReport:
    report = PruneReport(
        recovery_points=run.recovery_points,
        live_blobs=decision.live_blobs,
        packs_before=run.packs_before,
        bytes_before=run.bytes_before,
        stale_locks_removed=run.stale_locks_removed,
        index_objects_deleted=len(decision.replaced),
    )
    held = list(decision.held_indexes)
    for r in results:
        for name in (
            "packs_deleted",
            "packs_repacked",
            "unindexed_packs_deleted",
            "blobs_repacked",
            "bytes_repacked",
            "bytes_freed",
            "packs_written",
            "bytes_written",
            "index_objects_written",
        ):
            setattr(report, name, getattr(report, name) + getattr(r, name))
        held += r.held[: max(0, MAX_HELD_LISTED - len(held))]
        report.held_count += len(r.held)
    for name in staging.names(_results("finish")):
        report.index_objects_written += staging.get_model(name, FinishWritten).index_objects_written
    report.held_count += len(decision.held_indexes)
    report.held = held[:MAX_HELD_LISTED]
    dates = [h.retain_until for r in results for h in r.held] + [h.retain_until for h in decision.held_indexes]
    report.held_until = min((d for d in dates if d is not None), default=None)
    rebuilt = {p for r in results for p in r.new_packs} & {p for r in results for p in r.deletes}
    gone = report.packs_deleted + report.packs_repacked + report.unindexed_packs_deleted - len(rebuilt)
    report.packs_after = run.packs_before + report.packs_written - len(rebuilt) - gone
    report.bytes_after = report.bytes_before - report.bytes_freed + report.bytes_written
    return report


# -- the staged run in one process ------------------------------------------------------------------------------


def abort(vault: Vault, run_id: str) -> int:
    """End a failed run: release its lock, delete its staging; return how many staging objects were deleted."""
    staging = rec.Staging(vault, run_id)
    with contextlib.suppress(VaultlineError, ValueError):
        locks.release(vault.storage, staging.get_model(RUN, PruneRun).lock_id)
    return staging.clean()


def _keep_fresh(vault: Vault, run: PruneRun, done: threading.Event) -> None:
    """Refresh the run's lock while the CLI runs its steps (one step may outlast the lock's staleness)."""
    held = locks.Lock(id=run.lock_id, info=locks.LockInfo.model_validate_json(vault.storage.get(lock_key(run.lock_id))))
    while not done.wait(locks.REFRESH_EVERY.total_seconds()):
        with contextlib.suppress(VaultlineError):
            held = locks.refresh(vault.storage, held)


def prune(
    vault: Vault,
    options: PruneOptions | None = None,
    now: datetime | None = None,
    fault: Fault | None = None,
    remaining_ms: Remaining | None = None,
) -> PruneReport:
    """Run every step of a prune in this process, items one after another (each item looping on its cursor while
    ``remaining_ms`` says its time is low, as the state machine loops it); a failure releases the lock and
    cleans the staging before it propagates."""
    options = options or PruneOptions()
    clock = time.monotonic()
    run, mark_items = start(vault, options, now, owner=f"{socket.gethostname()}:{os.getpid()}")
    done = threading.Event()
    refresher = threading.Thread(target=_keep_fresh, args=(vault, run, done), name="vl-prune-lock", daemon=True)
    refresher.start()
    try:
        report = _run_steps(vault, run, mark_items, remaining_ms, fault)
    except BaseException:
        done.set()
        refresher.join()
        abort(vault, run.run_id)
        raise
    done.set()
    refresher.join()
    report.seconds = round(time.monotonic() - clock, 3)
    return report


def _run_steps(
    vault: Vault, run: PruneRun, mark_items: list[MarkItem], remaining_ms: Remaining | None, fault: Fault | None
) -> PruneReport:
    for item in mark_items:
        next_item: MarkItem | None = item
        while next_item is not None:
            next_item = mark(vault, run.run_id, next_item, remaining_ms).next
    for partition in range(1 << run.bits):
        plan(vault, run.run_id, partition)
    decision, sweep_items = decide(vault, run.run_id)
    if run.dry_run:
        abort(vault, run.run_id)
        return decision.planned
    for sweep_item in sweep_items:
        next_sweep: SweepItem | None = sweep_item
        while next_sweep is not None:
            next_sweep = sweep(vault, run.run_id, next_sweep, remaining_ms, fault).next
    cursor: FinishCursor | None = None
    while True:
        finished = finish(vault, run.run_id, cursor, remaining_ms, fault)
        if finished.report is not None:
            return finished.report
        cursor = finished.next


__all__ = [
    "DEFAULT_REPACK_THRESHOLD",
    "Decision",
    "FinishCursor",
    "FinishResult",
    "HeldObject",
    "MarkItem",
    "MarkResult",
    "PlanResult",
    "PruneOptions",
    "PruneReport",
    "PruneRun",
    "SweepItem",
    "SweepResult",
    "abort",
    "decide",
    "finish",
    "held_objects",
    "mark",
    "plan",
    "prune",
    "start",
    "sweep",
]
