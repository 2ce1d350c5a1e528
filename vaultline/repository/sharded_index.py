"""The dedup index that scales: a consolidated generation fetched shard by shard, behind a filter.

A worker opens the index with :func:`open_dedup_index`. Without a valid catalog that is the whole index, as
before (:func:`load_master_index`). With one (docs/vault-format.md, section 9.5) it holds only

* the **recent** index objects (written after the catalog's generation) whole, as a compact index: 34 bytes per
  blob, bounded by how often compaction runs (a generation a day: one day's new blobs);
* the generation's **filter**: 2 bytes per blob of the generation (60 MB at 30 million), answering most
  "is it stored?" questions for new chunks with "certainly not" (false positives about n / 2^32);
* an LRU cache of fetched **shards**, bounded in bytes (``CACHE_BYTES``), and the generation's pack table (32 bytes
  per pack) once a location is asked for.

A lookup asks the recent index, then the filter, then the key's shard (fetched and verified on first use). What a
worker holds is thus about 2 bytes per blob of the vault plus what the recent objects need, never the whole index.

:func:`compact` writes a new generation from every index object (its rows sorted in bounded pieces, spilled to
temporary files past 64 MiB) under a shared vault lock; :func:`invalidate_catalog` retires generations, under
prune's exclusive lock, before prune deletes any index object or pack.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import blake3

from vaultline.errors import IntegrityError, ObjectMissing
from vaultline.repository.compact_index import KEY_SIZE, ROW_HEAD, ROW_SIZE, ROW_TAIL
from vaultline.repository.compression import decompress_document
from vaultline.repository.crypto import Cipher
from vaultline.repository.index import BlobLocation, DedupIndex, MasterIndex, iter_index_tables, list_index_ids
from vaultline.repository.index import load_master_index as load_whole_index
from vaultline.repository.index_shards import (
    PACK_ID_BYTES,
    FilterBuilder,
    IndexCatalog,
    KeyFilter,
    ObjectRef,
    decode_catalog,
    decode_packs,
    decode_shard,
    encode_catalog,
    encode_packs,
    encode_shard,
    open_object,
    seal_object,
    shard_bits_for,
    shard_of,
)
from vaultline.repository.layout import (
    CATALOG_PREFIX,
    GENERATION_PREFIX,
    catalog_key,
    generation_filter_key,
    generation_packs_key,
    index_key,
    shard_key,
)
from vaultline.repository.packs import BlobEntry
from vaultline.repository.spilled_rows import DEFAULT_MEMORY_BUDGET, SpilledRows
from vaultline.storage import Storage

# Shards a worker keeps: 64 MiB is some 60 shards of ~1 MiB, the working set of a batch's cross-object dedup.
CACHE_BYTES = 64 * 1024 * 1024
# Generation objects written in parallel by compaction (latency, not CPU, bounds a PUT on S3).
WRITE_THREADS = 8


@dataclass
class LookupCounters:
    """What a sharded lookup did, for benchmarks and logs."""

    lookups: int = 0
    recent_hits: int = 0
    filter_negatives: int = 0
    shard_gets: int = 0
    shard_bytes: int = 0
    cache_hits: int = 0


class _ShardCache:
    """Decoded shards by number, least recently used first, bounded in bytes; safe to share between threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._shards: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, number: int) -> bytes | None:
        with self._lock:
            rows = self._shards.get(number)
            if rows is not None:
                self._shards.move_to_end(number)
            return rows

    def put(self, number: int, rows: bytes) -> None:
        with self._lock:
            if number in self._shards:
                return
            self._shards[number] = rows
            self.size += len(rows)
            while self.size > self.limit and len(self._shards) > 1:
                _, evicted = self._shards.popitem(last=False)
                self.size -= len(evicted)


