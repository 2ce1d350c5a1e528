"""Key-sorted layered segment streams (vault format version 2, docs/vault-format.md section 10.6).

A scan segment of a table recovery point is a *base* (its items sorted by key, in one or more parts) and up to
``MAX_LAYERS - 1`` *delta layers* on top, each the items put and the keys deleted since the layer below, both sorted
by key. A day-2 backup of a segment therefore stores only its changed items (plus the keys of its deleted ones) and
names the chunks of the layers below it, which it shares with its parent: every recovery point lists every chunk it
needs, so forgetting the recovery point that wrote a base never orphans a delta (prune keeps every chunk that a
live manifest names). Reading merges the layers by key, streaming: the highest layer that holds a key decides.

Re-basing bounds restores: a segment is stored whole again when its chain would exceed ``MAX_LAYERS`` layers, when
its deltas would exceed ``MAX_DELTA_SHARE`` of its base, and, staggered over the segments so that only about one in
``MAX_LAYERS`` re-bases at each backup, whenever ``(generation + segment) % MAX_LAYERS == 0``.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Literal

import orjson

from vaultline.errors import IntegrityError
from vaultline.repository.blob_reader import ChunkReader
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.chunking import ChunkerParams
from vaultline.repository.manifest import ObjectEntry
from vaultline.sources.dynamodb.items import compact, iter_lines
from vaultline.sources.dynamodb.scan import ITEM_ANCHORS, line_anchor, store_keyed_lines

# The first vault format version whose DynamoDB recovery points may be layered. A writer writes them only into a
# vault whose config says at least this version: a version 1 reader would concatenate the layers (old versions and
# deleted keys restored as items).
LAYERED_FORMAT_VERSION = 2
LAYOUT = "key-sorted-layers"
SCAN_ORDER = "scan-order"

# At most this many layers per segment (a base and MAX_LAYERS - 1 deltas): a restore merges at most MAX_LAYERS
# streams per segment (plus the base's parts). With 1% of items changed a day, a segment grows ~1% a day by its
# deltas and re-bases every MAX_LAYERS backups (staggered): about 1% + 100% / 32 = 4.1% of the table a day.
MAX_LAYERS = 32
# ... and its deltas at most this share of its base's bytes: a restore reads at most 1.5x the segment's bytes.
MAX_DELTA_SHARE = 0.5
# Since the day-2 cost is in the deltas, not in how little of a stream a change disturbs, layered streams are cut
# into large chunks (mean ~256 KiB: one index entry per 256 KiB of table instead of per ~3 KiB), at the same key
# anchors as version 1 streams (so a re-based segment still shares the chunks of its unchanged stretches).
LAYERED_STREAM_CHUNKER = ChunkerParams(
    algorithm=ITEM_ANCHORS,
    avg_size=128 * 1024,
    min_size=128 * 1024,
    max_size=1024 * 1024,
    normalized_chunking=0,
    whole_object_max=0,
)
# A segment part holds at most this many bytes of item lines in memory (it is sorted before it is stored): a scan
# part stops after the page that reaches it. Only a segment stored in one part can be a delta (a delta needs the
# whole segment to find its deleted keys); a longer one is re-based, in parts.
RUN_BYTES = 256 * 1024**2
# Chunks read ahead per merged stream: a merge reads up to MAX_LAYERS * 2 streams at once.
MERGE_LOOKAHEAD = 4

Kind = Literal["part", "put", "delete"]
_ENTRY_KEY = re.compile(r"^segment/(\d{5})/layer/(\d{3})/(?:part/(\d{4})|(put|delete))$")
KeyedLine = tuple[bytes, bytes]
"""An item line (with its newline) and its merge key: the item's anchor (``scan.item_anchor``)."""


def base_key(segment: int, part: int) -> str:
    return f"segment/{segment:05d}/layer/000/part/{part:04d}"


def delta_key(segment: int, layer: int, kind: Literal["put", "delete"]) -> str:
    return f"segment/{segment:05d}/layer/{layer:03d}/{kind}"


