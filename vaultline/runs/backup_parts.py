"""How an S3 backup's Prepare cuts its listing into parts as the listing streams by.

The listing, joined with the parent's entries (:func:`vaultline.repository.entry_streams.join_with_parent`), is one
key-sorted stream in which each object is either *read* (new or changed), *retagged* (unchanged, its tags read
again) or *carried* (unchanged, its parent entry kept as it is). :func:`cut_parts` cuts it into two sequences of
consecutive key ranges, each part sorted by key and bounded in size:

- batches (:class:`BackupBatch`), the work items: the objects to read and to retag, bounded in objects and bytes
  so that one worker finishes a batch well inside its 15 minutes;
- carried parts (:class:`CarriedPart`, already a result): the carried entries, bounded in count, for Commit to
  merge with the workers' results; they stay the parent's entry lines (:class:`EntryLine`), never decoded whole.

Nothing holds more than one part of each, plus the look-ahead that spreads a small backup over the workers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from vaultline.repository.manifest import EntryLine, ObjectEntry
from vaultline.runs.models import BackupBatch, CarriedPart

# A batch is sized so one worker finishes it well inside its 15 minutes even at modest throughput; objects larger
# than the byte budget get a batch of their own.
#
# Every batch also pays a fixed cost, whatever its size: the invocation, opening the vault, the index's start-up,
# the step's own requests, its last upload and its pipeline filling and draining (0.5-0.7 s in
# bench/lambda_worker_bench.py behind 30 ms; a large vault's index start-up alone is 0.3-0.5 s). Objects, not
# bytes, cut most batches: at 500 objects, a bucket of 100 KB objects made 50 MB batches, where the bench's worker
# runs at 0.19x raw zstd, against 0.38x at 200 MB and 0.64x at 512 MB (docs/performance.md). At 2,000 objects
# such a batch is 200 MB. The bounds still hold with room: 2,000 objects' GETs (and tag reads), 32 at a time
# behind 30 ms, take seconds; a batch's entries and its result hold about 1.7 KB an object (7 MB of a 1,769 MB
# worker); Prepare's look-ahead (``min(workers, SPREAD_WORKERS)`` batches) about 70 MB of its 1,024 MB; and the
# Distributed Map runs a quarter as many child executions.
BATCH_MAX_OBJECTS = 2000
BATCH_MAX_BYTES = 2 * 1024**3
BATCH_MIN_OBJECTS = 25
BATCH_MIN_BYTES = 64 * 1024**2
# Carried entries per staged part: a few MiB of JSON, and what Commit holds of one part while it merges.
CARRIED_PART_OBJECTS = 2000
# A backup with at most this many workers' full batches to do is spread over its workers (the totals are known
# once the listing ends inside the look-ahead); a larger one has batches enough for all of them.
SPREAD_WORKERS = 20

Kind = Literal["read", "retag", "carried"]


@dataclass(frozen=True)
class BatchLimits:
    """How many objects (and bytes) to read, and how many to retag, in one batch."""

    read_objects: int = BATCH_MAX_OBJECTS
    read_bytes: int = BATCH_MAX_BYTES
    retag_objects: int = BATCH_MAX_OBJECTS

    @classmethod
    def spread(cls, reads: Sequence[ObjectEntry], retags: int, workers: int) -> BatchLimits:
        """Limits that spread a backup of ``reads`` and ``retags`` (all of them) over at least ``workers`` batches
        when there are enough objects (25 or more each): a small bucket should not run on one worker of ten."""
        read_spread = max(1, min(workers, len(reads) // BATCH_MIN_OBJECTS))
        retag_spread = max(1, min(workers, retags // BATCH_MIN_OBJECTS))
        total_bytes = sum(entry.size for entry in reads)
        return cls(
            read_objects=min(BATCH_MAX_OBJECTS, max(1, -(-len(reads) // read_spread))),
            read_bytes=min(BATCH_MAX_BYTES, max(BATCH_MIN_BYTES, -(-total_bytes // read_spread))),
            retag_objects=min(BATCH_MAX_OBJECTS, max(1, -(-retags // retag_spread))),
        )


def batches(listed: list[ObjectEntry], workers: int = 1) -> Iterator[list[ObjectEntry]]:
    """Group a list of objects into batches bounded by count and bytes, spread over at least ``workers`` batches
    when there are enough objects (for a restore, whose Prepare walks a manifest it already filtered)."""
    limits = BatchLimits.spread(listed, 0, workers)
    batch: list[ObjectEntry] = []
    size = 0
    for entry in listed:
        if batch and (len(batch) >= limits.read_objects or size + entry.size > limits.read_bytes):
            yield batch
            batch, size = [], 0
        batch.append(entry)
        size += entry.size
    if batch:
        yield batch


def classify(
    joined: Iterable[tuple[ObjectEntry, ObjectEntry | EntryLine | None]], retag: bool
) -> Iterator[tuple[Kind, ObjectEntry | EntryLine]]:
    """Each listed object with what the backup does with it, and the entry it does it with: the listing's for an
    object to read, the parent's for one unchanged (decoded to retag it, as its line to carry it)."""
    for item, before in joined:
        if before is None:
            yield "read", item
        elif retag:
            yield "retag", before.entry() if isinstance(before, EntryLine) else before
        else:
            yield "carried", before if isinstance(before, EntryLine) else EntryLine.of(before)


