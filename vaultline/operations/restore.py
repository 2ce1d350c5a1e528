"""Restoring a recovery point: read chunks in parallel, verify each, write objects side by side."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from vaultline.model import VaultlineModel
from vaultline.repository.blob_reader import ChunkReader
from vaultline.repository.chunking import Chunker
from vaultline.repository.manifest import ObjectEntry, RecoveryPoint, iter_entries
from vaultline.repository.vault import Vault
from vaultline.sources.base import KeyFilter
from vaultline.targets import Existing, Overwrite, Target
from vaultline.targets.base import KeyMapper, Rejected

EXISTENCE_THREADS = 16


class RestoreStats(VaultlineModel):
    objects: int = 0
    bytes: int = 0
    unmappable: int = 0
    # Objects not written because the target already had the key (--overwrite never) or had it with the same
    # content (--overwrite if-changed).
    skipped_existing: int = 0
    skipped_unchanged: int = 0
    seconds: float = 0.0


@dataclass
class RestoreOutcome:
    stats: RestoreStats = field(default_factory=RestoreStats)
    unmappable: list[tuple[str, str]] = field(default_factory=list)


RESTORE_WINDOW = 1000  # entries mapped, checked at the target and read ahead together

# Objects at least this large are written in parallel ranges where the target can write at offsets (a directory):
# the chunks of one object are fetched, decoded and written on the reader's threads side by side, rather than
# handed one by one, in order, to the thread that writes. Smaller objects share one in-order read-ahead stream.
# Measured on the bench corpus (a directory target), 1 MiB rather than 8 MiB: every chunk of a multi-chunk object
# is written where it was decoded instead of handed to the writing thread; 25 % less wall time and 13 % less CPU
# on a loaded box (load 7-9), the same wall time and 4 % less CPU on a quiet one (load 1).
RANGED_MIN_SIZE = 1024 * 1024
# Smaller objects are written whole on the reader's threads, batches of consecutive ones closed at this many bytes
# or objects (a directory of 20,000 small files: its creates, the kernel's time, then spread over the cores).
BATCH_BYTES = 256 * 1024
BATCH_OBJECTS = 32


@dataclass(frozen=True)
class Selection:
    """The entries of a recovery point that match include globs (all when none are given): re-iterable, each
    iteration a fresh stream of the manifest, so that neither a restore nor a drill holds them."""

    vault: Vault
    rp: RecoveryPoint
    include: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[ObjectEntry]:
        key_filter = KeyFilter(self.include)
        return (e for e in iter_entries(self.vault, self.rp) if key_filter(e.key))


def select_entries(vault: Vault, rp: RecoveryPoint, include: Sequence[str] = ()) -> Selection:
    """The entries of ``rp`` that match the include globs (all when none are given), as a re-iterable stream."""
    return Selection(vault, rp, tuple(include))


def restore_entries(
    vault: Vault,
    entries: Iterable[ObjectEntry],
    target: Target,
    progress: Callable[[int, int], None] | None = None,
    overwrite: Overwrite = "always",
) -> RestoreOutcome:
    """Write ``entries`` to ``target``. Keys the target cannot hold are reported in the outcome, not written;
    keys it already holds are written or skipped as ``overwrite`` says, and counted. (The front doors, the CLI
    and the restore state machine, default to ``never``; drills restore into a fresh scratch target.)

    ``entries`` is a list or a :class:`Selection`, not a one-shot iterator: a directory target reads it once more
    first (its collisions). It is restored as a stream, :data:`RESTORE_WINDOW` entries at a time: memory does not
    grow with the selection, but for the keys reported unmappable.
    """
    if isinstance(entries, Iterator):
        raise TypeError("restore_entries needs a re-iterable selection (a list or a Selection), not an iterator")
    clock = time.monotonic()
    outcome = RestoreOutcome()
    mapped = _mapped(entries, target.key_mapper(entries), outcome.unmappable)
    reader = ChunkReader(vault)
    small = _SmallObjects(reader, target, outcome.stats, progress, in_flight=reader.lookahead)
    try:
        with ThreadPoolExecutor(max_workers=EXISTENCE_THREADS, thread_name_prefix="vl-head") as pool:
            for window in _windows(mapped, RESTORE_WINDOW):
                if overwrite != "always":
                    # One HeadObject per key: in parallel, or a batch of small objects would wait on them one by one.
                    found = list(pool.map(lambda pair: target.existing(*pair), window))
                    window = [
                        (entry, key)
                        for (entry, key), existing in zip(window, found, strict=True)
                        if not _skipped(vault, target, entry, key, existing, overwrite, outcome.stats)
                    ]
                _write_window(reader, target, window, small, outcome.stats, progress)
        small.finish()
    finally:
        reader.close()
    outcome.stats.unmappable = len(outcome.unmappable)
    outcome.stats.seconds = round(time.monotonic() - clock, 3)
    return outcome


def _mapped(
    entries: Iterable[ObjectEntry], mapper: KeyMapper, unmappable: list[tuple[str, str]]
) -> Iterator[tuple[ObjectEntry, str]]:
    """Each entry with its target key; the ones the target cannot hold go to ``unmappable`` (key, reason)."""
    for entry in entries:
        key = mapper(entry)
        if isinstance(key, Rejected):
            unmappable.append((entry.key, key.reason))
        elif key is not None:
            yield entry, key


def _windows(pairs: Iterable[tuple[ObjectEntry, str]], size: int) -> Iterator[list[tuple[ObjectEntry, str]]]:
    iterator = iter(pairs)
    while window := list(itertools.islice(iterator, size)):
        yield window


def _write_window(
    reader: ChunkReader,
    target: Target,
    window: list[tuple[ObjectEntry, str]],
    small: _SmallObjects,
    stats: RestoreStats,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Write a window's objects: the small ones whole on the reader's threads, in batches (``small``); the large
    ones each in parallel ranges where the target can, else in order from one read-ahead stream."""
    for entry, key in window:
        if entry.size < RANGED_MIN_SIZE:
            small.add(entry, key)
            continue
        lengths = reader.lengths(entry.chunks)
        ranged = target.write_ranges(entry, key, sum(lengths))
        if ranged is None:
            target.write(entry, key, _counting(reader.stream(entry.chunks), progress))
            _written(entry, stats, progress)
            continue
        try:
            reader.write_at_offsets(ranged, entry.chunks, lengths, (lambda n: progress(0, n)) if progress else None)
        except BaseException:
            ranged.abort()
            raise
        ranged.commit()
        _written(entry, stats, progress)