@dataclass(frozen=True)
class LayerEntry:
    """One entry of a layered recovery point, by what its key says."""

    segment: int
    layer: int
    kind: Kind
    part: int
    entry: ObjectEntry


def parse_entry(entry: ObjectEntry, where: str) -> LayerEntry:
    """What a layered entry is; IntegrityError for a key that is not one."""
    match = _ENTRY_KEY.match(entry.key)
    if not match:
        raise IntegrityError(f"{where}: {entry.key!r} is not a layered segment entry")
    segment, layer, part, kind = match.groups()
    if (layer == "000") != (part is not None):
        raise IntegrityError(f"{where}: {entry.key!r}: layer 0 has parts, other layers put and delete")
    return LayerEntry(int(segment), int(layer), "part" if part is not None else kind, int(part or 0), entry)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SegmentLayers:
    """The entries of one segment of a layered recovery point, checked complete: base parts 0..n, then for each
    delta layer 1..k its put and its delete stream."""

    segment: int
    entries: tuple[LayerEntry, ...]

    @property
    def layers(self) -> int:
        return self.entries[-1].layer + 1

    @property
    def base_bytes(self) -> int:
        return sum(e.entry.size for e in self.entries if e.layer == 0)

    @property
    def delta_bytes(self) -> int:
        return sum(e.entry.size for e in self.entries if e.layer > 0)

    @property
    def object_entries(self) -> list[ObjectEntry]:
        return [e.entry for e in self.entries]


def segment_layers(segment: int, entries: Iterable[ObjectEntry], where: str) -> SegmentLayers:
    """Check that ``entries`` (one segment's, in key order) form a complete chain; IntegrityError naming the
    segment and the missing link otherwise: a restore never silently lacks a layer."""
    parsed = sorted((parse_entry(e, where) for e in entries), key=lambda e: (e.layer, e.part, e.kind))
    expected: list[tuple[int, str, int]] = []
    parts = [e for e in parsed if e.layer == 0]
    expected += [(0, "part", n) for n in range(len(parts))]
    top = parsed[-1].layer if parsed else 0
    for layer in range(1, top + 1):
        expected += [(layer, "delete", 0), (layer, "put", 0)]
    found = [(e.layer, e.kind, e.part) for e in parsed]
    if not parts or found != expected or any(e.segment != segment for e in parsed):
        missing = ([] if parts else [(0, "part", 0)]) + sorted(set(expected) - set(found))
        detail = ", ".join(
            f"layer {layer} {kind}" + (f" {part}" if kind == "part" else "") for layer, kind, part in missing
        )
        raise IntegrityError(
            f"{where}: segment {segment} is incomplete (missing: {detail or 'a consistent chain'}): "
            "a layer it builds on is gone; restore an older recovery point of this table"
        )
    return SegmentLayers(segment, tuple(parsed))


def iter_segments(entries: Iterable[ObjectEntry], total_segments: int, where: str) -> Iterator[SegmentLayers]:
    """The segments of a layered recovery point's entry stream (key order keeps a segment's entries together),
    each checked complete, and every segment 0..total_segments-1 present."""
    expected = 0
    for segment, group in groupby(entries, key=lambda e: parse_entry(e, where).segment):
        if segment != expected:
            raise IntegrityError(f"{where}: segment {expected} is missing (next found: {segment})")
        yield segment_layers(segment, group, where)
        expected += 1
    if expected != total_segments:
        raise IntegrityError(f"{where}: {total_segments} segments recorded, {expected} found")


def keyed_lines(lines: Iterable[bytes], key_names: Sequence[str], where: str) -> Iterator[KeyedLine]:
    """(anchor, line) of each line of a sorted stream, checked strictly ascending by anchor."""
    before = b""
    for line in lines:
        anchor = line_anchor(line, key_names)
        if anchor is None or anchor <= before:
            raise IntegrityError(f"{where}: a stream is not sorted by key (or lacks a key attribute)")
        before = anchor
        yield anchor, line if line.endswith(b"\n") else line + b"\n"


