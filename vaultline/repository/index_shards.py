"""The bytes of a consolidated index generation (docs/vault-format.md, section 9.5): its catalog, pack table,
shards and filter.

A generation is a read-optimised copy of the index objects it names, written by compaction so that a worker can
answer "is this chunk stored, and where?" without holding the whole index:

* **pack table** ``VLGP | count u32 | pack ids (32 bytes each)``: every pack of the consolidated index objects.
* **shard** ``VLGS | shard bits u8 | number u32 | row count u32 | rows``: the rows whose key's first ``shard bits``
  bits are ``number``, each row the 34-byte row of the compact index (``key[16] | pack u32 big-endian | offset u32
  | stored u32 | raw u32 | type u8 | compression u8``, the tail little-endian), sorted bytewise; ``pack`` is a
  position in the pack table.
* **filter** ``VLGF | prefix bits u8 (16) | fingerprint bytes u8 (2) | key count u32 | offsets | fingerprints``:
  for every key its bytes 2..3 (the fingerprint), sorted, grouped by the key's first two bytes (the bucket);
  ``offsets`` are 65,537 u32, offset[b] the number of fingerprints in buckets below b. A key is *possibly present*
  iff its fingerprint is in its bucket: no false negatives, and a false positive rate of about n / 2^32 (0.7% at
  30 million keys).
* **catalog** (JSON, :class:`IndexCatalog`): the generation's id, the index objects it consolidates, and the hash
  and size of each of the objects above. It is written last; it is what makes a generation exist.

Each object is stored as ``seal(zstd_frame(body), its vault key)``; the catalog records the BLAKE3 of every other
object's stored bytes, so a reader verifies what it fetches in either encryption mode.

Why a sorted fingerprint table and not a Bloom filter: its build is slicing (a key's bytes 0..3 are taken from
every row of a shard with strided slices, in C), so 30 million keys take a few seconds in pure Python with no
numerical library in the Lambda layer, where setting Bloom bits is one Python step per bit; the price is 16 bits
per key against a blocked Bloom filter's 10 to 12 for the same rate.
"""

from __future__ import annotations

import bisect
import json
import struct
import sys
from array import array
from datetime import datetime
from itertools import pairwise

import blake3
from pydantic import ConfigDict, Field, ValidationError

from vaultline.errors import FormatVersionError, IntegrityError
from vaultline.model import VaultlineModel
from vaultline.repository.compact_index import KEY_SIZE, ROW_SIZE
from vaultline.repository.compression import compress_document, decompress_document
from vaultline.repository.crypto import Cipher

PACKS_MAGIC = b"VLGP"
SHARD_MAGIC = b"VLGS"
FILTER_MAGIC = b"VLGF"
PACKS_HEADER = struct.Struct("<4sI")  # magic, pack count
SHARD_HEADER = struct.Struct("<4sBII")  # magic, shard bits, shard number, row count
FILTER_HEADER = struct.Struct("<4sBBI")  # magic, prefix bits, fingerprint bytes, key count
PACK_ID_BYTES = 32
FILTER_PREFIX_BITS = 16
FILTER_FINGERPRINT_BYTES = 2
FILTER_BUCKETS = 1 << FILTER_PREFIX_BITS
CATALOG_VERSION = 1
# A shard holds at most this many rows (1.06 MiB of rows): the shard count is the smallest power of two that keeps
# the average shard under it, so a shard costs one GET of about a MiB whatever the vault's size.
SHARD_ROWS_TARGET = 32_768
MAX_SHARD_BITS = 16


def shard_bits_for(rows: int) -> int:
    """How many leading key bits name a shard, for a generation of ``rows`` rows."""
    bits = 0
    while bits < MAX_SHARD_BITS and rows > SHARD_ROWS_TARGET << bits:
        bits += 1
    return bits


def shard_of(key: bytes, bits: int) -> int:
    """The shard number of a key (its first ``bits`` bits)."""
    return int.from_bytes(key[:2], "big") >> (16 - bits) if bits else 0


