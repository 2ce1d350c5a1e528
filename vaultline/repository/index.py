"""Index objects in storage, and the master index: which pack holds which blob.

Every pack's entries appear in at least one index object (``index/<blake3 of the stored bytes>``, encoded by
:mod:`vaultline.repository.index_codec`). The master index is their union, held as a :class:`CompactIndex` (34
bytes per blob) plus what this process added since it loaded.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import blake3

from vaultline.errors import IntegrityError
from vaultline.repository.compact_index import KEY_SIZE, CompactIndex, CompactIndexBuilder
from vaultline.repository.crypto import Cipher
from vaultline.repository.index_codec import IndexPacks, IndexTable, decode_index, decode_index_table, encode_index
from vaultline.repository.layout import INDEX_PREFIX, index_key
from vaultline.repository.packs import BlobEntry
from vaultline.storage import Storage

# Locations added by this process are kept as objects (about 300 bytes each) up to this many, then folded into a
# compact run; runs of similar size are merged, so lookups probe O(log n) runs.
RECENT_LIMIT = 50_000
# Index objects fetched and decoded ahead of the one being merged: bounds the decoded objects held at once.
LOAD_AHEAD = 16
T = TypeVar("T")

__all__ = [
    "BlobLocation",
    "DedupIndex",
    "MasterIndex",
    "decode_index",
    "encode_index",
    "iter_index_objects",
    "load_master_index",
    "write_index",
]


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """A blob's pack and its place in it."""

    pack_id: str
    entry: BlobEntry


class DedupIndex(Protocol):
    """What a worker asks of the index: is a blob stored, where, and is a pack indexed; and what it tells it: the
    packs it wrote. :class:`MasterIndex` (the whole index) and ``sharded_index.ShardedIndex`` (a consolidated
    generation fetched shard by shard) both answer it."""

    def __contains__(self, blob_id: bytes) -> bool: ...

    def get(self, blob_id: bytes) -> BlobLocation | None: ...

    def add_pack(self, pack_id: str, entries: list[BlobEntry]) -> None: ...

    def has_pack(self, pack_id: str) -> bool: ...


class _Packs(Mapping[str, list[BlobEntry]]):
    """The master index's packs: pack id -> entries in pack order. Entries of loaded packs carry the blob's
    16-byte key as ``id`` (compare ``id[:16]`` with a full id); read a pack's header for its full ids."""

    def __init__(self, index: MasterIndex) -> None:
        self._index = index

    def __getitem__(self, pack_id: str) -> list[BlobEntry]:
        recent = self._index._recent_packs.get(pack_id)
        if recent is not None:
            return recent
        for run in self._index._runs:
            entries = run.pack_entries(pack_id)
            if entries is not None:
                return entries
        raise KeyError(pack_id)

    def __contains__(self, pack_id: object) -> bool:
        if not isinstance(pack_id, str):
            return False
        return pack_id in self._index._recent_packs or any(run.has_pack(pack_id) for run in self._index._runs)

    def __iter__(self) -> Iterator[str]:
        for run in self._index._runs:
            yield from run.pack_ids()
        yield from list(self._index._recent_packs)

    def __len__(self) -> int:
        return sum(run.pack_count for run in self._index._runs) + len(self._index._recent_packs)


