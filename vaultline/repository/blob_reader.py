"""Reading blobs back: chunks fetched and verified on a thread pool, yielded in order with a bounded read-ahead."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from vaultline.repository.blob_writer import default_threads
from vaultline.repository.vault import Vault


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

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
