"""The bounded pieces that prune, check and stats share to walk a vault without holding its index.

* :class:`RunWriter` marks blob ids (or any fixed-width records that start with one) into sorted, distinct runs
  per partition (the first ``bits`` bits of the id), buffering at most ``FLUSH_RECORDS`` records before it writes
  them to a staging area; :meth:`RunWriter.partition` streams one partition back, sorted and distinct, from the
  runs it wrote and what it still buffers (a walk small enough never to flush writes nothing).
* :func:`stored_packs` lists the packs in storage; :class:`StoredPacks` holds that listing as 40 bytes a pack,
  bisectable, with one bit a pack to note which an index lists.
* :func:`walk_indexed_packs` streams every index object once (one at a time, a few ahead) and yields each indexed
  pack once with its entries and its stored size, noting which indexed packs are missing and, afterwards, which
  stored packs no index lists.
* :func:`enumerate_partitions` hands on a writer's marked ids partition by partition, in key order, so that a
  ``sharded_index.SortedLocator`` locates them in one pass over the index's shards, never the whole index.

Staging is a :class:`~vaultline.operations.prune_records.Staging`: a run's prefix in the vault, or for a check
or stats in one process, a scratch directory (:func:`scratch_staging`) so that a read-only copy of a vault can be
checked.
"""

from __future__ import annotations

import bisect
import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from vaultline.operations import prune_records as rec
from vaultline.repository.index import iter_index_objects
from vaultline.repository.layout import DATA_PREFIX, pack_id_of_key
from vaultline.repository.packs import BlobEntry
from vaultline.repository.vault import Vault
from vaultline.storage import LocalStorage, Storage

FLUSH_RECORDS = 1 << 19  # records a writer buffers before writing its runs (16 MiB of 32-byte ids)
# Partitions of a check's or stats' marks: one partition's runs are loaded at once, 1/256 of what was marked.
MARK_BITS = 8


class RunWriter:
    """Buffers records per partition and writes them as sorted, distinct runs ``<folder>/<pp>/<stem>-<seq>``.

    The buffers are bytes (``size`` bytes a record, no object per record): what a writer holds before it flushes
    is ``FLUSH_RECORDS * size`` bytes, the records turned into objects one partition at a time."""

    def __init__(self, staging: rec.Staging, folder: str, bits: int, stem: str, seq: int = 0, size: int = rec.ID):
        """``seq``: the runs this writer's earlier invocations wrote (a looping item goes on numbering them)."""
        self.staging, self.folder, self.bits, self.stem, self.size = staging, folder, bits, stem, size
        self.buffers: dict[int, bytearray] = {}
        self.count = 0
        self.seq = seq
        self.reads = 0  # runs read back

    def add(self, record: bytes) -> None:
        partition = record[0] >> (8 - self.bits) if self.bits else 0  # rec.partition_of, inlined: once a chunk
        buffer = self.buffers.get(partition)
        if buffer is None:
            buffer = self.buffers[partition] = bytearray()
        buffer += record
        self.count += 1

    def full(self) -> bool:
        return self.count >= FLUSH_RECORDS

    def flush(self) -> None:
        """Write what is buffered as one run per partition (nothing if nothing is buffered)."""
        if not self.count:
            return
        for partition in sorted(self.buffers):
            name = f"{self.folder}/{rec.partition_name(partition)}/{self.stem}-{self.seq:04d}"
            self.staging.put_bytes(name, self._sorted(partition))
        self.buffers.clear()
        self.count = 0
        self.seq += 1

    def _sorted(self, partition: int) -> bytes:
        return b"".join(sorted(set(rec.fixed(bytes(self.buffers.get(partition, b"")), self.size))))

    def partitions(self) -> int:
        return 1 << self.bits

    def partition(self, partition: int) -> Iterator[bytes]:
        """The records of one partition, sorted and distinct: its written runs merged with what is buffered."""
        files = []
        if self.seq:  # listed only when something was written: a small walk costs no request
            for name in self.staging.names(f"{self.folder}/{rec.partition_name(partition)}/"):
                files.append(self.staging.get_bytes(name))
                self.reads += 1
        files.append(self._sorted(partition))
        return rec.merged(files, self.size)


