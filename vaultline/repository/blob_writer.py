"""Writing blobs: dedup against the index, compress and seal on worker threads, fill packs, upload, index.

zstandard, BLAKE3 and AES-GCM release the GIL, so threads use every core for the expensive steps while the
caller's thread chunks and keeps the order of things.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from vaultline.repository.compact_index import KEY_SIZE
from vaultline.repository.compression import compress
from vaultline.repository.layout import pack_key
from vaultline.repository.packs import BlobEntry, PackBuilder, SealedBlob
from vaultline.repository.vault import Vault


@dataclass
class WriteStats:
    """What a writer added to the vault."""

    new_blobs: int = 0
    new_raw_bytes: int = 0
    stored_bytes: int = 0
    duplicate_blobs: int = 0
    packs: list[str] = field(default_factory=list)
    index_ids: list[str] = field(default_factory=list)


# Write an index object once this many new blobs are packed, not only at the end: what the writer holds for its
# unindexed packs stays bounded (about 30 MB of entries) however long the backup, and a crash loses at most that
# many blobs' worth of indexing (recover_unindexed_packs finds the packs). A writer of fewer blobs writes one index
# object, as before, so requests per GiB do not grow; past that it is one PUT per 100,000 blobs (restic writes its
# index in pieces the same way).
INDEX_FLUSH_BLOBS = 100_000


def default_threads() -> int:
    return max(2, os.cpu_count() or 2)


class BlobWriter:
    """Adds blobs to a vault. Call :meth:`flush` at the end: packs are uploaded first, then an index object
    naming them (one every ``INDEX_FLUSH_BLOBS`` blobs, and one for the rest at the flush); nothing is referenced by
    a manifest until both exist."""

    def __init__(self, vault: Vault, compression_level: int | None = None, threads: int | None = None) -> None:
        self.vault = vault
        self.level = compression_level or vault.config.compression.level
        self.threads = threads or default_threads()
        self._seal_pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="vaultline-seal")
        self._upload_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="vaultline-upload")
        self._sealing: deque[Future[SealedBlob]] = deque()
        self._uploads: deque[Future[bool]] = deque()
        self._pending: set[bytes] = set()
        self._known: set[bytes] = set()
        self._builder = PackBuilder()
        self._written: list[tuple[str, list[BlobEntry]]] = []
        self._written_blobs = 0
        self.flush_blobs = INDEX_FLUSH_BLOBS
        self.stats = WriteStats()

    def add(self, data: bytes, blob_type: int, blob_id: bytes | None = None) -> bytes:
        """Store ``data`` unless the vault already has it; return its id."""
        if blob_id is None:
            blob_id = self.vault.cipher.chunk_id(data)
        if blob_id in self._pending or blob_id[:KEY_SIZE] in self._known or blob_id in self.vault.lookup:
            self.stats.duplicate_blobs += 1
            return blob_id
        self._pending.add(blob_id)
        self.stats.new_blobs += 1
        self.stats.new_raw_bytes += len(data)
        self._sealing.append(self._seal_pool.submit(self._seal, data, blob_type, blob_id))
        # Bound the bytes in flight: a few chunks per thread keeps every core busy without holding the object.
        while len(self._sealing) > self.threads * 4:
            self._collect(self._sealing.popleft().result())
        return blob_id

    def assume_stored(self, keys: set[bytes]) -> None:
        """Blobs (by 16-byte key) known to be stored without asking the index: the chunks of a changed object's
        parent entry, which a backup's shared lock keeps from prune. Held for the writer's life: 16 bytes and a
        set slot each, a batch's parent chunks (a few thousand per GiB of changed objects)."""
        self._known |= keys

    def _seal(self, data: bytes, blob_type: int, blob_id: bytes) -> SealedBlob:
        compression, payload = compress(data, self.level)
        return SealedBlob(blob_id, blob_type, compression, len(data), self.vault.cipher.seal(payload, blob_id))

    def _collect(self, blob: SealedBlob) -> None:
        self._builder.add(blob)
        self.stats.stored_bytes += len(blob.payload)
        if self._builder.size >= self.vault.config.pack_size:
            self._ship()

    def _ship(self) -> None:
        builder, self._builder = self._builder, PackBuilder()
        pack_id, data = builder.finish(self.vault.cipher)
        self._written.append((pack_id, builder.entries))
        self.stats.packs.append(pack_id)
        self._written_blobs += len(builder.entries)
        self._uploads.append(self._upload_pool.submit(self.vault.storage.create, pack_key(pack_id), data))
        while len(self._uploads) > 2:
            self._uploads.popleft().result()
        if self._written_blobs >= self.flush_blobs:
            self._write_index()

    def _write_index(self) -> None:
        """Index the packs shipped so far, once they are all stored, and make their blobs visible to dedup."""
        while self._uploads:
            self._uploads.popleft().result()
        if not self._written:
            return
        self.stats.index_ids.append(self.vault.write_index(self._written))
        for pack_id, entries in self._written:
            self.vault.lookup.add_pack(pack_id, entries)
            self._pending.difference_update(e.id for e in entries)
        self._written = []
        self._written_blobs = 0

    def flush(self) -> WriteStats:
        """Finish every pack, upload it, then write an index object for the packs not indexed yet; make them
        visible to dedup."""
        while self._sealing:
            self._collect(self._sealing.popleft().result())
        if len(self._builder):
            self._ship()
        self._write_index()
        self._pending.clear()
        return self.stats

    def close(self) -> None:
        """Release the threads; blobs not flushed are abandoned (garbage for prune, never referenced)."""
        self._seal_pool.shutdown(wait=True, cancel_futures=True)
        self._upload_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