class ShardedIndex:
    """A :class:`DedupIndex` over a consolidated generation plus the recent index objects (module docstring)."""

    def __init__(
        self,
        storage: Storage,
        cipher: Cipher,
        catalog: IndexCatalog,
        key_filter: KeyFilter,
        recent: MasterIndex,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self.storage = storage
        self.cipher = cipher
        self.catalog = catalog
        self.filter = key_filter
        self.recent = recent
        self.counters = LookupCounters()
        self._cache = _ShardCache(cache_bytes)
        self._pack_table: bytes | None = None
        self._pack_order: list[bytes] | None = None
        self._pack_lock = threading.Lock()

    @property
    def index_ids(self) -> set[str]:
        return set(self.catalog.index_objects) | self.recent.index_ids

    def __len__(self) -> int:
        """Blobs of the generation plus those of the recent objects (a blob in both counts twice)."""
        return self.catalog.blobs + len(self.recent)

    def __contains__(self, blob_id: bytes) -> bool:
        return self._find(blob_id[:KEY_SIZE]) is not None

    def get(self, blob_id: bytes) -> BlobLocation | None:
        key = blob_id[:KEY_SIZE]
        found = self._find(key)
        if found is None:
            return None
        if isinstance(found, BlobLocation):
            e = found.entry
            return BlobLocation(
                found.pack_id, BlobEntry(blob_id, e.type, e.compression, e.offset, e.stored_length, e.raw_length)
            )
        rows, at = found
        return self.row_location(rows, at, blob_id)

    def row_location(self, rows: bytes, at: int, blob_id: bytes) -> BlobLocation:
        """The location a generation row at ``at`` of ``rows`` gives, its entry carrying ``blob_id``."""
        _, pack = ROW_HEAD.unpack_from(rows, at)
        offset, stored, raw, blob_type, compression = ROW_TAIL.unpack_from(rows, at + ROW_HEAD.size)
        table = self.pack_table()
        pack_id = table[pack * PACK_ID_BYTES : (pack + 1) * PACK_ID_BYTES].hex()
        return BlobLocation(pack_id, BlobEntry(blob_id, blob_type, compression, offset, stored, raw))

    def _find(self, key: bytes) -> BlobLocation | tuple[bytes, int] | None:
        """The recent location of ``key``, or (shard rows, row offset) of its first generation row, or None."""
        counters = self.counters
        counters.lookups += 1
        recent = self.recent.get(key)
        if recent is not None:
            counters.recent_hits += 1
            return recent
        if not self.filter.might_contain(key):
            counters.filter_negatives += 1
            return None
        rows = self.shard(shard_of(key, self.catalog.shard_bits))
        i = bisect.bisect_left(_Keys(rows), key)
        at = i * ROW_SIZE
        return (rows, at) if rows[at : at + KEY_SIZE] == key else None

    def shard_of(self, blob_id: bytes) -> int:
        return shard_of(blob_id[:KEY_SIZE], self.catalog.shard_bits)

    def shard(self, number: int) -> bytes:
        """A shard's sorted rows, from the cache or fetched and verified."""
        rows = self._cache.get(number)
        if rows is not None:
            self.counters.cache_hits += 1
            return rows
        rows = self.fetch_shard(number)
        self._cache.put(number, rows)
        return rows

    def fetch_shard(self, number: int) -> bytes:
        """A shard's sorted rows fetched and verified, past the cache (a walk in key order needs each once)."""
        ref = self.catalog.shards[number]
        key = shard_key(self.catalog.generation, number)
        what = f"{self.storage.url}: {key}"
        stored = self._get(key)
        self.counters.shard_gets += 1
        self.counters.shard_bytes += len(stored)
        body = open_object(stored, key, self.cipher, what, ref.hash)
        return decode_shard(body, self.catalog.shard_bits, number, self.catalog.packs.count, what)

    def _get(self, key: str) -> bytes:
        try:
            return self.storage.get(key)
        except ObjectMissing:
            raise IntegrityError(
                f"{self.storage.url}: {key} of the index catalog {self.catalog.generation} is missing; "
                "run `vaultline index compact` (or prune) to replace the catalog"
            ) from None

    def pack_table(self) -> bytes:
        """The generation's pack ids (32 bytes each, by pack number), fetched on first use."""
        with self._pack_lock:
            if self._pack_table is None:
                key = generation_packs_key(self.catalog.generation)
                what = f"{self.storage.url}: {key}"
                body = open_object(self._get(key), key, self.cipher, what, self.catalog.packs.hash)
                table = decode_packs(body, what)
                if len(table) // PACK_ID_BYTES != self.catalog.packs.count:
                    raise IntegrityError(
                        f"{what}: {len(table) // PACK_ID_BYTES} packs, its catalog says {self.catalog.packs.count}"
                    )
                self._pack_table = table
            return self._pack_table

    def has_pack(self, pack_id: str) -> bool:
        if self.recent.has_pack(pack_id):
            return True
        if self._pack_order is None:
            table = self.pack_table()
            self._pack_order = sorted(table[at : at + PACK_ID_BYTES] for at in range(0, len(table), PACK_ID_BYTES))
        try:
            wanted = bytes.fromhex(pack_id)
        except ValueError:
            return False
        i = bisect.bisect_left(self._pack_order, wanted)
        return i < len(self._pack_order) and self._pack_order[i] == wanted

    def add_pack(self, pack_id: str, entries: list[BlobEntry]) -> None:
        self.recent.add_pack(pack_id, entries)

    def nbytes(self) -> int:
        """Bytes held: the filter, the recent compact index, the cached shards and the pack table if loaded."""
        return self.filter.nbytes() + self.recent.nbytes() + self._cache.size + len(self._pack_table or b"")


class SortedLocator:
    """Locates blob ids given in increasing order, as :meth:`DedupIndex.get` would, in one pass over the index:
    over a :class:`ShardedIndex` it holds one shard at a time and fetches each shard it needs once, whatever the
    number of ids (what check and stats walk the live blobs with); any other index is asked id by id. Successive
    :meth:`locate` calls must go on in increasing order too (the shard in hand is kept between them)."""

    def __init__(self, index: DedupIndex) -> None:
        self.index = index
        self.fetches = 0  # shards fetched
        self.located = 0  # ids located
        self._number = -1
        self._rows = b""
        self._offsets: dict[bytes, int] = {}  # the shard in hand: key -> offset of its first row

    def locate(self, blob_ids: Iterable[bytes]) -> Iterator[tuple[bytes, BlobLocation | None]]:
        """Each of ``blob_ids`` (in increasing order) with its location, or None if it is in no index."""
        for blob_id in blob_ids:
            yield blob_id, self.get(blob_id)

    def get(self, blob_id: bytes) -> BlobLocation | None:
        """The location of ``blob_id``, which must not be below the id asked before."""
        found = self._find(blob_id)
        if found is None or isinstance(found, BlobLocation):
            return found
        assert isinstance(self.index, ShardedIndex)  # _find gives a row of the shard in hand only there
        return self.index.row_location(self._rows, found, blob_id)

    def __contains__(self, blob_id: bytes) -> bool:
        """Whether ``blob_id`` (not below the id asked before) is indexed; builds no location."""
        return self._find(blob_id) is not None

    def _find(self, blob_id: bytes) -> BlobLocation | int | None:
        """A location (of any index but a sharded one's generation), the offset of ``blob_id``'s row in the shard
        in hand, or None."""
        self.located += 1
        index = self.index
        if not isinstance(index, ShardedIndex):
            return index.get(blob_id)
        recent = index.recent.get(blob_id)
        if recent is not None:
            return recent
        key = blob_id[:KEY_SIZE]
        if not index.filter.might_contain(key):
            return None
        number = shard_of(key, index.catalog.shard_bits)
        if number != self._number:
            self._number, self._rows = number, index.fetch_shard(number)
            rows = self._rows
            # A dict per shard (built last row first, so a key's first row wins): a lookup is one probe, where a
            # bisection was some 15 Python-level slices of the rows (2.5 against 0.45 us an id on a 30,000-row shard).
            self._offsets = {rows[at : at + KEY_SIZE]: at for at in range(len(rows) - ROW_SIZE, -1, -ROW_SIZE)}
            self.fetches += 1
        return self._offsets.get(key)


class _Keys:
    """The keys of sorted rows, for bisection."""

    __slots__ = ("rows",)

    def __init__(self, rows: bytes) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows) // ROW_SIZE

    def __getitem__(self, i: int) -> bytes:
        at = i * ROW_SIZE
        return self.rows[at : at + KEY_SIZE]


