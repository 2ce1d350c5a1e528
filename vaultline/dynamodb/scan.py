"""Scanning one segment of a table into the vault: pages -> JSON lines -> content-defined chunks -> packs.

A segment is stored as one or more *parts*: a worker whose time budget runs low finishes the part it is writing and
returns a cursor (the page's LastEvaluatedKey and the next part number); the next invocation continues from there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from vaultline.chunking import Chunker, ChunkerParams
from vaultline.dynamodb.items import encode_item, item_from_json, item_to_json
from vaultline.dynamodb.throttle import Backoff, RateLimiter
from vaultline.manifest import ObjectEntry
from vaultline.packer import BlobWriter
from vaultline.packs import BlobType

# Item streams change at random places (scan order is by key hash, so 1% of changed items are spread over the
# whole table): smaller chunks than the vault's 256 KiB default keep day-2 growth proportional to what changed.
# Readers do not need these figures (chunk ids are hashes of content); they only steer dedup.
ITEM_STREAM_CHUNKER = ChunkerParams(
    avg_size=16 * 1024, min_size=4 * 1024, max_size=64 * 1024, whole_object_max=16 * 1024
)
# Bytes buffered before cutting: several maximum-size chunks, so that only the last (carried) chunk is provisional.
CUT_THRESHOLD = 8 * ITEM_STREAM_CHUNKER.max_size


def entry_key(segment: int, part: int) -> str:
    """The manifest key of one part of one segment stream."""
    return f"segment/{segment:05d}/part/{part:04d}"


class StreamWriter:
    """Cuts a growing byte stream into content-defined chunks and stores them as DATA blobs as it goes.

    The last chunk of every cut is carried into the next one, so boundaries are those a single pass over the
    whole stream would find: an unchanged stretch yields the same chunks as in the previous recovery point.
    """

    def __init__(self, writer: BlobWriter, chunker: Chunker | None = None) -> None:
        self.writer = writer
        self.chunker = chunker or Chunker(ITEM_STREAM_CHUNKER)
        self.buffer = bytearray()
        self.chunks: list[str] = []
        self.size = 0

    def add(self, data: bytes) -> None:
        self.buffer += data
        self.size += len(data)
        if len(self.buffer) >= CUT_THRESHOLD:
            self._cut(final=False)

    def _cut(self, final: bool) -> None:
        pieces = list(self.chunker.split_bytes(bytes(self.buffer)))
        carry = b"" if final or not pieces else pieces.pop()
        for piece in pieces:
            self.chunks.append(self.writer.add(piece, BlobType.DATA).hex())
        self.buffer = bytearray(carry)

    def finish(self) -> list[str]:
        """Store what is left; return every chunk id of the stream in order."""
        self._cut(final=True)
        return self.chunks


class ScanCursor(BaseModel):
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


@dataclass
class PartResult:
    """One stored part: its manifest entry, its figures, and the cursor to continue from (None: segment done)."""

    entry: ObjectEntry
    items: int
    pages: int
    read_units: float
    next: ScanCursor | None


def scan_segment(
    ddb: Any,
    table: str,
    segment: int,
    total_segments: int,
    writer: BlobWriter,
    cursor: ScanCursor | None = None,
    options: ScanOptions | None = None,
) -> PartResult:
    """Scan ``segment`` of ``total_segments`` from ``cursor`` until the segment ends or the time budget runs low.

    Each page is requested until it succeeds (throttling is retried with the same ExclusiveStartKey), then all of
    its items are written, so a returned cursor never skips or repeats an item.
    """
    options = options or ScanOptions()
    cursor = cursor or ScanCursor()
    stream = StreamWriter(writer)
    start_key = item_from_json(cursor.start_key) if cursor.start_key else None
    items = pages = 0
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
            stream.add(encode_item(item))
            items += 1
        start_key = page.get("LastEvaluatedKey")
        if not start_key:
            break
        if options.remaining_ms is not None and options.remaining_ms() < options.reserve_ms:
            break
    entry = ObjectEntry(
        key=entry_key(segment, cursor.part),
        size=stream.size,
        chunks=stream.finish(),
        metadata={"items": str(items)},
    )
    following = ScanCursor(part=cursor.part + 1, start_key=item_to_json(start_key)) if start_key else None
    return PartResult(entry=entry, items=items, pages=pages, read_units=units, next=following)


def store_items(writer: BlobWriter, segment: int, part: int, lines: Any) -> tuple[ObjectEntry, int]:
    """Store already-encoded item lines (an export data file) as one part; return its entry and item count."""
    stream = StreamWriter(writer)
    count = 0
    for line in lines:
        stream.add(line)
        count += 1
    entry = ObjectEntry(
        key=entry_key(segment, part), size=stream.size, chunks=stream.finish(), metadata={"items": str(count)}
    )
    return entry, count