class _SmallObjects:
    """Small objects written whole on the reader's threads, a batch of consecutive ones per task (its chunks read
    in one or a few ranges, then each object written): files are created side by side, and no chunk is handed from
    one thread to another. At most ``in_flight`` batches are read or written at once; they settle in order, so the
    first object that fails raises (the reader's close waits for the batches still running)."""

    def __init__(
        self,
        reader: ChunkReader,
        target: Target,
        stats: RestoreStats,
        progress: Callable[[int, int], None] | None,
        in_flight: int,
    ) -> None:
        self.reader, self.target, self.stats, self.progress = reader, target, stats, progress
        self.in_flight = in_flight
        self.batch: list[tuple[ObjectEntry, str]] = []
        self.batch_bytes = 0
        self.running: deque[tuple[Future[None], list[tuple[ObjectEntry, str]]]] = deque()

    def add(self, entry: ObjectEntry, key: str) -> None:
        self.batch.append((entry, key))
        self.batch_bytes += entry.size
        if self.batch_bytes >= BATCH_BYTES or len(self.batch) >= BATCH_OBJECTS:
            self._submit()

    def finish(self) -> None:
        """Write what is batched and wait for every batch."""
        if self.batch:
            self._submit()
        while self.running:
            self._settle()

    def _submit(self) -> None:
        self.running.append((self.reader.submit(_write_whole, self.reader, self.target, self.batch), self.batch))
        self.batch, self.batch_bytes = [], 0
        while len(self.running) > self.in_flight:
            self._settle()

    def _settle(self) -> None:
        future, batch = self.running.popleft()
        future.result()
        for entry, _ in batch:
            if self.progress:
                self.progress(0, entry.size)
            _written(entry, self.stats, self.progress)


def _write_whole(reader: ChunkReader, target: Target, batch: list[tuple[ObjectEntry, str]]) -> None:
    chunks = reader.read([chunk for entry, _ in batch for chunk in entry.chunks])
    for entry, key in batch:
        target.write(entry, key, itertools.islice(chunks, len(entry.chunks)))


def _written(entry: ObjectEntry, stats: RestoreStats, progress: Callable[[int, int], None] | None) -> None:
    stats.objects += 1
    stats.bytes += entry.size
    if progress:
        progress(1, 0)


def _skipped(
    vault: Vault,
    target: Target,
    entry: ObjectEntry,
    key: str,
    existing: Existing | None,
    overwrite: Overwrite,
    stats: RestoreStats,
) -> bool:
    """Whether ``entry`` is not written because of what the target holds at ``key`` (and count it)."""
    if existing is None:
        return False
    if overwrite == "never":
        stats.skipped_existing += 1
        return True
    if _same_content(vault, target, entry, key, existing):
        stats.skipped_unchanged += 1
        return True
    return False


def _same_content(vault: Vault, target: Target, entry: ObjectEntry, key: str, existing: Existing) -> bool:
    """Same size, and the same ETag as at backup (S3) or the same chunk ids when the file is cut and hashed as the
    backup cut it (a directory: read locally, nothing fetched from the vault)."""
    if existing.size != entry.size:
        return False
    if existing.etag is not None:
        return entry.etag is not None and existing.etag == entry.etag
    handle = target.open_existing(entry, key)
    if handle is None:
        return False
    with handle:
        ids = (vault.cipher.chunk_id(chunk).hex() for chunk in Chunker(vault.config.chunker).split(handle))
        return list(ids) == entry.chunks


def _counting(chunks: Iterator[bytes], progress: Callable[[int, int], None] | None) -> Iterator[bytes]:
    for chunk in chunks:
        if progress:
            progress(0, len(chunk))
        yield chunk