# --- opening ----------------------------------------------------------------------------------------------------


def list_generations(storage: Storage) -> list[str]:
    """Every generation that has a catalog, oldest first (generation ids sort by their creation time)."""
    return sorted(obj.key[len(CATALOG_PREFIX) :] for obj in storage.list(CATALOG_PREFIX))


def load_catalog(storage: Storage, cipher: Cipher, generation: str) -> IndexCatalog:
    key = catalog_key(generation)
    what = f"{storage.url}: {key}"
    catalog = decode_catalog(open_object(storage.get(key), key, cipher, what), what)
    if catalog.generation != generation:
        raise IntegrityError(f"{what}: names generation {catalog.generation}")
    return catalog


def current_catalog(
    storage: Storage, cipher: Cipher, index_ids: set[str], generations: list[str] | None = None
) -> IndexCatalog | None:
    """The newest catalog whose consolidated index objects all still exist, or None. ``generations``: what
    :func:`list_generations` answered, when the caller listed them already.

    A catalog is *stale* once any index object it consolidates is gone: prune replaces every index object that
    lists a pack before it deletes the pack, so a catalog whose index objects all exist names only packs that
    exist, whoever pruned (even a build that knows nothing of catalogs).
    """
    for generation in reversed(list_generations(storage) if generations is None else generations):
        try:
            catalog = load_catalog(storage, cipher, generation)
        except ObjectMissing:
            continue  # retired between the listing and the read
        if index_ids.issuperset(catalog.index_objects):
            return catalog
    return None


