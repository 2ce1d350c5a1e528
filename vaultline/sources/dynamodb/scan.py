"""Scanning one segment of a table into the vault: pages -> JSON lines -> content-defined chunks -> packs.

A segment is stored as one or more *parts*: a worker whose time budget runs low finishes the part it is writing and
returns a cursor (the page's LastEvaluatedKey and the next part number); the next invocation continues from there.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from vaultline.model import VaultlineModel
from vaultline.repository.blob_writer import BlobGroup, BlobWriter
from vaultline.repository.chunking import ChunkerParams
from vaultline.repository.manifest import ObjectEntry
from vaultline.repository.packs import BlobType
from vaultline.sources.dynamodb.items import encode_line, item_from_json, item_to_json
from vaultline.sources.dynamodb.throttle import Backoff, RateLimiter

# ChunkerParams.algorithm of item streams cut on item boundaries at key anchors (the rule is in StreamWriter).
ITEM_ANCHORS = "dynamodb-item-anchors-v1"

# Item streams change at scattered places (1% of changed items are spread over the whole table), so what a day-2
# backup stores is about the share of chunks that hold a changed item: 1 - (1 - changed share) ** items per chunk,
# weighted by chunk size. Streams are therefore cut between items, into small chunks of a narrow size range, at
# anchors derived from each item's primary key: an updated item never moves a boundary (unless it crosses
# ``max_size``), and an inserted or deleted one disturbs only its own chunk. The figures (in ChunkerParams form, so
# that a recovery point records them) are a measured trade-off, see bench/dynamodb_bench.py:
#   min_size: no cut until a chunk holds this many bytes (keeps index entries and per-chunk zstd loss in check);
#   avg_size: past min_size, an item of n bytes ends its chunk with probability n / avg_size (anchor gap in bytes);
#   max_size: an item that would take a chunk past this starts a new chunk (a longer item is a chunk of its own).
# Readers do not need these figures (they concatenate chunks; chunk ids are hashes of content); they only steer dedup.
ITEM_STREAM_CHUNKER = ChunkerParams(
    algorithm=ITEM_ANCHORS,
    avg_size=2 * 1024,
    min_size=2 * 1024,
    max_size=32 * 1024,
    normalized_chunking=0,
    whole_object_max=0,
)
# What earlier recovery points used (item_chunker.algorithm "fastcdc2020"): FastCDC 2020 over the stream bytes,
# boundaries anywhere. They read exactly as new ones do; kept to describe them (and to measure against).
LEGACY_ITEM_STREAM_CHUNKER = ChunkerParams(
    avg_size=16 * 1024, min_size=4 * 1024, max_size=64 * 1024, whole_object_max=16 * 1024
)


# The chunks of an item stream go to the writer in groups of about this many bytes (a hundred or so chunks): one
# sealing job per group instead of one per 3 KiB chunk. Memory holds a group and the writer's few in flight.
GROUP_BYTES = 512 * 1024


def entry_key(segment: int, part: int) -> str:
    """The manifest key of one part of one segment stream."""
    return f"segment/{segment:05d}/part/{part:04d}"


_blake2b = hashlib.blake2b


def ends_chunk(anchor: bytes, length: int, gap: int) -> bool:
    """Whether an item of ``length`` bytes whose anchor is ``anchor`` may end a chunk: with probability
    ``length / gap`` over anchors (the first 8 bytes of BLAKE2b-64 of the anchor, little-endian, as a fraction of
    2**64), so that the mean distance between anchors is ``gap`` bytes whatever the item sizes."""
    value = int.from_bytes(hashlib.blake2b(anchor, digest_size=8).digest(), "little")
    return value * gap < length << 64


class StreamWriter:
    """Cuts a stream of item lines into chunks on item boundaries and stores them as DATA blobs as it goes.

    A chunk ends after an item once it holds ``min_size`` bytes and the item's anchor (:func:`ends_chunk`) says so;
    a chunk never grows past ``max_size`` by taking another item. The decision depends only on the items, so an
    unchanged stretch of a table yields the same chunks as in the previous recovery point.
    """

    def __init__(self, writer: BlobWriter, params: ChunkerParams = ITEM_STREAM_CHUNKER) -> None:
        if params.algorithm != ITEM_ANCHORS:
            raise ValueError(f"item streams are cut with {ITEM_ANCHORS}, not {params.algorithm}")
        self.writer = writer
        self.params = params
        self.buffer = bytearray()
        self.chunks: list[str] = []
        self.size = 0
        # Chunks cut but not yet handed to the writer: stored a group at a time (BlobWriter.add_many).
        self.group: list[bytes] = []
        self.group_bytes = 0
        self.groups: list[BlobGroup] = []
        self._min_size, self._max_size, self._gap = params.min_size, params.max_size, params.avg_size

    def add(self, line: bytes, anchor: bytes | None = None) -> None:
        """Append one item line (with its newline). ``anchor`` is the item's canonical key
        (:func:`item_anchor`); without it the line itself is the anchor, which moves
        boundaries when the item changes."""
        # This runs once per item of every table: the rule of ends_chunk, inlined, on the attributes read once.
        buffer = self.buffer
        length = len(line)
        if buffer and len(buffer) + length > self._max_size:
            self._emit()
        buffer += line
        self.size += length
        if len(buffer) >= self._min_size:
            digest = _blake2b(line if anchor is None else anchor, digest_size=8).digest()
            if int.from_bytes(digest, "little") * self._gap < length << 64:
                self._emit()

    def add_item(self, item: Mapping[str, Any], key_names: Sequence[str]) -> int:
        """Append one item (:func:`~vaultline.sources.dynamodb.items.encode_item`'s line, anchored on its key);
        return the line's length. The line goes straight into the chunk buffer, so it skips encode_item's copy."""
        line = encode_line(item)
        self.add(line, item_anchor(item, key_names))
        return len(line)

    def _emit(self) -> None:
        self.group.append(bytes(self.buffer))
        self.group_bytes += len(self.buffer)
        self.buffer.clear()
        if self.group_bytes >= GROUP_BYTES:
            self._store_group()

    def _store_group(self) -> None:
        self.groups.append(self.writer.add_group(self.group, BlobType.DATA))
        self.group = []
        self.group_bytes = 0

    def finish(self) -> list[str]:
        """Store what is left; return every chunk id of the stream in order."""
        if self.buffer:
            self._emit()
        if self.group:
            self._store_group()
        self.writer.resolve_groups()
        for group in self.groups:
            self.chunks.extend(blob_id.hex() for blob_id in group.ids())
        self.groups = []
        return self.chunks


def item_anchor(item: Mapping[str, Any], key_names: Sequence[str]) -> bytes | None:
    """The anchor of an item: the type and bytes of each key attribute, each preceded by its length, so equal keys
    give equal anchors (cheaper than canonical JSON: this runs once per item). None when the key names are not
    known or the item lacks one (the line is then the anchor)."""
    parts = []
    for name in key_names:
        value = item.get(name)
        # The low-level client's values are dicts: the exact type test is the fast path, Mapping the general one.
        if (type(value) is not dict and not isinstance(value, Mapping)) or len(value) != 1:
            return None
        for kind, inner in value.items():
            if kind == "S" or kind == "N":
                if type(inner) is not str and not isinstance(inner, str):
                    return None
                raw = inner.encode()
            elif kind == "B":
                raw = bytes(inner)
            else:
                return None
            parts.append(b"%s%d:%s" % (_KIND_BYTES[kind], len(raw), raw))
    return b"".join(parts) or None


_KIND_BYTES = {"S": b"S", "N": b"N", "B": b"B"}


def line_anchor(line: bytes, key_names: Sequence[str]) -> bytes | None:
    """:func:`item_anchor` of an encoded item line (the same bytes as for the item it encodes)."""
    if not key_names:
        return None
    doc = orjson.loads(line)
    try:
        key = item_from_json({name: doc[name] for name in key_names})
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    return item_anchor(key, key_names)


class ScanCursor(VaultlineModel):
    """Where a segment continues: the next part number and the ExclusiveStartKey (binary values as base64)."""

    part: int = 0
    start_key: dict[str, Any] | None = None


@dataclass
class ScanOptions:
    """How to scan: consistency, read-rate limit, throttling retries, time budget."""

    consistent_read: bool = False
    limiter: RateLimiter = field(default_factory=RateLimiter)
    backoff: Backoff = field(default_factory=Backoff)
    remaining_ms: Callable[[], int] | None = None
    reserve_ms: int = 60_000
    page_limit: int | None = None
    # The table's key attribute names (partition key first): chunk boundaries then follow keys, not item contents.
    key_names: Sequence[str] = ()


@dataclass
class ScannedPart:
    """What one scan of a segment read: its figures, and the cursor to continue from (None: segment done)."""

    items: int
    size: int
    pages: int
    read_units: float
    next: ScanCursor | None


def scan_part(
    ddb: Any,
    table: str,
    segment: int,
    total_segments: int,
    add: Callable[[Mapping[str, Any]], int],
    cursor: ScanCursor | None = None,
    options: ScanOptions | None = None,
    max_bytes: int | None = None,
) -> ScannedPart:
    """Scan ``segment`` of ``total_segments`` from ``cursor``, handing every item to ``add`` (which returns the bytes
    it took), until the segment ends, the time budget runs low, or ``max_bytes`` were added.

    Each page is requested until it succeeds (throttling is retried with the same ExclusiveStartKey), then all of
    its items are added, so a returned cursor never skips or repeats an item.
    """
    options = options or ScanOptions()
    cursor = cursor or ScanCursor()
    start_key = item_from_json(cursor.start_key) if cursor.start_key else None
    items = pages = size = 0
    units = 0.0
    while True:
        args: dict[str, Any] = {
            "TableName": table,
            "ReturnConsumedCapacity": "TOTAL",
            "ConsistentRead": options.consistent_read,
        }
        if total_segments > 1:
            # One segment is a plain scan; leaving the parameters out also avoids moto 5.2.5's crash on segmented
            # scans of tables with a binary partition key.
            args.update(Segment=segment, TotalSegments=total_segments)
        if start_key:
            args["ExclusiveStartKey"] = start_key
        if options.page_limit:
            args["Limit"] = options.page_limit
        page = options.backoff.call(lambda a=args: ddb.scan(**a), f"table {table} segment {segment}")  # type: ignore[misc]
        pages += 1
        consumed = float(page.get("ConsumedCapacity", {}).get("CapacityUnits") or 0)
        units += consumed
        options.limiter.spend(consumed)
        for item in page.get("Items", []):
            size += add(item)
            items += 1
        start_key = page.get("LastEvaluatedKey")
        if not start_key:
            break
        if options.remaining_ms is not None and options.remaining_ms() < options.reserve_ms:
            break
        if max_bytes is not None and size >= max_bytes:
            break
    following = ScanCursor(part=cursor.part + 1, start_key=item_to_json(start_key)) if start_key else None
    return ScannedPart(items=items, size=size, pages=pages, read_units=units, next=following)


def store_items(
    writer: BlobWriter, segment: int, part: int, lines: Iterable[bytes], key_names: Sequence[str] = ()
) -> tuple[ObjectEntry, int]:
    """Store already-encoded item lines (an export data file) as one part; return its entry and item count."""
    return store_keyed_lines(writer, entry_key(segment, part), ((line_anchor(line, key_names), line) for line in lines))


def store_keyed_lines(
    writer: BlobWriter,
    key: str,
    lines: Iterable[tuple[bytes | None, bytes]],
    params: ChunkerParams = ITEM_STREAM_CHUNKER,
) -> tuple[ObjectEntry, int]:
    """Store (anchor, item line) pairs as the stream of the entry ``key``; return the entry and its item count."""
    stream = StreamWriter(writer, params)
    count = 0
    for anchor, line in lines:
        stream.add(line, anchor)
        count += 1
    entry = ObjectEntry(key=key, size=stream.size, chunks=stream.finish(), metadata={"items": str(count)})
    return entry, count
