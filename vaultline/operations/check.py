"""Verifying a vault: structure (every referenced blob is indexed and its pack exists) and, with read-data,
every blob of every pack (decrypts, decompresses, hashes to its id; every pack hashes to its name).

A check is cut in three pieces that the CLI runs in one process and the Maintenance state machine runs as a
Distributed Map (vaultline/runs/verify_steps.py):

- :class:`CheckPlan` reads the index objects once, one at a time, beside the listing of ``data/`` (held as 40 bytes
  a pack: ``marks.walk_indexed_packs``), notes indexed packs that are missing and stored packs that are not
  indexed, and cuts the packs to read into :class:`PackBatch` es bounded by count, bytes and blobs; then it streams
  the recovery point ids into :class:`PointBatch` es.
- :func:`verify_packs` reads one pack batch; :func:`check_points` streams the entries of one batch of recovery
  points, marks their chunk ids into sorted partitions and locates those in one pass over the index's shards (the
  pieces prune marks with: vaultline/operations/marks.py); both stop when their time budget runs low and say where
  to go on (:class:`CheckCursor`).
- :class:`Findings` adds them up: counts complete, messages capped.

Ceilings (what still grows with the vault in one process): the packs listing the plan holds (40 bytes and a bit a
pack) and its one pass over every index object; what the index lookup of a recovery points item holds (a compacted
vault's filter, 2 bytes a blob, and its recent index objects; the whole index, 34 bytes a blob, only in a vault
never compacted) and one partition of its marks (1/256 of its distinct chunk ids; the rest spilled to staging); the
indexed-but-missing packs and the ids they lose (the size of the damage, not of the data); and one pack (16 MiB) or
one recovery point's entry at a time per reader.
"""

from __future__ import annotations

import math
import os
import random
import struct
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal

import blake3
from pydantic import ConfigDict, Field, ValidationError, model_validator

from vaultline.errors import UsageError, VaultlineError
from vaultline.model import VaultlineModel
from vaultline.operations import prune_records as rec
from vaultline.operations.marks import (
    MARK_BITS,
    IndexWalk,
    RunWriter,
    StoredPacks,
    enumerate_partitions,
    scratch_staging,
    walk_indexed_packs,
)
from vaultline.repository.compact_index import KEY_SIZE
from vaultline.repository.layout import MANIFEST_PREFIX, pack_key
from vaultline.repository.locks import vault_lock
from vaultline.repository.manifest import (
    ObjectEntry,
    RecoveryPoint,
    is_recovery_point_id,
    iter_entries,
    load_recovery_point,
)
from vaultline.repository.packs import BlobEntry, read_pack_entries
from vaultline.repository.sharded_index import SortedLocator
from vaultline.repository.vault import Vault

# One work item's packs: 64 packs of 16 MiB read in about a minute on one vCPU, far inside a 15-minute Lambda (the
# time budget still stops an item early); bytes and blobs bound batches of larger packs or of many tiny blobs (each
# blob's key rides in the batch document).
PACKS_PER_ITEM = 64
BYTES_PER_ITEM = 1 << 30
BLOBS_PER_ITEM = 100_000
# One work item's recovery points: each item loads the index once, so a few dozen share that cost.
POINTS_PER_ITEM = 32
# Errors and warnings named by one item and by a Maintenance run (a state payload is limited to 256 KiB); the CLI
# names more. Counts are always complete.
LISTED = 50
CLI_LISTED = 1000
PACK_READERS = 4  # packs read and verified at once by one item (16 MiB each)
# What a recovery points item locates between asking for more time, a few seconds' work each: ids, or shards
# fetched (about 1 MiB each).
LOCATED_PER_ASK = 1 << 20
FETCHES_PER_ASK = 32