def open_dedup_index(storage: Storage, cipher: Cipher, cache_bytes: int = CACHE_BYTES) -> DedupIndex:
    """The index a worker uses: sharded if the vault has a valid catalog, else the whole index."""
    # The two listings are independent, and each is a round trip in front of a worker's first lookup: made
    # together. Whichever answers first, a catalog is used only if every index object it consolidates was listed
    # (current_catalog), as when they were made one after the other.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vl-index-list") as pool:
        generations = pool.submit(list_generations, storage)
        index_ids = list_index_ids(storage)
        catalog = current_catalog(storage, cipher, set(index_ids), generations.result())
    if catalog is None:
        return load_whole_index(storage, cipher, index_ids)
    consolidated = set(catalog.index_objects)
    recent = load_whole_index(storage, cipher, [i for i in index_ids if i not in consolidated])
    return ShardedIndex(storage, cipher, catalog, _load_filter(storage, cipher, catalog), recent, cache_bytes)


def _load_filter(storage: Storage, cipher: Cipher, catalog: IndexCatalog) -> KeyFilter:
    """The generation's filter. Its stored bytes are dropped once opened: at 30 million blobs each copy is 60 MB of
    a worker's peak (stored and decompressed, then decompressed and the array)."""
    key = generation_filter_key(catalog.generation)
    what = f"{storage.url}: {key}"
    try:
        stored = storage.get(key)
    except ObjectMissing:
        raise IntegrityError(f"{what} of the index catalog is missing; run `vaultline index compact`") from None
    if blake3.blake3(stored).hexdigest() != catalog.filter.hash:
        raise IntegrityError(f"{what}: content does not hash to what its catalog records")
    plain = cipher.open(stored, key.encode(), what)
    del stored
    body = decompress_document(plain, what)
    del plain
    key_filter = KeyFilter.decode(body, what)
    if key_filter.keys != catalog.filter.count:
        raise IntegrityError(f"{what}: {key_filter.keys} keys, its catalog says {catalog.filter.count}")
    return key_filter


# --- compaction and retirement ----------------------------------------------------------------------------------


@dataclass
class CompactionResult:
    """What :func:`compact` wrote."""

    generation: str | None = None
    index_objects: int = 0
    blobs: int = 0
    rows: int = 0
    packs: int = 0
    shards: int = 0
    bytes_written: int = 0
    filter_seconds: float = 0.0
    up_to_date: bool = False
    superseded: list[str] = field(default_factory=list)


