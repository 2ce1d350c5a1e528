"""Reading blobs back: chunks fetched and verified on a thread pool, yielded in order with a bounded read-ahead.

Small chunks are fetched in groups: one task on the pool, and one storage read per run of neighbouring blobs in a
pack, for many chunks. Handing each chunk of a few KiB to a thread and back cost more than decoding it (a directory
of 20,000 small files: 22 futex calls a file, and more system than user time).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Protocol, TypeVar

from vaultline.errors import IntegrityError, ObjectMissing
from vaultline.repository.blob_writer import default_threads
from vaultline.repository.index import BlobLocation
from vaultline.repository.layout import pack_key
from vaultline.repository.vault import Vault

T = TypeVar("T")

# A group of consecutive chunks read by one task closes once it holds this many plaintext bytes: chunks of the
# average size (256-512 KiB) go one by one as before; a run of small ones is read and decoded together. What a
# stream holds is bounded by ``lookahead`` groups, each at most max(GROUP_BYTES, one chunk).
GROUP_BYTES = 256 * 1024
# Blobs of one pack at most this far apart are read in one range (the bytes between read and dropped), so that a
# group of neighbouring blobs costs one read, one GET on S3, not one per blob.
SPAN_GAP = 16 * 1024


class WritesAt(Protocol):
    """Where :meth:`ChunkReader.write_at_offsets` puts each chunk (a target's ranged write)."""

    def write_at(self, offset: int, data: bytes) -> None: ...


class ChunkReader:
    """Fetches and verifies chunks on a thread pool, yielding them in order with a bounded read-ahead."""

    def __init__(self, vault: Vault, threads: int | None = None, lookahead: int = 16) -> None:
        self.vault = vault
        self.pool = ThreadPoolExecutor(max_workers=threads or default_threads() * 2, thread_name_prefix="vl-read")
        self.lookahead = lookahead

    def stream(self, chunk_ids: Sequence[str]) -> Iterator[bytes]:
        """Every chunk's plaintext, in order, verified against its id; up to ``lookahead`` groups read ahead. A
        chunk that cannot be read raises when its turn comes, after the chunks before it were yielded."""
        queue: deque[Future[list[bytes | Exception]]] = deque()
        for group in self._groups(chunk_ids):
            queue.append(self.pool.submit(self._read_group, group))
            if len(queue) >= self.lookahead:
                yield from _settled(queue.popleft().result())
        while queue:
            yield from _settled(queue.popleft().result())

    def read(self, chunk_ids: Sequence[str]) -> Iterator[bytes]:
        """Every chunk's plaintext, in order, verified, read on the calling thread (a task already on the pool,
        see :meth:`submit`) in as few range reads as :func:`_spans` makes. A chunk that cannot be read raises when
        its turn comes. For a few small chunks: all are held at once."""
        group = [(chunk_hex, self.vault.lookup.get(bytes.fromhex(chunk_hex))) for chunk_hex in chunk_ids]
        return _settled(self._read_group(group))

    def submit(self, task: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``task`` on the reader's threads (work that reads with :meth:`read` and writes what it read)."""
        return self.pool.submit(task, *args)

    def _groups(self, chunk_ids: Iterable[str]) -> Iterator[list[tuple[str, BlobLocation | None]]]:
        """Consecutive chunks with their locations (None: in no index), cut at :data:`GROUP_BYTES`."""
        group: list[tuple[str, BlobLocation | None]] = []
        size = 0
        for chunk_hex in chunk_ids:
            location = self.vault.lookup.get(bytes.fromhex(chunk_hex))
            group.append((chunk_hex, location))
            size += location.entry.raw_length if location else 0
            if size >= GROUP_BYTES:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _read_group(self, group: list[tuple[str, BlobLocation | None]]) -> list[bytes | Exception]:
        """Each chunk of ``group`` decoded and verified, or the error that names it; the blobs read in as few
        ranges as :func:`_spans` makes of them."""
        out: list[bytes | Exception] = [
            ObjectMissing(f"{self.vault.url}: blob {chunk_hex} is not in any index") for chunk_hex, _ in group
        ]
        located = [(n, location) for n, (_, location) in enumerate(group) if location is not None]
        for span in _spans(located):
            first = span[0][1]
            start = first.entry.offset
            end = max(location.entry.offset + location.entry.stored_length for _, location in span)
            try:
                stored = memoryview(self.vault.storage.get_range(pack_key(first.pack_id), start, end - start))
            except Exception as exc:
                for n, _ in span:
                    out[n] = exc
                continue
            for n, location in span:
                entry = location.entry
                piece = stored[entry.offset - start : entry.offset - start + entry.stored_length]
                try:
                    out[n] = self.vault.decode_blob(piece, entry, location.pack_id)
                except Exception as exc:
                    out[n] = exc
        return out

    def lengths(self, chunk_ids: Sequence[str]) -> list[int]:
        """The plaintext length of each chunk, from the index (nothing is read): where each one starts in its
        object. One int per chunk of one object, as its entry already holds one id per chunk."""
        lengths = []
        for chunk_hex in chunk_ids:
            location = self.vault.lookup.get(bytes.fromhex(chunk_hex))
            if location is None:
                raise ObjectMissing(f"{self.vault.url}: blob {chunk_hex} is not in any index")
            lengths.append(location.entry.raw_length)
        return lengths

    def write_at_offsets(
        self,
        out: WritesAt,
        chunk_ids: Sequence[str],
        lengths: Sequence[int],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Fetch, verify and write every chunk at its offset on the pool's threads, in any order: reads of packs,
        decompression and writes of one large object overlap, and no thread hands bytes to another. At most
        ``lookahead`` chunks are in flight. The first error is raised once every chunk in flight has settled (the
        caller then drops ``out``); ``progress`` gets the bytes of each chunk written."""
        starts = itertools.accumulate(lengths, initial=0)
        in_flight: deque[Future[int]] = deque()
        try:
            for chunk_hex, start, length in zip(chunk_ids, starts, lengths, strict=False):
                in_flight.append(self.pool.submit(self._copy_chunk, out, chunk_hex, start, length))
                if len(in_flight) >= self.lookahead:
                    done = in_flight.popleft().result()
                    if progress:
                        progress(done)
            while in_flight:
                done = in_flight.popleft().result()
                if progress:
                    progress(done)
        except BaseException:
            for future in in_flight:
                future.cancel()
            wait(in_flight)
            raise

    def _copy_chunk(self, out: WritesAt, chunk_hex: str, start: int, length: int) -> int:
        data = self.vault.read_blob(bytes.fromhex(chunk_hex))
        if len(data) != length:
            raise IntegrityError(
                f"{self.vault.url}: blob {chunk_hex[:16]} is {len(data)} bytes, its index says {length}"
            )
        out.write_at(start, data)
        return length

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _spans(located: list[tuple[int, BlobLocation]]) -> Iterator[list[tuple[int, BlobLocation]]]:
    """``located`` (position, location) in runs that one range read covers: the same pack, in offset order, each
    blob starting at most :data:`SPAN_GAP` bytes after the run's end so far, and the run at most
    :data:`GROUP_BYTES` plus one blob long."""
    run: list[tuple[int, BlobLocation]] = []
    start = end = 0
    for n, location in sorted(located, key=lambda item: (item[1].pack_id, item[1].entry.offset)):
        entry = location.entry
        if run and (
            location.pack_id != run[0][1].pack_id or entry.offset > end + SPAN_GAP or entry.offset - start > GROUP_BYTES
        ):
            yield run
            run = []
        if not run:
            start = end = entry.offset
        run.append((n, location))
        end = max(end, entry.offset + entry.stored_length)
    if run:
        yield run


def _settled(results: list[bytes | Exception]) -> Iterator[bytes]:
    for result in results:
        if isinstance(result, Exception):
            raise result
        yield result