def merged_lines(
    reader: ChunkReader, segment: SegmentLayers, key_names: Sequence[str], where: str
) -> Iterator[KeyedLine]:
    """The items of a layered segment in key order: for each key the line of the highest layer that holds it,
    nothing when that is a delete. Streaming: one line per stream in memory (plus the chunks read ahead)."""

    def ranked(layer: LayerEntry) -> Iterator[tuple[bytes, int, bool, bytes]]:
        lines = iter_lines(reader.stream(layer.entry.chunks))
        for anchor, line in keyed_lines(lines, key_names, f"{where}: {layer.entry.key}"):
            yield anchor, -layer.layer, layer.kind == "delete", line

    merged = heapq.merge(*(ranked(layer) for layer in segment.entries))
    for anchor, versions in groupby(merged, key=lambda version: version[0]):
        (_, rank, deleted, line), *older = versions
        if any(other[1] == rank for other in older):
            raise IntegrityError(f"{where}: segment {segment.segment} holds a key twice in layer {-rank}")
        if not deleted:
            yield anchor, line


def key_line(line: bytes, key_names: Sequence[str]) -> bytes:
    """The delete line of an item: its key attributes only, canonical JSON (as ``items.key_of``)."""
    doc = orjson.loads(line)
    # Delete lines are held until the delta is stored: compact, or each keeps orjson's 4 KiB buffer.
    return compact(
        orjson.dumps({name: doc[name] for name in key_names}, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
    )


def changes_against(
    parent: Iterable[KeyedLine], current: Sequence[KeyedLine], key_names: Sequence[str]
) -> tuple[list[KeyedLine], list[KeyedLine]]:
    """The delta from ``parent`` to ``current`` (both sorted by anchor): the lines put (new or different) and the
    keys deleted. A merge-join: ``current`` is in memory already (a part holds at most RUN_BYTES), ``parent``
    streams."""
    puts: list[KeyedLine] = []
    deletes: list[KeyedLine] = []
    now = iter(current)
    mine = next(now, None)
    for anchor, line in parent:
        while mine is not None and mine[0] < anchor:
            puts.append(mine)
            mine = next(now, None)
        if mine is not None and mine[0] == anchor:
            if mine[1] != line:
                puts.append(mine)
            mine = next(now, None)
        else:
            deletes.append((anchor, key_line(line, key_names)))
    while mine is not None:
        puts.append(mine)
        mine = next(now, None)
    return puts, deletes


def rebase_due(segment: int, generation: int, parent: SegmentLayers) -> bool:
    """Whether a segment is stored whole again instead of as a delta on ``parent`` (before its delta is known):
    its chain is full, or it is this segment's turn of the staggered cycle."""
    return parent.layers >= MAX_LAYERS or (generation + segment) % MAX_LAYERS == 0


def delta_too_big(parent: SegmentLayers, delta_bytes: int) -> bool:
    """Whether the chain's deltas with a new one of ``delta_bytes`` would exceed MAX_DELTA_SHARE of the base."""
    return parent.delta_bytes + delta_bytes > MAX_DELTA_SHARE * parent.base_bytes


def store_base(writer: BlobWriter, segment: int, part: int, lines: Iterable[KeyedLine]) -> ObjectEntry:
    """Store one part of a segment's base (``lines`` sorted by anchor)."""
    entry, _ = store_keyed_lines(writer, base_key(segment, part), lines, LAYERED_STREAM_CHUNKER)
    return entry


def store_delta(
    writer: BlobWriter, parent: SegmentLayers, puts: Iterable[KeyedLine], deletes: Iterable[KeyedLine]
) -> list[ObjectEntry]:
    """Store a delta layer on ``parent``; return every entry of the segment: the parent's (their chunks named
    again, not copied) and the new layer's delete and put streams."""
    layer = parent.layers
    put, _ = store_keyed_lines(writer, delta_key(parent.segment, layer, "put"), puts, LAYERED_STREAM_CHUNKER)
    delete, _ = store_keyed_lines(writer, delta_key(parent.segment, layer, "delete"), deletes, LAYERED_STREAM_CHUNKER)
    return [*parent.object_entries, delete, put]