def new_generation_id(now: datetime | None = None, after: str | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ-xxxxxxxx``, unique by 32 random bits, and sorting after ``after`` (the newest existing
    generation): its time is the later of now and a second after ``after``'s, so a second compaction within the
    same second, or on a host whose clock is behind, still writes the newer generation."""
    moment = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    if after is not None:
        moment = max(moment, datetime.strptime(after[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) + timedelta(seconds=1))
    return f"{moment:%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"


def _shards(ranges: Iterator[bytes], bits: int) -> Iterator[bytes]:
    """Each of the ``1 << bits`` shards' sorted rows in shard order, from sorted runs of rows that follow one another
    in key order (a run may hold many shards, or a part of one)."""
    last = (1 << bits) - 1
    number, pending = 0, bytearray()
    for run in ranges:
        keys = _Keys(run)
        start = 0
        while number < last:
            bound = ((number + 1) << (16 - bits)).to_bytes(2, "big")
            end = bisect.bisect_left(keys, bound, lo=start)
            pending += run[start * ROW_SIZE : end * ROW_SIZE]
            if end == len(keys):
                break
            yield bytes(pending)
            number, pending, start = number + 1, bytearray(), end
        if number == last:
            pending += run[start * ROW_SIZE :]
    yield bytes(pending)
    for _ in range(number, last):
        yield b""


def compact(
    storage: Storage,
    cipher: Cipher,
    now: datetime | None = None,
    force: bool = False,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> CompactionResult:
    """Write a new generation consolidating every index object, catalog last; call it under a shared vault lock
    (so no prune deletes what it consolidates while it runs). Nothing is deleted: superseded generations are
    retired by :func:`invalidate_catalog` under prune's exclusive lock, so a worker that opened one keeps finding
    its shards. Skipped (``up_to_date``) when the current catalog consolidates every index object already.

    Memory: the pack table (about 150 bytes per pack), the filter being built (2 bytes per row), and the rows in
    bounded pieces (:class:`SpilledRows`: 64 MiB in memory, the rest in temporary files, one sixty-fourth of them
    sorted at a time): about 14 bytes a row over some 90 MiB fixed (bench/scale_bench.py's index table).
    """
    result = CompactionResult()
    index_ids = list_index_ids(storage)
    current = current_catalog(storage, cipher, set(index_ids))
    if current is not None and not force and set(current.index_objects) == set(index_ids):
        result.up_to_date = True
        result.generation = current.generation
        return result
    result.superseded = list_generations(storage)
    with SpilledRows(memory_budget) as rows:
        for index_id, table in iter_index_tables(storage, cipher, index_ids):
            rows.add_table(table, f"{storage.url}: {index_key(index_id)}")
        generation = new_generation_id(now, result.superseded[-1] if result.superseded else None)
        result.generation, result.index_objects = generation, len(index_ids)
        result.rows, result.packs = rows.rows, rows.pack_count
        bits = shard_bits_for(rows.rows)
        result.shards = 1 << bits

        def put(key: str, body: bytes) -> ObjectRef:
            stored = seal_object(body, key, cipher)
            storage.put(key, stored)
            result.bytes_written += len(stored)
            return ObjectRef(hash=blake3.blake3(stored).hexdigest(), count=0)

        packs_ref = put(generation_packs_key(generation), encode_packs(rows.pack_table))
        packs_ref = ObjectRef(hash=packs_ref.hash, count=rows.pack_count)
        filter_builder = FilterBuilder()
        filter_clock = 0.0
        shard_refs: list[ObjectRef] = []
        with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
            pending = []
            for n, shard_rows in enumerate(_shards(rows.sorted_ranges(), bits)):
                started = time.perf_counter()
                filter_builder.add_rows(shard_rows)
                filter_clock += time.perf_counter() - started
                count = len(shard_rows) // ROW_SIZE
                pending.append((pool.submit(put, shard_key(generation, n), encode_shard(bits, n, shard_rows)), count))
                if len(pending) >= 2 * WRITE_THREADS:
                    future, count = pending.pop(0)
                    shard_refs.append(ObjectRef(hash=future.result().hash, count=count))
            for future, count in pending:
                shard_refs.append(ObjectRef(hash=future.result().hash, count=count))
        result.blobs = rows.distinct
    started = time.perf_counter()
    filter_body = filter_builder.finish()
    result.filter_seconds = round(filter_clock + time.perf_counter() - started, 3)
    filter_ref = put(generation_filter_key(generation), filter_body)
    filter_ref = ObjectRef(hash=filter_ref.hash, count=result.rows)
    del filter_body
    catalog = IndexCatalog(
        generation=generation,
        created=(now or datetime.now(UTC)).astimezone(UTC),
        index_objects=sorted(index_ids),
        blobs=result.blobs,
        packs=packs_ref,
        shard_bits=bits,
        shards=shard_refs,
        filter=filter_ref,
    )
    # Last: until the catalog exists its objects are unreferenced leftovers, which invalidate_catalog deletes.
    key = catalog_key(generation)
    stored = seal_object(encode_catalog(catalog), key, cipher)
    storage.put(key, stored)
    result.bytes_written += len(stored)
    return result


def invalidate_catalog(storage: Storage, cipher: Cipher, keep_current: bool = False) -> list[str]:
    """Retire index generations: delete every catalog (or, with ``keep_current``, every one but the newest valid
    one), each before its objects, then every generation object no remaining catalog names. Return the retired
    generations.

    Call it under the exclusive vault lock (no worker is using a generation then), and in prune before deleting any
    index object or pack, with ``keep_current`` only when the prune deletes neither: a catalog whose shards name a
    deleted pack must not outlive the pack.
    """
    kept: str | None = None
    if keep_current:
        current = current_catalog(storage, cipher, set(list_index_ids(storage)))
        kept = current.generation if current is not None else None
    retired = [g for g in list_generations(storage) if g != kept]
    for generation in retired:
        storage.delete(catalog_key(generation))
    for obj in list(storage.list(GENERATION_PREFIX)):
        if kept is None or not obj.key.startswith(f"{GENERATION_PREFIX}{kept}/"):
            storage.delete(obj.key)
    return retired