class Findings(VaultlineModel):
    """What a check (or a piece of one) found and read: counts complete, the first ``LISTED`` messages named."""

    recovery_points: int = 0
    objects: int = 0
    packs_read: int = 0
    bytes_read: int = 0
    blobs_read: int = 0
    errors: list[str] = Field(default_factory=list)
    error_count: int = 0
    warnings: list[str] = Field(default_factory=list)
    warning_count: int = 0

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def error(self, message: str, listed: int = LISTED) -> None:
        self.error_count += 1
        if len(self.errors) < listed:
            self.errors.append(message)

    def warn(self, message: str, listed: int = LISTED) -> None:
        self.warning_count += 1
        if len(self.warnings) < listed:
            self.warnings.append(message)

    def add(self, other: Findings, listed: int = LISTED) -> None:
        """Add ``other``'s counts and as many of its messages as fit in ``listed``."""
        for name in ("recovery_points", "objects", "packs_read", "bytes_read", "blobs_read"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors += other.errors[: max(0, listed - len(self.errors))]
        self.warnings += other.warnings[: max(0, listed - len(self.warnings))]
        self.error_count += other.error_count
        self.warning_count += other.warning_count


class CheckReport(Findings):
    """What `check` found (``ok`` when no error was found), and the size of the index it checked against."""

    packs: int = 0
    blobs: int = 0


SUBSET_EXPECTED = "expected n/m (1 <= n <= m, e.g. 2/7) or a percentage (e.g. 10%)"


class PackSubset(VaultlineModel):
    """The packs a read-data check reads: part ``part`` of ``parts`` (``n/m``), or a random ``share`` (``P%``).

    One parsed form for the CLI's ``--read-data-subset``, the Maintenance input's ``verify.subset`` and
    :func:`check_vault`; it parses from its text (``PackSubset.parse("2/7")``, or a string where a model is
    validated) and prints as it (``str(subset) == "2/7"``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    part: int = Field(default=1, ge=1)
    parts: int = Field(default=1, ge=1)
    share: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        try:
            if text.endswith("%"):
                share = float(text[:-1]) / 100
                if 0 < share <= 1:
                    return {"share": share}
            else:
                n_text, sep, m_text = text.partition("/")
                n, m = int(n_text), int(m_text)
                if sep and 1 <= n <= m:
                    return {"part": n, "parts": m}
        except ValueError:
            pass
        raise ValueError(f"{value!r}: {SUBSET_EXPECTED}")

    @model_validator(mode="after")
    def _part_of_parts(self) -> PackSubset:
        if self.part > self.parts:
            raise ValueError(f"part {self.part} of {self.parts}: {SUBSET_EXPECTED}")
        return self

    @classmethod
    def parse(cls, spec: str) -> PackSubset:
        """``n/m`` or ``P%`` as a subset; raises UsageError (naming ``--read-data-subset``) otherwise."""
        try:
            return cls.model_validate(spec)
        except ValidationError:
            raise UsageError(f"--read-data-subset {spec!r}: {SUBSET_EXPECTED}") from None

    @classmethod
    def rotating(cls, parts: int, run: int | None = None, now: datetime | None = None) -> PackSubset:
        """Part ``run % parts + 1`` of ``parts`` (``run`` defaults to the day number): ``parts`` consecutive runs
        read every pack once."""
        counter = run if run is not None else (now or datetime.now()).toordinal()
        return cls(part=counter % parts + 1, parts=parts)

    def __str__(self) -> str:
        return f"{self.part}/{self.parts}" if self.share is None else f"{self.share * 100:g}%"

    def picks(self, pack_id: str, salt: bytes) -> bool:
        """Whether a streaming check reads ``pack_id``: ``n/m`` as :meth:`select`; ``P%`` reads each pack with
        probability P, drawn from a keyed hash of its id (``salt`` is one run's random key), so a plan that walks
        millions of packs holds none of them. (The plan adds one pack when none was drawn.)"""
        if self.share is None:
            return int(pack_id, 16) % self.parts == self.part - 1
        return _draw(pack_id, salt) < self.share

    def select(self, pack_ids: list[str], rng: random.Random | None = None) -> list[str]:
        """The packs this subset reads. ``n/m`` takes the packs whose id, read as a number, is ``n - 1`` modulo
        ``m``: ids are hashes, so the parts are even, stable across runs, and ``1/m`` .. ``m/m`` together read
        every pack once. ``P%`` samples that share of packs at random (at least one)."""
        if self.share is None:
            return [p for p in pack_ids if int(p, 16) % self.parts == self.part - 1]
        count = min(len(pack_ids), max(1, math.ceil(len(pack_ids) * self.share)))
        return sorted((rng or random.SystemRandom()).sample(sorted(pack_ids), count)) if pack_ids else []


def _draw(pack_id: str, salt: bytes) -> float:
    """A pack's uniform draw in [0, 1) for one run."""
    return int.from_bytes(blake3.blake3(bytes.fromhex(pack_id), key=salt).digest(8), "big") / 2**64


# -- the work -----------------------------------------------------------------------------------------------------


class PackToRead(VaultlineModel):
    """One pack a read-data item reads, and what the index says it holds (so the item needs no index)."""

    id: str
    size: int
    keys: str = Field(description="the index's 16-byte blob keys of this pack, hex, concatenated in pack order")


class PackBatch(VaultlineModel):
    """The packs of one read-data work item."""

    kind: Literal["packs"] = "packs"
    packs: list[PackToRead]


class PointBatch(VaultlineModel):
    """The recovery points of one structure work item."""

    kind: Literal["recovery_points"] = "recovery_points"
    recovery_points: list[str]


CheckBatch = PackBatch | PointBatch


class CheckCursor(VaultlineModel):
    """Where an item goes on when its time budget ran out: the next pack, or the phase of a recovery points item
    (its next recovery point and how many of its entries are done, or its next partition); with what it found
    so far."""

    done: bool = False
    phase: Literal["mark", "join", "name"] = Field(
        default="mark", description="of a recovery points item: marking chunk ids, locating them, naming damage"
    )
    position: int = 0
    entries_done: int = 0
    runs: int = Field(default=0, description="the runs of marked ids a recovery points item spilled so far")
    partition: int = Field(default=0, description="the next partition a recovery points item locates")
    findings: Findings = Field(default_factory=Findings)


class CheckPlan:
    """The plan of one check: iterate :meth:`batches` once; afterwards :attr:`findings` holds what the pack walk
    found, :attr:`missing` the indexed packs missing from storage, :attr:`packs` and :attr:`blobs` the index's
    size."""

    def __init__(
        self,
        vault: Vault,
        read_data: bool = False,
        subset: PackSubset | None = None,
        listed: int = LISTED,
        salt: bytes | None = None,
    ) -> None:
        self.vault = vault
        self.reading = read_data or subset is not None
        self.subset = None if read_data else subset
        self.listed = listed
        self.salt = salt or os.urandom(32)
        self.findings = Findings()
        self.missing: set[str] = set()
        self.packs = 0
        self.blobs = 0

    def batches(self) -> Iterator[CheckBatch]:
        """Pack batches (with read-data), then recovery point batches, cut as the listings stream by."""
        try:
            yield from self._pack_batches()
        except VaultlineError as exc:
            self.findings.error(str(exc), self.listed)
            return
        yield from self._point_batches()

    def _pack_batches(self) -> Iterator[PackBatch]:
        """One pass over the index objects beside the listing of ``data/`` (marks.walk_indexed_packs): indexed
        packs missing from storage are errors, stored packs no index lists are warnings; the packs to read are
        batched as the walk reaches them."""
        walk = IndexWalk(StoredPacks.list(self.vault.storage))
        batch: list[PackToRead] = []
        size = blobs = 0
        fallback: tuple[float, PackToRead] | None = None  # P%: the pack with the smallest draw, if none is drawn
        picked = False
        for pack_id, entries, stored in walk_indexed_packs(self.vault, walk):
            if not self.reading:
                continue
            if self.subset is not None and not self.subset.picks(pack_id, self.salt):
                if self.subset.share is not None:
                    draw = _draw(pack_id, self.salt)
                    if fallback is None or draw < fallback[0]:
                        fallback = (draw, _to_read(pack_id, stored, entries))
                continue
            picked = True
            if batch and (
                len(batch) >= PACKS_PER_ITEM or size + stored > BYTES_PER_ITEM or blobs + len(entries) > BLOBS_PER_ITEM
            ):
                yield PackBatch(packs=batch)
                batch, size, blobs = [], 0, 0
            batch.append(_to_read(pack_id, stored, entries))
            size, blobs = size + stored, blobs + len(entries)
        if not picked and fallback is not None:
            batch.append(fallback[1])
        if batch:
            yield PackBatch(packs=batch)
        self.missing, self.packs, self.blobs = walk.missing, walk.packs, walk.entries
        for pack_id in sorted(walk.missing):
            self.findings.error(f"pack {pack_id} is indexed but missing from storage", self.listed)
        for pack_id, _ in walk.stored.unindexed():
            self.findings.warn(
                f"pack {pack_id} is not indexed (left by an interrupted backup; prune removes it)", self.listed
            )

    def _point_batches(self) -> Iterator[PointBatch]:
        batch: list[str] = []
        for obj in self.vault.storage.list(MANIFEST_PREFIX):
            rp_id = obj.key[len(MANIFEST_PREFIX) :]
            if not is_recovery_point_id(rp_id):
                continue
            batch.append(rp_id)
            if len(batch) >= POINTS_PER_ITEM:
                yield PointBatch(recovery_points=batch)
                batch = []
        if batch:
            yield PointBatch(recovery_points=batch)


def _to_read(pack_id: str, size: int, entries: list[BlobEntry]) -> PackToRead:
    return PackToRead(id=pack_id, size=size, keys="".join(e.id[:KEY_SIZE].hex() for e in entries))


Budget = Callable[[], bool]  # true while an item may start more work


def _verify_pack(vault: Vault, pack: PackToRead) -> tuple[int, int, list[str]]:
    """(bytes read, blobs read, problems) of one pack: hashes to its name, its header parses and agrees with the
    index's keys, every blob decrypts, decompresses and hashes to its id."""
    what = f"pack {pack.id}"
    try:
        data = vault.storage.get(pack_key(pack.id))
    except VaultlineError as exc:
        return 0, 0, [str(exc)]
    problems: list[str] = []
    if blake3.blake3(data).hexdigest() != pack.id:
        problems.append(f"{what}: content does not hash to its name (corrupt or tampered)")
    try:
        entries = read_pack_entries(data, vault.cipher, what)
    except VaultlineError as exc:
        return len(data), 0, [*problems, str(exc)]
    # The index holds 16-byte keys (section 9.3): compare those.
    step = 2 * KEY_SIZE
    indexed = {pack.keys[at : at + step] for at in range(0, len(pack.keys), step)}
    if indexed != {e.id[:KEY_SIZE].hex() for e in entries}:
        problems.append(f"{what}: header and index disagree on its blobs")
    view = memoryview(data)
    for entry in entries:
        try:
            vault.decode_blob(bytes(view[entry.offset : entry.offset + entry.stored_length]), entry, pack.id)
        except VaultlineError as exc:
            problems.append(str(exc))
    return len(data), len(entries), problems


def verify_packs(
    vault: Vault,
    batch: PackBatch,
    cursor: CheckCursor | None = None,
    more: Budget | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CheckCursor:
    """Read and verify the packs of ``batch`` from ``cursor`` on, ``PACK_READERS`` at a time, adding to the
    cursor's findings; return them ``done``, or the cursor to go on from once ``more()`` turned false. Reading a
    pack again is harmless: a check writes nothing to the vault."""
    cursor = cursor or CheckCursor()
    findings = cursor.findings
    packs = batch.packs
    position = cursor.position
    with ThreadPoolExecutor(max_workers=PACK_READERS, thread_name_prefix="vl-check") as pool:
        window: list[Future[tuple[int, int, list[str]]]] = []
        next_up = position
        while position < len(packs):
            # The first pack is always started: an invocation that ran out of time still makes progress.
            while (
                next_up < len(packs)
                and len(window) < PACK_READERS
                and (next_up == cursor.position or more is None or more())
            ):
                window.append(pool.submit(_verify_pack, vault, packs[next_up]))
                next_up += 1
            if not window:
                return CheckCursor(position=position, findings=findings)
            size, blobs, problems = window.pop(0).result()
            findings.packs_read += 1
            findings.bytes_read += size
            findings.blobs_read += blobs
            for problem in problems:
                findings.error(problem)
            if progress:
                progress(1, size)
            position += 1
    return CheckCursor(done=True, position=position, findings=findings)


def check_points(
    vault: Vault,
    batch: PointBatch,
    missing_packs: Collection[str],
    staging: rec.Staging,
    cursor: CheckCursor | None = None,
    more: Budget | None = None,
) -> CheckCursor:
    """Check that every blob the recovery points of ``batch`` reference (their manifest's blobs, each entry's
    chunks) is indexed and that its pack is not among ``missing_packs``; return the findings ``done``, or the
    cursor to go on from once ``more()`` turned false (asked every 256 entries and between partitions).

    Never holds the index: the entries are streamed and their chunk ids marked into sorted partitions (spilled to
    ``staging`` past ``marks.FLUSH_RECORDS``), the partitions are located in key order in one pass over the
    index's shards (``sharded_index.SortedLocator``), and only if that finds damage are the entries streamed again
    to name the recovery points and objects it hits (the damaged ids, the size of the damage, are then held)."""
    cursor = cursor or CheckCursor()
    writer = RunWriter(staging, POINT_MARKS, MARK_BITS, "run", seq=cursor.runs)
    if cursor.phase == "mark":
        stopped = _mark_points(vault, batch, writer, cursor, more)
        if stopped is not None:
            writer.flush()
            return stopped.model_copy(update={"runs": writer.seq})
        cursor = cursor.model_copy(update={"phase": "join", "position": 0, "entries_done": 0, "partition": 0})
    if cursor.phase == "join":
        missing = set(missing_packs)
        locator = SortedLocator(vault.lookup)
        # The shards fetched and the ids located are the join's time: the budget is asked once either added a
        # few seconds' worth since it was last asked (a small item's join never loops).
        asked = (0, 0)
        for partition, ids in enumerate_partitions(writer, cursor.partition):
            if partition > cursor.partition and (
                locator.fetches >= asked[0] + FETCHES_PER_ASK or locator.located >= asked[1] + LOCATED_PER_ASK
            ):
                asked = (locator.fetches, locator.located)
                if more is not None and not more():
                    writer.flush()
                    return cursor.model_copy(update={"partition": partition, "runs": writer.seq})
            damaged = b"".join(_damaged(locator, ids, missing))
            if damaged:
                staging.put_bytes(f"{DAMAGED}/{rec.partition_name(partition)}", damaged)
        if not staging.names(f"{DAMAGED}/"):
            return cursor.model_copy(update={"done": True, "position": len(batch.recovery_points)})
        cursor = cursor.model_copy(update={"phase": "name", "position": 0, "entries_done": 0, "runs": writer.seq})
    return _name_damage(vault, batch, _load_damage(staging), cursor, more)


POINT_MARKS = "marks"  # the chunk ids a points item marked, under its staging
DAMAGED = "damaged"  # the marked ids that are in no index or only in a missing pack, per partition
DAMAGE = struct.Struct(">32s32s")  # blob id, the missing pack it is located in (zeros: in no index)
NOT_INDEXED = bytes(32)


def _entries(vault: Vault, rp: RecoveryPoint, skip: int) -> Iterator[tuple[int, ObjectEntry]]:
    """``rp``'s entries from number ``skip`` on, with their numbers (a looping item skips what it checked)."""
    for number, entry in enumerate(iter_entries(vault, rp)):
        if number >= skip:
            yield number, entry


def _mark_points(
    vault: Vault, batch: PointBatch, writer: RunWriter, cursor: CheckCursor, more: Budget | None
) -> CheckCursor | None:
    """Mark the chunk ids of the batch's entries from the cursor on (counting recovery points and objects, and
    reporting what cannot be read); the cursor to go on from if ``more()`` turned false, else None."""
    findings = cursor.findings
    lookup = vault.lookup
    for position in range(cursor.position, len(batch.recovery_points)):
        rp_id = batch.recovery_points[position]
        skip = cursor.entries_done if position == cursor.position else 0
        if not skip:
            findings.recovery_points += 1
        try:
            rp = load_recovery_point(vault, rp_id)
            absent = [b for b in rp.entry_blobs if bytes.fromhex(b) not in lookup]
            if absent:
                findings.error(f"recovery point {rp_id}: {len(absent)} manifest blobs are missing")
                continue
            for number, entry in _entries(vault, rp, skip):
                if number % 256 == 0 and number > skip and more is not None and not more():
                    return cursor.model_copy(update={"position": position, "entries_done": number})
                findings.objects += 1
                for chunk in entry.chunks:
                    writer.add(bytes.fromhex(chunk))
                if writer.full():
                    writer.flush()
        except VaultlineError as exc:
            findings.error(f"recovery point {rp_id}: {exc}")
        if more is not None and position + 1 < len(batch.recovery_points) and not more():
            return cursor.model_copy(update={"position": position + 1, "entries_done": 0})
    return None


def _damaged(locator: SortedLocator, ids: Iterator[bytes], missing: Collection[str]) -> Iterator[bytes]:
    """``DAMAGE`` records of the ids (in increasing order) in no index, or located in a missing pack."""
    if not missing:  # the common case: whether an id is indexed is all there is to know
        for blob in ids:
            if blob not in locator:
                yield DAMAGE.pack(blob, NOT_INDEXED)
        return
    for blob in ids:
        location = locator.get(blob)
        if location is None:
            yield DAMAGE.pack(blob, NOT_INDEXED)
        elif location.pack_id in missing:
            yield DAMAGE.pack(blob, bytes.fromhex(location.pack_id))


def _load_damage(staging: rec.Staging) -> dict[bytes, bytes]:
    damage: dict[bytes, bytes] = {}
    for name in staging.names(f"{DAMAGED}/"):
        for blob, pack in DAMAGE.iter_unpack(staging.get_bytes(name)):
            damage[blob] = pack
    return damage


def _name_damage(
    vault: Vault, batch: PointBatch, damage: dict[bytes, bytes], cursor: CheckCursor, more: Budget | None
) -> CheckCursor:
    """Stream the batch's entries again and report each whose chunks the join found damaged: in no index, or
    only in a missing pack. What could not be read was reported by the mark already."""
    findings = cursor.findings
    for position in range(cursor.position, len(batch.recovery_points)):
        rp_id = batch.recovery_points[position]
        skip = cursor.entries_done if position == cursor.position else 0
        try:
            rp = load_recovery_point(vault, rp_id)
            if any(bytes.fromhex(b) not in vault.lookup for b in rp.entry_blobs):
                continue
            for number, entry in _entries(vault, rp, skip):
                if number % 256 == 0 and number > skip and more is not None and not more():
                    return cursor.model_copy(update={"position": position, "entries_done": number})
                _report_entry(rp_id, entry, damage, findings)
        except VaultlineError:
            pass  # reported by the mark
        if more is not None and position + 1 < len(batch.recovery_points) and not more():
            return cursor.model_copy(update={"position": position + 1, "entries_done": 0})
    return cursor.model_copy(update={"done": True, "position": len(batch.recovery_points)})


def _report_entry(rp_id: str, entry: ObjectEntry, damage: dict[bytes, bytes], findings: Findings) -> None:
    hits = [(c, damage[blob]) for c in entry.chunks if (blob := bytes.fromhex(c)) in damage]
    if not hits:
        return
    absent = [c for c, pack in hits if pack == NOT_INDEXED]
    if absent:
        findings.error(f"recovery point {rp_id}: {entry.key}: {len(absent)} chunks are missing (first {absent[0]})")
        return
    findings.error(f"recovery point {rp_id}: {entry.key}: pack {min(pack for _, pack in hits).hex()} is missing")


def check_vault(
    vault: Vault,
    read_data: bool = False,
    progress: Callable[[int, int], None] | None = None,
    read_data_subset: PackSubset | None = None,
    listed: int = CLI_LISTED,
) -> CheckReport:
    """Check ``vault`` in this process with the pieces the Maintenance workflow fans out (the plan, then each
    batch in turn): every problem is counted rather than stopping at the first, the first ``listed`` named.
    ``read_data_subset`` reads only that part of the packs (see :meth:`PackSubset.picks`). Memory holds one
    batch, the packs listing and what the vault's index lookup holds (module docstring), never the whole index of
    a compacted vault; marked ids spill to a scratch directory, so a read-only copy of a vault can be checked.

    Holds the vault's shared lock throughout (raises ``VaultLocked`` while a prune holds the exclusive one): a
    prune must not delete packs under a check that would then report them missing."""
    with vault_lock(vault.storage, "check", exclusive=False), scratch_staging(vault, "check") as scratch:
        plan = CheckPlan(vault, read_data, read_data_subset, listed=listed)
        found = Findings()
        for number, batch in enumerate(plan.batches()):
            if isinstance(batch, PackBatch):
                found.add(verify_packs(vault, batch, progress=progress).findings, listed)
            else:
                staging = scratch.within(f"{number:06d}")
                found.add(check_points(vault, batch, plan.missing, staging).findings, listed)
                staging.clean()
    report = CheckReport(packs=plan.packs, blobs=plan.blobs)
    report.add(plan.findings, listed)
    report.add(found, listed)
    return report