@dataclass
class _Batches:
    """Fills one batch at a time; a batch is cut when the next object would take it past a limit."""

    limits: BatchLimits
    number: int = 0
    read: list[ObjectEntry] = field(default_factory=list)
    read_bytes: int = 0
    retag: list[ObjectEntry] = field(default_factory=list)

    def add(self, kind: Kind, entry: ObjectEntry) -> Iterator[BackupBatch]:
        if kind == "read":
            if self.read and (
                len(self.read) >= self.limits.read_objects or self.read_bytes + entry.size > self.limits.read_bytes
            ):
                yield from self.finish()
            self.read.append(entry)
            self.read_bytes += entry.size
        else:
            if len(self.retag) >= self.limits.retag_objects:
                yield from self.finish()
            self.retag.append(entry)

    def finish(self) -> Iterator[BackupBatch]:
        if self.read or self.retag:
            yield BackupBatch(batch=self.number, read=self.read, retag=self.retag)
            self.number += 1
        self.read, self.read_bytes, self.retag = [], 0, []


@dataclass
class _Carried:
    """Fills one carried part at a time, cut at :data:`CARRIED_PART_OBJECTS` entries."""

    size: int = CARRIED_PART_OBJECTS
    number: int = 0
    entries: list[EntryLine] = field(default_factory=list)

    def add(self, entry: EntryLine) -> Iterator[CarriedPart]:
        if len(self.entries) >= self.size:
            yield from self.finish()
        self.entries.append(entry)

    def finish(self) -> Iterator[CarriedPart]:
        if self.entries:
            yield CarriedPart.of(self.number, self.entries)
            self.number += 1
        self.entries = []


def cut_parts(
    joined: Iterable[tuple[ObjectEntry, ObjectEntry | EntryLine | None]],
    retag: bool,
    workers: int,
    carried_part: int | None = None,
) -> Iterator[BackupBatch | CarriedPart]:
    """The batches and carried parts of a joined listing, each as soon as it is cut (the two sequences interleave;
    each is numbered from 0 in key order). ``retag``: unchanged objects have their tags read again;
    ``carried_part``: entries per carried part (:data:`CARRIED_PART_OBJECTS`)."""
    carried = _Carried(carried_part or CARRIED_PART_OBJECTS)
    batches: _Batches | None = None  # until the look-ahead says how large the batches are
    pending: list[tuple[Kind, ObjectEntry]] = []
    look_ahead = min(workers, SPREAD_WORKERS) * BATCH_MAX_OBJECTS
    for kind, entry in classify(joined, retag):
        if isinstance(entry, EntryLine):
            yield from carried.add(entry)
        elif batches is not None:
            yield from batches.add(kind, entry)
        else:
            pending.append((kind, entry))
            if len(pending) > look_ahead:
                batches = _Batches(BatchLimits())
                yield from _replay(batches, pending)
    if batches is None:
        reads = [entry for kind, entry in pending if kind == "read"]
        batches = _Batches(BatchLimits.spread(reads, len(pending) - len(reads), workers))
        yield from _replay(batches, pending)
    yield from batches.finish()
    yield from carried.finish()


def _replay(batches: _Batches, pending: list[tuple[Kind, ObjectEntry]]) -> Iterator[BackupBatch]:
    """Hand the look-ahead's objects to ``batches``, emptying it."""
    for kind, entry in pending:
        yield from batches.add(kind, entry)
    pending.clear()
