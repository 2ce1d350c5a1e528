"""Reading, cutting and hashing a backup's objects on threads of their own, ahead of the thread that stores them.

File and network reads, FastCDC's cut and BLAKE3 all release the GIL. Done on the backup's own thread they came
before each chunk's hand-off to zstd, and held zstd's threads idle while they ran: a third of the CPU a backup
spends, in series with the rest. Here a few objects are read ahead, each on a thread of its own; the backup takes
their chunks, with their ids, in order, and only looks them up in the index and hands them to the writer.

What waits is bounded: each object read ahead holds at most :data:`OBJECT_BUDGET` bytes of chunks (its thread
waits when that many are not taken yet), and objects are started only while the listed sizes of those not yet taken
fit :data:`AHEAD_BYTES`. Objects are opened one after the other, in the order they were started (a source such as
:class:`~vaultline.sources.read_ahead.ReadAhead` hands out what it read ahead only in its own order), and read and
cut side by side.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from vaultline.repository.chunking import Chunker
from vaultline.repository.manifest import ObjectEntry
from vaultline.sources.base import Source

# Reading, cutting and hashing cost about 0.4 of what zstd-3 costs per byte: one thread for every three cores keeps
# the writer's threads (one per core) fed. Each more thread holds its chunker's buffer and a budget of chunks (some
# 6 MiB of peak RSS, measured), which on two cores bought no speed.
CHUNK_THREADS = max(1, (os.cpu_count() or 2) // 3)
# Chunk bytes an object read ahead may hold before its thread waits, and the listed bytes of all the objects started
# and not taken yet: enough to keep zstd busy, little against the two packs a writer holds.
OBJECT_BUDGET = 2 * 1024 * 1024
AHEAD_BYTES = 4 * 1024 * 1024


class _Closed(Exception):
    """The reader was closed: a thread reading ahead stops where it is."""


class ObjectChunks:
    """The chunks of one object, handed in order from the thread that reads it to the thread that stores them;
    :attr:`entry` is the entry the source opened it with, once every chunk has been taken."""

    def __init__(self, listed: ObjectEntry, budget: int) -> None:
        self.listed = listed
        self.entry: ObjectEntry | None = None
        self._budget = budget
        self._changed = threading.Condition()
        self._chunks: deque[tuple[bytes, bytes]] = deque()
        self._held = 0
        self._done = False
        self._error: BaseException | None = None
        self._closed = False

    # -- the reading thread ---------------------------------------------------------------------------------------

    def put(self, chunk: bytes, blob_id: bytes) -> None:
        """Queue one chunk; wait while the chunks not taken yet fill the budget (one is always let in)."""
        with self._changed:
            while self._held and self._held + len(chunk) > self._budget and not self._closed:
                self._changed.wait()
            if self._closed:
                raise _Closed
            self._chunks.append((chunk, blob_id))
            self._held += len(chunk)
            self._changed.notify_all()

    def finish(self, entry: ObjectEntry | None, error: BaseException | None = None) -> None:
        """The object is read whole (``entry``), or failed with ``error``, raised to the thread taking its chunks
        once it has taken those queued before the failure."""
        with self._changed:
            self.entry, self._error, self._done = entry, error, True
            self._changed.notify_all()

    # -- the storing thread ---------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        """Each chunk with its id, in order, as they are read; the object's own error (vanished, archived, denied)
        is raised where its reading stopped."""
        while True:
            with self._changed:
                while not self._chunks and not self._done:
                    self._changed.wait()
                if not self._chunks:
                    if self._error is not None:
                        raise self._error
                    return
                chunk, blob_id = self._chunks.popleft()
                self._held -= len(chunk)
                self._changed.notify_all()
            yield chunk, blob_id

    def close(self) -> None:
        """Drop what is queued and stop the reading thread at its next chunk."""
        with self._changed:
            self._closed = True
            self._chunks.clear()
            self._held = 0
            self._changed.notify_all()


class ChunkAhead:
    """Reads, cuts and hashes objects of ``source`` on ``threads`` threads (:data:`CHUNK_THREADS` by default), in
    the order :meth:`start` is called.

    Use as a context manager: leaving it stops every thread and drops what was read and not taken (a backup that
    fails part way)."""

    def __init__(
        self,
        source: Source,
        chunker: Chunker,
        chunk_id: Callable[[bytes], bytes],
        threads: int | None = None,
        object_budget: int = OBJECT_BUDGET,
        ahead_bytes: int = AHEAD_BYTES,
    ) -> None:
        self.source = source
        self.chunker = chunker
        self.chunk_id = chunk_id
        self.object_budget = object_budget
        self.ahead_bytes = ahead_bytes
        self._pool = ThreadPoolExecutor(max_workers=threads or CHUNK_THREADS, thread_name_prefix="vl-chunk")
        self._started: deque[ObjectChunks] = deque()
        # Opens take turns in start order: ticket n opens once ticket n - 1 has opened (or failed to).
        self._turn = threading.Condition()
        self._next_ticket = 0
        self._opening = 0
        self._closed = False

    def room_for(self, listed: ObjectEntry) -> bool:
        """Whether ``listed`` may start now: nothing is waiting, or the objects started and not taken, with it,
        fit the byte budget (each counts what it may hold: its listed size up to the per-object budget)."""
        held = sum(self._held_by(chunks.listed) for chunks in self._started)
        return not self._started or held + self._held_by(listed) <= self.ahead_bytes

    def _held_by(self, listed: ObjectEntry) -> int:
        return min(max(listed.size, 0), self.object_budget)

    def start(self, listed: ObjectEntry) -> ObjectChunks:
        """Start reading ``listed``; its chunks come, in order, from the object returned (taken in start order)."""
        chunks = ObjectChunks(listed, self.object_budget)
        self._started.append(chunks)
        ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
        self._pool.submit(self._read, chunks, ticket)
        return chunks

    def taken(self, chunks: ObjectChunks) -> None:
        """``chunks`` (the oldest started) has been taken whole: its bytes no longer count against the budget."""
        if self._started and self._started[0] is chunks:
            self._started.popleft()

    def _read(self, chunks: ObjectChunks, ticket: int) -> None:
        try:
            with ExitStack() as stack:
                try:
                    self._wait_turn(ticket)
                    stream, entry = stack.enter_context(self.source.open(chunks.listed))
                finally:
                    self._pass_turn(ticket)
                for chunk in self.chunker.split(stream):
                    chunks.put(chunk, self.chunk_id(chunk))
            chunks.finish(entry)
        except _Closed:
            return
        except BaseException as exc:  # handed to the thread that takes the chunks, raised there in order
            chunks.finish(None, exc)

    def _wait_turn(self, ticket: int) -> None:
        with self._turn:
            while self._opening != ticket and not self._closed:
                self._turn.wait()
            if self._closed:
                raise _Closed

    def _pass_turn(self, ticket: int) -> None:
        with self._turn:
            if self._opening == ticket:
                self._opening = ticket + 1
                self._turn.notify_all()

    def close(self) -> None:
        """Stop every thread reading ahead; what was read and not taken is dropped."""
        with self._turn:
            self._closed = True
            self._turn.notify_all()
        for chunks in self._started:
            chunks.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._started.clear()

    def __enter__(self) -> ChunkAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
