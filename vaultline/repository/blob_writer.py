"""Writing blobs: dedup against the index, compress and seal on worker threads, fill packs, upload, index.

zstandard, BLAKE3 and AES-GCM release the GIL, so threads use every core for the expensive steps while the
caller's thread keeps the order of things: it checks each blob against the index, hands it to be sealed and
copies it into the pack filling. A full pack is finished (its header sealed, its id hashed) and stored on an
upload thread, and indexed only once it is stored.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from vaultline.repository.compact_index import KEY_SIZE
from vaultline.repository.compression import compress, compress_many
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

# Packs being uploaded while the next one fills, at most: the storage's put_concurrency (two for S3, hiding one
# PUT's latency behind the other, one for a local disk), capped here. What the writer holds is then bounded by
# that many packs and the one filling (about 54 MiB for S3, 36 MiB locally, at the default 16 MiB packs),
# whatever the backup's size.
UPLOADS_IN_FLIGHT = 2

# What a writer holds when it is flushed (the pack filling and the blobs being sealed: a pack and 8 MiB with two
# seal threads) is uploaded as up to this many packs side by side, each of at least FINAL_PIECE_BYTES: nothing
# overlaps that upload (a backup batch waits for it before it records its result), and what it waits on is one
# connection's rate, not the bytes (17 MB behind 30 ms at 100 MB/s: 0.2 s as one pack, 0.07 s as four). The
# pieces are the last pack's bytes copied once: they hold no more than it beside it.
FINAL_PIECES = 4
FINAL_PIECE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Stored:
    """A pack stored by an upload thread: its id, its blobs, and its buffer when it may be reused."""

    pack_id: str
    entries: list[BlobEntry]
    buffer: bytearray | None


class BlobGroup:
    """Blobs added together (:meth:`BlobWriter.add_group`): their ids, once the writer has hashed them."""

    def __init__(self, chunks: Sequence[bytes], hashing: Future[list[bytes]]) -> None:
        self.chunks = chunks
        self.hashing = hashing
        self.resolved: list[bytes] | None = None

    def ids(self) -> list[bytes]:
        """The blobs' ids, in the order added; the writer's :meth:`BlobWriter.resolve_groups` must have run (or
        the group have been resolved on its way through the writer)."""
        if self.resolved is None:
            raise RuntimeError("the writer has not resolved this group yet (call resolve_groups)")
        return self.resolved


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
        self.uploads_in_flight = max(1, min(UPLOADS_IN_FLIGHT, vault.storage.put_concurrency))
        self.final_pieces = FINAL_PIECES if self.uploads_in_flight > 1 else 1
        self._upload_pool = ThreadPoolExecutor(
            max_workers=max(self.uploads_in_flight, self.final_pieces), thread_name_prefix="vaultline-upload"
        )
        self._sealing: deque[Future[SealedBlob]] = deque()
        self._sealing_groups: deque[Future[list[SealedBlob]]] = deque()
        self._hashing: deque[tuple[BlobGroup, int]] = deque()
        self._uploads: deque[Future[_Stored]] = deque()
        self._spare: list[bytearray] = []
        self._pending: set[bytes] = set()
        self._known: set[bytes] = set()
        self._builder = self._new_builder()
        self._written: list[tuple[str, list[BlobEntry]]] = []
        self._written_blobs = 0
        self._flushing = False  # blobs gather in the last pack, however many: it is cut in pieces to be uploaded
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

    def add_compressed(self, blob_id: bytes, blob_type: int, compression: int, raw_length: int, payload: bytes) -> bool:
        """Store a blob already compressed (``payload``, by ``compression``) under ``blob_id`` unless the vault
        has it; return whether it was new. For a copy from another vault: its blobs are re-sealed for this vault's
        key, not compressed again. The caller vouches that ``blob_id`` is this vault's id of the plaintext."""
        if blob_id in self._pending or blob_id[:KEY_SIZE] in self._known or blob_id in self.vault.lookup:
            self.stats.duplicate_blobs += 1
            return False
        self._pending.add(blob_id)
        self.stats.new_blobs += 1
        self.stats.new_raw_bytes += raw_length
        self._sealing.append(self._seal_pool.submit(self._reseal, payload, blob_type, compression, raw_length, blob_id))
        while len(self._sealing) > self.threads * 4:
            self._collect(self._sealing.popleft().result())
        return True

    def _reseal(self, payload: bytes, blob_type: int, compression: int, raw_length: int, blob_id: bytes) -> SealedBlob:
        return SealedBlob(blob_id, blob_type, compression, raw_length, self.vault.cipher.seal(payload, blob_id))

    def add_group(self, chunks: Sequence[bytes], blob_type: int) -> BlobGroup:
        """:meth:`add` of each of ``chunks``, in the background; the returned group's :meth:`BlobGroup.ids` are
        their ids in order (known once the writer has hashed them, at the latest at :meth:`resolve_groups`).

        Made for many small blobs (DynamoDB item streams, ~3 KiB each): a group is hashed as one job, checked
        against the index here (in order, on the caller's thread: dedup sees every earlier group), and its new
        blobs sealed as one job (:func:`compress_many`), instead of one hand-off between threads per blob, which
        costs more than compressing a few KiB. At most a few groups per thread are hashing or sealing at once."""
        group = BlobGroup(chunks, self._seal_pool.submit(self._hash_group, chunks))
        self._hashing.append((group, blob_type))
        while len(self._hashing) > self.threads * 2:
            self._dedup_group(*self._hashing.popleft())
        return group

    def resolve_groups(self) -> None:
        """Wait for the ids of every group added: each :meth:`BlobGroup.ids` is then known."""
        while self._hashing:
            self._dedup_group(*self._hashing.popleft())

    def _hash_group(self, chunks: Sequence[bytes]) -> list[bytes]:
        return [self.vault.cipher.chunk_id(data) for data in chunks]

    def _dedup_group(self, group: BlobGroup, blob_type: int) -> None:
        ids = group.hashing.result()
        new: list[tuple[bytes, bytes]] = []
        for data, blob_id in zip(group.chunks, ids, strict=True):
            if blob_id in self._pending or blob_id[:KEY_SIZE] in self._known or blob_id in self.vault.lookup:
                self.stats.duplicate_blobs += 1
                continue
            self._pending.add(blob_id)
            self.stats.new_blobs += 1
            self.stats.new_raw_bytes += len(data)
            new.append((data, blob_id))
        group.chunks = ()
        group.resolved = ids
        if new:
            self._sealing_groups.append(self._seal_pool.submit(self._seal_group, new, blob_type))
            while len(self._sealing_groups) > self.threads * 2:
                for blob in self._sealing_groups.popleft().result():
                    self._collect(blob)

    def _seal_group(self, group: list[tuple[bytes, bytes]], blob_type: int) -> list[SealedBlob]:
        packed = compress_many([data for data, _ in group], self.level)
        return [
            SealedBlob(blob_id, blob_type, compression, len(data), self.vault.cipher.seal(payload, blob_id))
            for (data, blob_id), (compression, payload) in zip(group, packed, strict=True)
        ]

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
        if self._builder.size >= self.vault.config.pack_size and not self._flushing:
            self._ship()

    def _new_builder(self) -> PackBuilder:
        return PackBuilder(self._spare.pop() if self._spare else None)

    def _upload(self, builder: PackBuilder) -> _Stored:
        """Finish one pack (seal its header, hash its bytes into its id) and store it (a conditional create: a
        pack is named by the hash of its bytes, so one already there is this one), on an upload thread: the
        caller's thread goes on filling the next pack meanwhile. The buffer comes back for the next pack when it
        is a full one's (the final, short pack's buffer may have shrunk: it is let go)."""
        pack_id, data = builder.finish(self.vault.cipher)
        self.vault.storage.create(pack_key(pack_id), data)
        full = len(data) >= self.vault.config.pack_size
        return _Stored(pack_id, builder.entries, data if isinstance(data, bytearray) and full else None)

    def _settle_upload(self) -> None:
        """Wait for the oldest pack on its way; once stored, it is one to index (never before: crash safety)."""
        stored = self._uploads.popleft().result()
        self._written.append((stored.pack_id, stored.entries))
        self.stats.packs.append(stored.pack_id)
        if stored.buffer is not None and not self._spare:  # one spare is enough: the next pack takes it
            self._spare.append(stored.buffer)

    def _ship(self) -> None:
        builder = self._builder
        self._written_blobs += len(builder.entries)
        # Wait for a slot before this pack is queued, not after: the writer then holds at most uploads_in_flight
        # packs on their way, and the buffer of the next is taken only once one of them is stored.
        while len(self._uploads) >= self.uploads_in_flight:
            self._settle_upload()
        self._uploads.append(self._upload_pool.submit(self._upload, builder))
        self._builder = self._new_builder()
        if self._written_blobs >= self.flush_blobs:
            self._write_index()

    def _write_index(self) -> None:
        """Index the packs shipped so far, once they are all stored, and make their blobs visible to dedup."""
        while self._uploads:
            self._settle_upload()
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
        self.store_packs()
        self._write_index()
        self._pending.clear()
        return self.stats

    def store_packs(self) -> WriteStats:
        """Finish every pack and wait until each is stored, indexing none that is not indexed yet (:meth:`flush`
        does): once it returns, the figures (``stats``, but for ``index_ids``) are final and every pack they count
        is durable, so a step may record them beside the index object's write."""
        # Gathered whole only when its pieces can go up together: one upload at a time, packs are cut as ever.
        self._flushing = self.final_pieces > 1
        try:
            while self._sealing:
                self._collect(self._sealing.popleft().result())
            self.resolve_groups()
            while self._sealing_groups:
                for blob in self._sealing_groups.popleft().result():
                    self._collect(blob)
        finally:
            self._flushing = False
        if len(self._builder):
            self._ship_last()
        while self._uploads:
            self._settle_upload()
        return self.stats

    def _ship_last(self) -> None:
        """Queue the last pack's upload in pieces, all at once: :data:`FINAL_PIECES` of at least
        :data:`FINAL_PIECE_BYTES`, or as many as keep each within about ``pack_size`` (one upload at a time)."""
        builder, self._builder = self._builder, PackBuilder()
        within = -(-builder.size // self.vault.config.pack_size)
        pieces = builder.split(max(within, min(self.final_pieces, builder.size // FINAL_PIECE_BYTES)))
        self._written_blobs += len(builder.entries)
        for piece in pieces:
            self._uploads.append(self._upload_pool.submit(self._upload, piece))

    def close(self) -> None:
        """Release the threads; blobs not flushed are abandoned (garbage for prune, never referenced)."""
        self._seal_pool.shutdown(wait=True, cancel_futures=True)
        self._upload_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