class ObjectRef(VaultlineModel):
    """A generation object as its catalog names it: the BLAKE3 of its stored bytes and its record count."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    count: int = Field(ge=0)


class IndexCatalog(VaultlineModel):
    """Contents of a catalog object (``index-catalogs/<generation>``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = CATALOG_VERSION
    generation: str
    created: datetime
    index_objects: list[str]
    blobs: int = Field(ge=0)
    packs: ObjectRef
    shard_bits: int = Field(ge=0, le=MAX_SHARD_BITS)
    shards: list[ObjectRef]
    filter: ObjectRef

    def model_post_init(self, __context: object) -> None:
        if len(self.shards) != 1 << self.shard_bits:
            raise ValueError(f"{len(self.shards)} shards listed, but shard bits {self.shard_bits} need so many")


def seal_object(body: bytes, key: str, cipher: Cipher) -> bytes:
    """Stored bytes of a generation object: bound to its key, so no object passes for another."""
    return cipher.seal(compress_document(body), key.encode())


def open_object(stored: bytes, key: str, cipher: Cipher, what: str, expected_hash: str | None = None) -> bytes:
    """Body of a generation object, checked against the hash its catalog records."""
    if expected_hash is not None and blake3.blake3(stored).hexdigest() != expected_hash:
        raise IntegrityError(f"{what}: content does not hash to what its catalog records")
    return decompress_document(cipher.open(stored, key.encode(), what), what)


# --- catalog ----------------------------------------------------------------------------------------------------


def encode_catalog(catalog: IndexCatalog) -> bytes:
    return catalog.model_dump_json().encode()


def decode_catalog(body: bytes, what: str) -> IndexCatalog:
    if body[:1] != b"{":
        raise IntegrityError(f"{what}: not a catalog document")
    try:
        raw = json.loads(body)
    except ValueError as exc:
        raise IntegrityError(f"{what}: malformed catalog ({exc})") from None
    if not isinstance(raw, dict) or raw.get("version") != CATALOG_VERSION:
        raise FormatVersionError(f"{what}: catalog version {raw.get('version')!r} is not supported (supported: 1)")
    try:
        return IndexCatalog.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise IntegrityError(
            f"{what}: malformed catalog ({'.'.join(map(str, first['loc']))}: {first['msg']})"
        ) from None


# --- pack table -------------------------------------------------------------------------------------------------


def encode_packs(table: bytes) -> bytes:
    """``table`` is the raw pack ids, 32 bytes each, in pack-number order."""
    return PACKS_HEADER.pack(PACKS_MAGIC, len(table) // PACK_ID_BYTES) + table


def decode_packs(body: bytes, what: str) -> bytes:
    if len(body) < PACKS_HEADER.size or body[:4] != PACKS_MAGIC:
        raise IntegrityError(f"{what}: not a pack table")
    (_, count) = PACKS_HEADER.unpack_from(body)
    if len(body) != PACKS_HEADER.size + count * PACK_ID_BYTES:
        raise IntegrityError(f"{what}: malformed pack table ({len(body)} bytes for {count} packs)")
    return body[PACKS_HEADER.size :]


# --- shards -----------------------------------------------------------------------------------------------------


def encode_shard(bits: int, number: int, rows: bytes) -> bytes:
    """``rows`` are the shard's sorted rows."""
    return SHARD_HEADER.pack(SHARD_MAGIC, bits, number, len(rows) // ROW_SIZE) + rows


def decode_shard(body: bytes, bits: int, number: int, pack_count: int, what: str) -> bytes:
    """The sorted rows of a shard, checked: its header names this shard, every row belongs in it and names a pack
    of the table. The order is checked by the lookups' bisection only (a misordered shard cannot return a row of
    another key: a lookup compares the key it lands on)."""
    if len(body) < SHARD_HEADER.size or body[:4] != SHARD_MAGIC:
        raise IntegrityError(f"{what}: not an index shard")
    _, found_bits, found_number, count = SHARD_HEADER.unpack_from(body)
    if (found_bits, found_number) != (bits, number):
        raise IntegrityError(f"{what}: holds shard {found_number} of {found_bits} bits, not {number} of {bits}")
    rows = body[SHARD_HEADER.size :]
    if len(rows) != count * ROW_SIZE:
        raise IntegrityError(f"{what}: malformed shard ({len(rows)} bytes of rows for {count} rows)")
    if count:
        first, last = rows[:KEY_SIZE], rows[-ROW_SIZE : -ROW_SIZE + KEY_SIZE]
        if shard_of(first, bits) != number or shard_of(last, bits) != number or first > last:
            raise IntegrityError(f"{what}: rows outside shard {number}")
        if _max_pack(rows) >= pack_count:
            raise IntegrityError(f"{what}: a row names a pack outside the pack table")
    return rows


def _max_pack(rows: bytes) -> int:
    """The highest pack number of the rows, taken with strided slices (four bytes of every row, in C)."""
    top = max(rows[KEY_SIZE::ROW_SIZE])
    # Only rows whose first pack byte is the highest can hold the highest number; there are few of them.
    return max(
        int.from_bytes(rows[at + KEY_SIZE : at + KEY_SIZE + 4], "big")
        for at in range(0, len(rows), ROW_SIZE)
        if rows[at + KEY_SIZE] == top
    )


# --- filter -----------------------------------------------------------------------------------------------------


def _uint16_be(high: bytes, low: bytes) -> array[int]:
    """Unsigned 16-bit values from their high and low bytes (two strided slices), as an array."""
    pairs = bytearray(2 * len(high))
    pairs[0::2], pairs[1::2] = high, low
    values = array("H", bytes(pairs))
    if sys.byteorder == "little":
        values.byteswap()
    return values


class FilterBuilder:
    """Collects the keys of sorted rows, shard by shard in key order, into a :class:`KeyFilter`'s body."""

    def __init__(self) -> None:
        self._counts = array("I", bytes(4 * FILTER_BUCKETS))
        self._fingerprints = bytearray()
        self._keys = 0
        self._last = b""

    def add_rows(self, rows: bytes) -> None:
        """Add the keys of sorted rows; successive calls continue in key order."""
        if not rows:
            return
        if rows[:KEY_SIZE] < self._last:
            raise ValueError("rows added out of key order")
        self._last = rows[-ROW_SIZE : -ROW_SIZE + KEY_SIZE]
        buckets = _uint16_be(rows[0::ROW_SIZE], rows[1::ROW_SIZE])
        pairs = bytearray(2 * len(buckets))
        pairs[0::2], pairs[1::2] = rows[2::ROW_SIZE], rows[3::ROW_SIZE]
        self._fingerprints += pairs
        self._keys += len(buckets)
        # Sorted rows: a bucket's keys are one run, found by bisection rather than a pass per key.
        start = 0
        while start < len(buckets):
            bucket = buckets[start]
            end = bisect.bisect_right(buckets, bucket, start)
            self._counts[bucket] += end - start
            start = end

    def finish(self) -> bytes:
        """The filter's body (section 9.5.4)."""
        offsets = array("I", [0])
        total = 0
        for count in self._counts:
            total += count
            offsets.append(total)
        if sys.byteorder == "big":
            offsets.byteswap()
        header = FILTER_HEADER.pack(FILTER_MAGIC, FILTER_PREFIX_BITS, FILTER_FINGERPRINT_BYTES, self._keys)
        body = header + offsets.tobytes() + bytes(self._fingerprints)
        self._fingerprints = bytearray()
        return body


class KeyFilter:
    """Answers "possibly present" or "certainly absent" for a 16-byte key (no false negatives)."""

    __slots__ = ("_fingerprints", "_offsets", "keys")

    def __init__(self, offsets: array[int], fingerprints: array[int]) -> None:
        self._offsets = offsets
        self._fingerprints = fingerprints
        self.keys = len(fingerprints)

    @classmethod
    def decode(cls, body: bytes, what: str) -> KeyFilter:
        if len(body) < FILTER_HEADER.size or body[:4] != FILTER_MAGIC:
            raise IntegrityError(f"{what}: not an index filter")
        _, prefix_bits, fingerprint_bytes, keys = FILTER_HEADER.unpack_from(body)
        if (prefix_bits, fingerprint_bytes) != (FILTER_PREFIX_BITS, FILTER_FINGERPRINT_BYTES):
            raise FormatVersionError(
                f"{what}: filter of {prefix_bits} prefix bits and {fingerprint_bytes}-byte fingerprints is not "
                f"supported (supported: {FILTER_PREFIX_BITS} and {FILTER_FINGERPRINT_BYTES})"
            )
        at = FILTER_HEADER.size
        offsets_end = at + 4 * (FILTER_BUCKETS + 1)
        if len(body) != offsets_end + 2 * keys:
            raise IntegrityError(f"{what}: malformed filter ({len(body)} bytes for {keys} keys)")
        # Views, not slices: the fingerprints are most of the body, and a sliced copy would be a third copy of them
        # at the worker's peak (stored, decompressed, array).
        view = memoryview(body)
        offsets = array("I")
        offsets.frombytes(view[at:offsets_end])
        if sys.byteorder == "big":
            offsets.byteswap()
        if offsets[0] != 0 or offsets[-1] != keys or any(a > b for a, b in pairwise(offsets)):
            raise IntegrityError(f"{what}: malformed filter (bucket offsets)")
        fingerprints = array("H")
        fingerprints.frombytes(view[offsets_end:])
        view.release()
        if sys.byteorder == "little":
            fingerprints.byteswap()
        return cls(offsets, fingerprints)

    def might_contain(self, key: bytes) -> bool:
        bucket = (key[0] << 8) | key[1]
        fingerprint = (key[2] << 8) | key[3]
        lo, hi = self._offsets[bucket], self._offsets[bucket + 1]
        i = bisect.bisect_left(self._fingerprints, fingerprint, lo, hi)
        return i < hi and self._fingerprints[i] == fingerprint

    def nbytes(self) -> int:
        return 4 * len(self._offsets) + 2 * len(self._fingerprints)
