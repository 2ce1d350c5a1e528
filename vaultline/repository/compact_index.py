"""A whole index held compactly: fixed-width rows in sorted buffers, looked up by bisection.

Each blob location is one 34-byte row, ``key[16] | pack u32 (big-endian, so rows of one key order by pack) |
offset u32 | stored u32 | raw u32 | type u8 | compression u8`` (little-endian, the tail of a version 2 index
record, so a record becomes a row by slicing). ``key`` is the first 16 bytes
of the blob id: a 128-bit prefix of a keyed BLAKE3 hash, as kopia's content ids are 128-bit. Two chunks of one vault
share a key with probability about n^2 / 2^129 (below 1e-24 at 30 million chunks), and even then nothing wrong is
restored: a blob read by its full id is decrypted with the full id as associated data and checked against it
(``Vault.decode_blob``).

Rows sit in 4,096 buckets by the key's first 12 bits, each bucket one buffer sorted by row, so a lookup bisects
a few thousand rows at 30 million chunks. Packs are a table of 32-byte ids in the order they were added,
with a sorted permutation for lookups by id. The rows of each pack (for :meth:`CompactIndex.pack_entries`) are a
second permutation built on first use. Held: 34 bytes per blob, 4 more once per-pack entries are asked for, and 36
per pack; building needs one bucket's rows as Python objects at a time on top of that.
"""

from __future__ import annotations

import bisect
import struct
from array import array
from collections.abc import Iterable, Iterator

from vaultline.errors import IntegrityError
from vaultline.repository.index_codec import V2_RECORD, IndexTable
from vaultline.repository.packs import BlobEntry

KEY_SIZE = 16
ROW_HEAD = struct.Struct(f">{KEY_SIZE}sI")  # key, pack number
ROW_TAIL = struct.Struct("<IIIBB")  # offset, stored, raw, type, compression: bytes 36..50 of a V2_RECORD
ROW_SIZE = ROW_HEAD.size + ROW_TAIL.size
_RECORD_PACK = slice(32, 36)
_RECORD_TAIL = slice(36, 50)
_PACK_BYTES = 32
# Rows sit in 4,096 buckets by the key's first 12 bits: a few thousand rows (some 100 KiB) each at 30 million blobs,
# so a bucket's sort needs little beside it, and few enough buckets that their per-object overheads do not count.
BUCKET_BITS = 12
_BUCKETS = 1 << BUCKET_BITS


def _bucket(key: bytes) -> int:
    return (key[0] << 4) | (key[1] >> 4)


class _Sorted:
    """A bisectable view of fixed-width records: item i is the first ``width`` bytes of record i."""

    __slots__ = ("data", "size", "width")

    def __init__(self, data: bytes | bytearray, size: int, width: int) -> None:
        self.data, self.size, self.width = data, size, width

    def __len__(self) -> int:
        return len(self.data) // self.size

    def __getitem__(self, i: int) -> bytes | bytearray:
        at = i * self.size
        return self.data[at : at + self.width]


class _PermutedPacks:
    """Pack ids (32-byte records) seen through a sorted permutation, for bisection."""

    __slots__ = ("order", "table")

    def __init__(self, table: bytes, order: array[int]) -> None:
        self.table, self.order = table, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, i: int) -> bytes:
        at = self.order[i] * _PACK_BYTES
        return self.table[at : at + _PACK_BYTES]