class MasterIndex:
    """All index objects of a vault merged: blob id -> location, pack id -> entries.

    Lookups take a full blob id and match its first 16 bytes; :meth:`get` returns an entry carrying the full id it
    was given, so a read decrypts and verifies against it.
    """

    def __init__(self, base: CompactIndex | None = None) -> None:
        self._runs: list[CompactIndex] = [base] if base is not None else []
        self._recent: dict[bytes, BlobLocation] = {}
        self._recent_packs: dict[str, list[BlobEntry]] = {}
        self._count = base.distinct if base is not None else 0
        self.index_ids: set[str] = set()
        self.packs: Mapping[str, list[BlobEntry]] = _Packs(self)

    def __contains__(self, blob_id: bytes) -> bool:
        key = blob_id[:KEY_SIZE]
        return key in self._recent or any(key in run for run in self._runs)

    def __len__(self) -> int:
        return self._count

    def get(self, blob_id: bytes) -> BlobLocation | None:
        for run in self._runs:
            found = run.get(blob_id)
            if found is not None:
                return BlobLocation(found[0], found[1])
        recent = self._recent.get(blob_id[:KEY_SIZE])
        if recent is None:
            return None
        e = recent.entry
        entry = BlobEntry(blob_id, e.type, e.compression, e.offset, e.stored_length, e.raw_length)
        return BlobLocation(recent.pack_id, entry)

    def has_pack(self, pack_id: str) -> bool:
        return pack_id in self.packs

    def add_pack(self, pack_id: str, entries: list[BlobEntry]) -> None:
        """Make a pack's blobs findable. First writer wins: a blob stored twice (two concurrent workers) is
        readable from either pack, and lookups return the location added first."""
        if pack_id in self.packs:
            return
        self._recent_packs[pack_id] = entries
        for entry in entries:
            key = entry.id[:KEY_SIZE]
            if key not in self:
                self._count += 1
                self._recent[key] = BlobLocation(pack_id, entry)
        if len(self._recent) >= RECENT_LIMIT:
            self._fold_recent()

    def _fold_recent(self) -> None:
        builder = CompactIndexBuilder()
        for pack_id, entries in self._recent_packs.items():
            builder.add_pack(pack_id, entries)
        self._runs.append(builder.finish())
        self._recent.clear()
        self._recent_packs.clear()
        # Merge the newest runs while the older is not much bigger (a binary counter): O(log n) runs, and each
        # location is rewritten O(log n) times. The loaded base (run 0) is never rewritten.
        while len(self._runs) > 2 and self._runs[-2].rows <= 2 * self._runs[-1].rows:
            newer, older = self._runs.pop(), self._runs.pop()
            merged = CompactIndexBuilder()
            for run in (older, newer):
                for pack_id, pack_entries in run.packs():
                    merged.add_pack(pack_id, pack_entries)
            self._runs.append(merged.finish())

    def blobs(self) -> Iterator[tuple[bytes, BlobLocation]]:
        """(16-byte key, location) of every blob once; the entries' ids are keys too."""
        for n, run in enumerate(self._runs):
            for key, pack_id, entry in run.locations():
                if not any(key in earlier for earlier in self._runs[:n]):
                    yield key, BlobLocation(pack_id, entry)
        for key, location in list(self._recent.items()):
            yield key, location

    def sorted_pack_ids(self) -> Iterator[str]:
        """Every indexed pack id once, in increasing order: the runs' sorted views merged, so nothing is copied."""
        streams = [run.sorted_pack_ids() for run in self._runs] + [iter(sorted(self._recent_packs))]
        previous = None
        for pack_id in heapq.merge(*streams):
            if pack_id != previous:
                yield pack_id
            previous = pack_id

    def nbytes(self) -> int:
        """Bytes held by the compact runs (the recent locations not counted)."""
        return sum(run.nbytes() for run in self._runs)


def write_index(storage: Storage, packs: IndexPacks, cipher: Cipher, version: int) -> str:
    """Store an index object of ``version`` (see ``index_codec.index_version``) for ``packs``; return its id."""
    index_id, stored = encode_index(packs, cipher, version)
    # Named by the hash of its bytes: if the key exists, these very bytes are there, so a create that finds it is
    # done (and never overwrites, which the vault account's bucket policy refuses anyway).
    storage.create(index_key(index_id), stored)
    return index_id


def iter_index_objects(storage: Storage, cipher: Cipher) -> Iterator[tuple[str, IndexPacks]]:
    """Every index object as (index id, its packs' entries), each checked against its name; read in parallel
    (latency, not CPU, dominates on S3) but at most ``LOAD_AHEAD`` ahead of the caller."""
    return _load_each(storage, lambda stored, what: decode_index(stored, cipher, what))


def iter_index_tables(
    storage: Storage, cipher: Cipher, index_ids: Collection[str] | None = None
) -> Iterator[tuple[str, IndexTable]]:
    """Every index object (or those of ``index_ids``) as (index id, its packed table), like
    :func:`iter_index_objects`."""
    return _load_each(storage, lambda stored, what: decode_index_table(stored, cipher, what), index_ids)


def list_index_ids(storage: Storage) -> list[str]:
    """The ids of every index object, in listing order."""
    return [obj.key[len(INDEX_PREFIX) :] for obj in storage.list(INDEX_PREFIX)]


def _load_each(
    storage: Storage, decode: Callable[[bytes, str], T], index_ids: Collection[str] | None = None
) -> Iterator[tuple[str, T]]:
    ids = list_index_ids(storage) if index_ids is None else list(index_ids)
    keys = [index_key(index_id) for index_id in ids]

    def load(key: str) -> tuple[str, T]:
        stored = storage.get(key)
        index_id = key[len(INDEX_PREFIX) :]
        if blake3.blake3(stored).hexdigest() != index_id:
            raise IntegrityError(f"{storage.url}: {key} does not hash to its name (corrupt index); run check")
        return index_id, decode(stored, f"{storage.url}: {key}")

    with ThreadPoolExecutor(max_workers=LOAD_AHEAD) as pool:
        ahead: deque[Future[tuple[str, T]]] = deque()
        for key in keys:
            ahead.append(pool.submit(load, key))
            if len(ahead) >= LOAD_AHEAD:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


def load_master_index(storage: Storage, cipher: Cipher, index_ids: Collection[str] | None = None) -> MasterIndex:
    """Read every index object (or those of ``index_ids``) into one compact lookup table."""
    builder = CompactIndexBuilder()
    loaded = set()
    for index_id, table in iter_index_tables(storage, cipher, index_ids):
        loaded.add(index_id)
        builder.add_table(table, f"{storage.url}: {index_key(index_id)}")
    index = MasterIndex(builder.finish())
    index.index_ids = loaded
    return index
