"""Reading blobs back: chunks fetched and verified on a thread pool, yielded in order with a bounded read-ahead."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Protocol

from vaultline.errors import IntegrityError, ObjectMissing
from vaultline.repository.blob_writer import default_threads
from vaultline.repository.vault import Vault


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
        queue: deque[Future[bytes]] = deque()
        ids = iter(chunk_ids)
        for chunk_hex in ids:
            queue.append(self.pool.submit(self.vault.read_blob, bytes.fromhex(chunk_hex)))
            if len(queue) >= self.lookahead:
                break
        for chunk_hex in ids:
            yield queue.popleft().result()
            queue.append(self.pool.submit(self.vault.read_blob, bytes.fromhex(chunk_hex)))
        while queue:
            yield queue.popleft().result()

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