def enumerate_partitions(writer: RunWriter, start: int = 0) -> Iterator[tuple[int, Iterator[bytes]]]:
    """Each partition from ``start`` on with its records, sorted and distinct: walked in this order, the ids of
    all partitions are in increasing order, as a ``sharded_index.SortedLocator`` takes them (one pass over the
    shards); consume each partition's stream before taking the next."""
    for partition in range(start, writer.partitions()):
        yield partition, writer.partition(partition)


def stored_packs(storage: Storage) -> Iterator[tuple[str, int]]:
    """(pack id, size) of every pack in storage, in listing (pack id) order."""
    for obj in storage.list(DATA_PREFIX):
        pack_id = pack_id_of_key(obj.key)
        if pack_id:
            yield pack_id, obj.size


class StoredPacks:
    """The packs in storage as sorted ``STORED_PACK`` records (40 bytes a pack), and which of them an index
    lists (one bit a pack)."""

    def __init__(self, listing: bytes) -> None:
        self.listing = rec.SortedIds(listing, rec.STORED_PACK.size)
        self.indexed = bytearray((len(self.listing) + 7) // 8)
        self.bytes = sum(size for _, size in self)

    @classmethod
    def list(cls, storage: Storage) -> StoredPacks:
        return cls(b"".join(rec.STORED_PACK.pack(bytes.fromhex(p), size) for p, size in stored_packs(storage)))

    def __len__(self) -> int:
        return len(self.listing)

    def __iter__(self) -> Iterator[tuple[bytes, int]]:
        data = self.listing.data
        for at in range(0, len(data), rec.STORED_PACK.size):
            yield rec.STORED_PACK.unpack_from(data, at)

    def find(self, pack: bytes) -> int | None:
        """The position of ``pack`` in the listing, or None if it is not stored."""
        i = bisect.bisect_left(self.listing, pack)
        return i if i < len(self.listing) and self.listing[i] == pack else None

    def size(self, position: int) -> int:
        return int(rec.STORED_PACK.unpack_from(self.listing.data, position * rec.STORED_PACK.size)[1])

    def mark(self, position: int) -> bool:
        """Note that an index lists the pack at ``position``; False if one had already."""
        byte, bit = divmod(position, 8)
        if self.indexed[byte] >> bit & 1:
            return False
        self.indexed[byte] |= 1 << bit
        return True

    def unindexed(self) -> Iterator[tuple[str, int]]:
        """(pack id, size) of the stored packs no index lists (once the walk is over), in pack id order."""
        for position, (pack, size) in enumerate(self):
            if not self.indexed[position // 8] >> (position % 8) & 1:
                yield pack.hex(), size


@dataclass
class IndexWalk:
    """What :func:`walk_indexed_packs` found besides the packs it yields."""

    stored: StoredPacks
    index_objects: int = 0
    packs: int = 0
    entries: int = 0
    missing: set[str] = field(default_factory=set)


def walk_indexed_packs(vault: Vault, walk: IndexWalk) -> Iterator[tuple[str, list[BlobEntry], int]]:
    """Each stored pack an index object lists, once, with the entries of the first index object listing it (ids
    are full blob ids) and its stored size; an indexed pack missing from storage goes to ``walk.missing``
    instead. Raises what reading an index object raises (IntegrityError for a corrupt one)."""
    for _, packs in iter_index_objects(vault.storage, vault.cipher):
        walk.index_objects += 1
        for pack_id, entries in packs:
            position = walk.stored.find(bytes.fromhex(pack_id))
            if position is None:
                if pack_id not in walk.missing:
                    walk.missing.add(pack_id)
                    walk.packs += 1
                continue
            if walk.stored.mark(position):
                walk.packs += 1
                walk.entries += len(entries)
                yield pack_id, entries, walk.stored.size(position)


@contextlib.contextmanager
def scratch_staging(vault: Vault, run_id: str) -> Iterator[rec.Staging]:
    """A staging area in a temporary directory (sealed with the vault's cipher like a run's), deleted on exit:
    what a check or stats in one process spills, off the vault."""
    with tempfile.TemporaryDirectory(prefix="vaultline-") as root:
        yield rec.Staging(vault, run_id, storage=LocalStorage(root))