class CompactIndex:
    """An immutable whole index: blob key -> first location, and pack -> its entries. Build it with
    :class:`CompactIndexBuilder`."""

    def __init__(self, buckets: list[bytearray], pack_table: bytes, distinct: int) -> None:
        self._buckets = buckets
        self._pack_table = pack_table
        self.pack_count = len(pack_table) // _PACK_BYTES
        order = array("I", sorted(range(self.pack_count), key=lambda i: pack_table[i * 32 : i * 32 + 32]))
        self._packs_sorted = _PermutedPacks(pack_table, order)
        self.rows = sum(len(b) for b in buckets) // ROW_SIZE
        self.distinct = distinct
        self._pack_rows: array[int] | None = None
        self._pack_first: array[int] | None = None
        self._bucket_starts = array("I", [0])
        for data in buckets:
            self._bucket_starts.append(self._bucket_starts[-1] + len(data) // ROW_SIZE)

    @property
    def pack_table(self) -> bytes:
        """The raw pack ids (32 bytes each) in pack-number order."""
        return self._pack_table

    def bucket_rows(self, bucket: int) -> bytes | bytearray:
        """The sorted rows of one of the 4,096 buckets (keys whose first 12 bits are ``bucket``)."""
        return self._buckets[bucket]

    def nbytes(self) -> int:
        """Bytes held by the buffers (what the index costs in memory, less the interpreter's small overheads)."""
        rows = sum(len(b) for b in self._buckets)
        csr = 4 * (len(self._pack_rows) + len(self._pack_first or ())) if self._pack_rows is not None else 0
        return rows + len(self._pack_table) + 4 * len(self._packs_sorted.order) + csr

    def _find(self, key: bytes) -> tuple[int, int] | None:
        """(bucket, row offset) of the first row with ``key``, or None."""
        b = _bucket(key)
        data = self._buckets[b]
        i = bisect.bisect_left(_Sorted(data, ROW_SIZE, KEY_SIZE), key)
        at = i * ROW_SIZE
        if data[at : at + KEY_SIZE] == key:
            return b, at
        return None

    def __contains__(self, blob_id: bytes) -> bool:
        return self._find(blob_id[:KEY_SIZE]) is not None

    def get(self, blob_id: bytes) -> tuple[str, BlobEntry] | None:
        """(pack id, entry) of the first location of ``blob_id``; the entry carries ``blob_id`` as given."""
        found = self._find(blob_id[:KEY_SIZE])
        if found is None:
            return None
        b, at = found
        return self._location(self._buckets[b], at, blob_id)

    def _location(self, data: bytes | bytearray, at: int, blob_id: bytes | None = None) -> tuple[str, BlobEntry]:
        key, pack = ROW_HEAD.unpack_from(data, at)
        offset, stored, raw, blob_type, compression = ROW_TAIL.unpack_from(data, at + ROW_HEAD.size)
        pack_id = self._pack_table[pack * _PACK_BYTES : (pack + 1) * _PACK_BYTES].hex()
        return pack_id, BlobEntry(blob_id or key, blob_type, compression, offset, stored, raw)

    def _pack_number(self, pack_id: str) -> int | None:
        try:
            wanted = bytes.fromhex(pack_id)
        except ValueError:
            return None
        i = bisect.bisect_left(self._packs_sorted, wanted)
        if i < len(self._packs_sorted) and self._packs_sorted[i] == wanted:
            return self._packs_sorted.order[i]
        return None

    def has_pack(self, pack_id: str) -> bool:
        return self._pack_number(pack_id) is not None

    def pack_ids(self) -> Iterator[str]:
        """Every pack id, in the order the packs were added."""
        table = self._pack_table
        for at in range(0, len(table), _PACK_BYTES):
            yield table[at : at + _PACK_BYTES].hex()

    def sorted_pack_ids(self) -> Iterator[str]:
        """Every pack id in increasing order (the order a listing of ``data/`` names them)."""
        ordered = self._packs_sorted
        for i in range(len(ordered)):
            yield ordered[i].hex()

    def pack_entries(self, pack_id: str) -> list[BlobEntry] | None:
        """A pack's entries in pack order, their ids being the 16-byte keys; None if the pack is not here."""
        number = self._pack_number(pack_id)
        if number is None:
            return None
        rows, first = self._pack_permutation()
        located = [self._location_of_row(r)[1] for r in rows[first[number] : first[number + 1]]]
        located.sort(key=lambda e: e.offset)
        return located

    def _location_of_row(self, row: int) -> tuple[str, BlobEntry]:
        b = bisect.bisect_right(self._bucket_starts, row) - 1
        return self._location(self._buckets[b], (row - self._bucket_starts[b]) * ROW_SIZE)

    def _pack_permutation(self) -> tuple[array[int], array[int]]:
        """Row numbers grouped by pack (a counting sort), and where each pack's group starts."""
        if self._pack_rows is None or self._pack_first is None:
            counts = array("I", bytes(4 * (self.pack_count + 1)))
            for pack in self._pack_column():
                counts[pack + 1] += 1
            for i in range(1, len(counts)):
                counts[i] += counts[i - 1]
            first = array("I", counts)
            rows = array("I", bytes(4 * self.rows))
            for row, pack in enumerate(self._pack_column()):
                rows[counts[pack]] = row
                counts[pack] += 1
            self._pack_rows, self._pack_first = rows, first
        return self._pack_rows, self._pack_first

    def _pack_column(self) -> Iterator[int]:
        for data in self._buckets:
            for at in range(KEY_SIZE, len(data), ROW_SIZE):
                yield int.from_bytes(data[at : at + 4], "big")

    def locations(self) -> Iterator[tuple[bytes, str, BlobEntry]]:
        """(key, pack id, entry) of every blob's first location, in key order."""
        for data in self._buckets:
            previous = b""
            for at in range(0, len(data), ROW_SIZE):
                key = bytes(data[at : at + KEY_SIZE])
                if key != previous:
                    yield (key, *self._location(data, at))
                previous = key

    def packs(self) -> Iterator[tuple[str, list[BlobEntry]]]:
        """Every pack with its entries (ids as keys)."""
        for pack_id in self.pack_ids():
            yield pack_id, self.pack_entries(pack_id) or []


class CompactIndexBuilder:
    """Collects packs into rows bucket by bucket, then sorts each bucket once. A pack added twice (listed by two
    index objects) is taken once; a blob in two packs keeps both rows, the first pack added first."""

    def __init__(self) -> None:
        self._buckets = [bytearray() for _ in range(_BUCKETS)]
        self._packs: dict[bytes, int] = {}
        self._pack_table = bytearray()

    def __contains__(self, pack_id: str) -> bool:
        return bytes.fromhex(pack_id) in self._packs

    def add_pack(self, pack_id: str, entries: Iterable[BlobEntry]) -> bool:
        """Add a pack's entries; False (and nothing added) if this pack was added already."""
        raw = bytes.fromhex(pack_id)
        if len(raw) != _PACK_BYTES:
            raise ValueError(f"pack id {pack_id!r} is not {2 * _PACK_BYTES} hex digits")
        if raw in self._packs:
            return False
        number = self._packs[raw] = len(self._packs)
        self._pack_table += raw
        buckets, head, tail = self._buckets, ROW_HEAD.pack, ROW_TAIL.pack
        for e in entries:
            key = e.id
            row = head(key, number) + tail(e.offset, e.stored_length, e.raw_length, e.type, e.compression)
            buckets[(key[0] << 4) | (key[1] >> 4)] += row
        return True

    def add_table(self, table: IndexTable, what: str) -> None:
        """Add an index object's packs straight from its records (no objects per blob); packs added already are
        skipped."""
        numbers: dict[bytes, bytes | None] = {}  # the record's pack number (LE) -> the row's (BE), None to skip
        for local, raw in enumerate(table.pack_ids):
            fresh = raw not in self._packs
            if fresh:
                self._packs[raw] = len(self._packs)
                self._pack_table += raw
            numbers[local.to_bytes(4, "little")] = self._packs[raw].to_bytes(4, "big") if fresh else None
        buckets, records, size = self._buckets, table.records, V2_RECORD.size
        try:
            for at in range(0, len(records), size):
                number = numbers[records[at + 32 : at + 36]]
                if number is not None:
                    buckets[(records[at] << 4) | (records[at + 1] >> 4)] += (
                        records[at : at + KEY_SIZE] + number + records[at + 36 : at + 50]
                    )
        except KeyError:
            raise IntegrityError(f"{what}: malformed index (a blob names a pack it does not list)") from None

    @property
    def pack_table(self) -> bytes:
        """The raw pack ids (32 bytes each) added so far, in pack-number order."""
        return bytes(self._pack_table)

    @property
    def pack_count(self) -> int:
        """How many distinct packs were added."""
        return len(self._packs)

    def row_bytes(self) -> int:
        """Bytes of rows held (unsorted) since the last :meth:`take_rows`."""
        return sum(len(data) for data in self._buckets)

    def take_rows(self, first_bucket: int, buckets: int) -> bytes:
        """The unsorted rows held for ``buckets`` buckets from ``first_bucket`` on, released from the builder (pack
        numbering carries on: a compaction spills rows and keeps adding)."""
        taken = b"".join(self._buckets[first_bucket : first_bucket + buckets])
        for b in range(first_bucket, first_bucket + buckets):
            self._buckets[b] = bytearray()
        return taken

    def finish(self) -> CompactIndex:
        """The index; the builder is empty afterwards."""
        distinct = 0
        size = ROW_SIZE
        for data in self._buckets:
            rows = [bytes(data[at : at + size]) for at in range(0, len(data), size)]
            rows.sort()
            distinct += len({row[:KEY_SIZE] for row in rows})
            # Sorted in place: a second buffer per bucket would leave the first one's memory behind in the heap.
            data[:] = b"".join(rows)
        sorted_buckets, self._buckets = self._buckets, []
        table = bytes(self._pack_table)
        self._packs.clear()
        self._pack_table = bytearray()
        return CompactIndex(sorted_buckets, table, distinct)
