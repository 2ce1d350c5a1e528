"""Reading the objects of a batch ahead of the backup that consumes them, so request latency overlaps compression.

A Lambda worker backs up a batch of up to 2,000 objects; read one by one, each object costs its GET's latency (about
30 ms to S3, more across regions) before a byte reaches the chunker, and a batch of small objects spends most of
its time waiting. :class:`ReadAhead` wraps a source and opens the next objects of the batch on a few threads while
the caller chunks and compresses the current one. The backup sees an ordinary :class:`~vaultline.sources.base.Source`
whose ``open`` hands back what was read: the bytes, the entry, and the same errors (``ObjectVanished``,
``ObjectArchived``, ``SourceError``) raised where the serial path raises them, from ``open``.

Small objects are most of a bucket's count, and their GETs are all latency: to keep zstd busy at ~300 MB/s on objects of
~150 KB behind 30 ms, some 60 would have to be in flight (32 are: the client's connection pool). The window is bounded
by bytes as well as by count: at most ``objects`` opens are in flight or waiting, and together they hold at most
``budget`` bytes: each reads at most ``min(head, listed size + 1)`` bytes ahead (the rest of a larger object, or of one
that grew since the listing, streams from its open response when the backup reaches it). With the object being consumed,
the ceiling is ``budget + head`` bytes (64 + 8 MiB by default), whatever the batch.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass

from vaultline.repository.chunking import Readable
from vaultline.repository.manifest import ObjectEntry
from vaultline.sources.base import Source

# As many as the shared client keeps connections (vaultline.aws: max_pool_connections=32); more would open and drop
# a connection (a TLS handshake) per request beyond the pool.
READ_AHEAD_OBJECTS = 32
READ_AHEAD_BYTES = 64 * 1024 * 1024
READ_AHEAD_HEAD = 8 * 1024 * 1024


@dataclass
class _Opened:
    """One object opened ahead: its entry, its first bytes, and (when it is longer) its still open response."""

    entry: ObjectEntry
    head: bytes
    rest: ExitStack | None
    body: Readable | None


class _Joined:
    """``head`` and then the rest of ``body``: an object whose first bytes were read ahead."""

    def __init__(self, head: bytes, body: Readable | None) -> None:
        self._head = io.BytesIO(head)
        self._body = body

    def read(self, n: int = -1, /) -> bytes:
        data = self._head.read(n)
        if self._body is None or (n >= 0 and len(data) == n):
            return data
        more = self._body.read(-1 if n < 0 else n - len(data))
        return data + more if data else more


def _read_up_to(stream: Readable, n: int) -> bytes:
    parts = []
    while n > 0:
        part = stream.read(n)
        if not part:
            break
        parts.append(part)
        n -= len(part)
    return b"".join(parts)


def _same(a: ObjectEntry, b: ObjectEntry) -> bool:
    return a.key == b.key and a.version_id == b.version_id


class ReadAhead(Source):
    """``source`` with the objects of ``planned`` (in the order the backup opens them) opened ahead on threads.

    ``open`` of a planned object waits for its read-ahead and returns it (or raises its error); ``open`` of any
    other object, or of a planned one out of order, opens it directly. Use as a context manager: leaving it closes
    whatever was opened ahead and not consumed (a batch that fails part way).
    """

    def __init__(
        self,
        source: Source,
        planned: Sequence[ObjectEntry],
        objects: int = READ_AHEAD_OBJECTS,
        budget: int = READ_AHEAD_BYTES,
        head: int = READ_AHEAD_HEAD,
    ) -> None:
        if objects < 1 or head < 1 or budget < 1:
            raise ValueError("read-ahead needs at least one object and one byte")
        self.source = source
        self.url = source.url
        self.kind = source.kind
        self.has_tags = source.has_tags
        self.objects = objects
        self.head = head
        self.budget = budget
        self._planned = deque(planned)
        self._ahead: deque[tuple[ObjectEntry, int, Future[_Opened]]] = deque()
        self._held = 0  # bytes the window may hold: the sum of its opens' read limits
        self._pool = ThreadPoolExecutor(max_workers=objects, thread_name_prefix="vl-read-ahead")
        self.in_flight_peak = 0
        self.held_peak = 0
        self._fill()

    def list(self) -> Iterator[ObjectEntry]:
        return self.source.list()

    def read_tags(self, entry: ObjectEntry) -> dict[str, str]:
        return self.source.read_tags(entry)

    def _limit(self, item: ObjectEntry) -> int:
        return min(self.head, max(0, item.size) + 1)

    def _fill(self) -> None:
        while self._planned and len(self._ahead) < self.objects:
            limit = self._limit(self._planned[0])
            if self._ahead and self._held + limit > self.budget:
                break
            item = self._planned.popleft()
            self._held += limit
            self._ahead.append((item, limit, self._pool.submit(self._open_ahead, item, limit)))
        self.in_flight_peak = max(self.in_flight_peak, len(self._ahead))
        self.held_peak = max(self.held_peak, self._held)

    def _open_ahead(self, item: ObjectEntry, limit: int) -> _Opened:
        stack = ExitStack()
        try:
            body, entry = stack.enter_context(self.source.open(item))
            head = _read_up_to(body, limit)
            if len(head) < limit:
                stack.close()
                return _Opened(entry, head, None, None)
        except BaseException:
            stack.close()
            raise
        # Longer than the head: keep the response open, the rest streams when the backup reaches this object.
        return _Opened(entry, head, stack, body)

    def open(self, listed: ObjectEntry) -> AbstractContextManager[tuple[Readable, ObjectEntry]]:
        if not self._ahead or not _same(self._ahead[0][0], listed):
            return self.source.open(listed)
        _, limit, future = self._ahead.popleft()
        self._held -= limit
        self._fill()
        return self._consume(future)

    @contextmanager
    def _consume(self, future: Future[_Opened]) -> Iterator[tuple[Readable, ObjectEntry]]:
        opened = future.result()  # the object's own error (vanished, archived, denied) is raised here
        try:
            yield _Joined(opened.head, opened.body), opened.entry
        finally:
            if opened.rest is not None:
                opened.rest.close()

    def close(self) -> None:
        """Stop reading ahead; close what was opened and not consumed."""
        self._planned.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        while self._ahead:
            _, _, future = self._ahead.popleft()
            if future.done() and not future.cancelled() and future.exception() is None:
                rest = future.result().rest
                if rest is not None:
                    rest.close()

    def __enter__(self) -> ReadAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
