"""Backing up a table, in three pieces: store a segment, merge a segment, commit the table.

The CLI's :func:`run_table_backup` runs them in a loop in one process; the state machine's steps
(`vaultline.runs.table_steps`) call one each: Prepare :func:`open_run` and :func:`start_run`, the export poll
:func:`export_work`, every segment worker :func:`store_segment`, Commit :func:`commit_table`. Both front doors
therefore write recovery points of one shape. In a vault of format version 2, a scan stores every segment as a
key-sorted base or as a delta layer on its parent's segment (``vaultline.sources.dynamodb.layers``); otherwise (a
version 1 vault, or export mode) a stream per scan segment (in several parts when a worker ran out of
time) or per full-export data file; for an incremental export, each of the parent's streams with the change set
applied in place, then one more stream of the items created since the parent.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Literal

from pydantic import Field

from vaultline.errors import IntegrityError
from vaultline.model import VaultlineModel
from vaultline.operations.backup import recover_unindexed_packs
from vaultline.repository.blob_reader import ChunkReader
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.commit import RecoveryPointRun, finish_recovery_point
from vaultline.repository.compression import compress_document, decompress_document
from vaultline.repository.layout import run_prefix
from vaultline.repository.locks import vault_lock
from vaultline.repository.manifest import (
    BackupStats,
    ObjectEntry,
    RecoveryPoint,
    iter_entries,
    latest_for_source,
    load_recovery_point,
    new_recovery_point_id,
)
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb import layers
from vaultline.sources.dynamodb.export import (
    apply_to_stream,
    change_set,
    data_file_keys,
    delete_export,
    full_export_lines,
    incremental_window,
    new_items,
    read_export_file,
    start_export,
    wait_for_export,
)
from vaultline.sources.dynamodb.items import encode_item
from vaultline.sources.dynamodb.model import EXTRA_KEY, BackupOptions, TableBackupInfo, table_info
from vaultline.sources.dynamodb.scan import (
    ITEM_STREAM_CHUNKER,
    ScanCursor,
    ScanOptions,
    StreamWriter,
    entry_key,
    item_anchor,
    scan_part,
    store_items,
)
from vaultline.sources.dynamodb.table import TableSnapshot, describe_table, table_client
from vaultline.sources.dynamodb.throttle import Backoff, RateLimiter
from vaultline.sources.dynamodb.urls import parse_table_url

# One segment per this many bytes of table: a worker reads and sorts it in one Lambda invocation (a layered segment
# is a delta only when it was read in one part of at most layers.RUN_BYTES), and the map stays small for small
# tables. MAX_SEGMENTS of them is 2 TiB; DynamoDB allows 1,000,000. DynamoDB updates TableSizeBytes about every six
# hours (moto always reports 0), so a size of 0 means "unknown", not "empty": it gets UNKNOWN_SIZE_SEGMENTS (or,
# layered, the parent's count).
SEGMENT_BYTES = 128 * 1024**2
MAX_SEGMENTS = 16_384
# Under the run's staging prefix: the delta parent's layers, one object per segment (stage_parent_layers).
PARENT_LAYERS = "parent-layers/"
UNKNOWN_SIZE_SEGMENTS = 1


def segments_for(snapshot: TableSnapshot, requested: int | None = None) -> int:
    """TotalSegments for a scan: as requested, or one per SEGMENT_BYTES of table size."""
    if requested:
        return requested
    if snapshot.size_bytes <= 0:
        return UNKNOWN_SIZE_SEGMENTS
    return max(1, min(MAX_SEGMENTS, math.ceil(snapshot.size_bytes / SEGMENT_BYTES)))


class TableRun(RecoveryPointRun):
    """A table backup under way: what every piece needs. The CLI keeps it in memory; the state machine's Prepare
    stages it as the run document."""

    url: str
    options: BackupOptions
    snapshot: TableSnapshot
    # Scan: TotalSegments. Export: the data files (full), or the parent's segments and one more (incremental).
    total_segments: int
    # The read limit split over the segments that are read at once, in RCU/s.
    read_rate_per_worker: float | None = None
    export_arn: str | None = None
    export_type: Literal["FULL_EXPORT", "INCREMENTAL_EXPORT"] | None = None
    export_time: datetime | None = None
    # Incremental export: the change files every merge reads, and the parent's segment count.
    change_files: list[str] = Field(default_factory=list)
    parent_segments: int = 0
    worker_concurrency: int = Field(default=1, ge=1)
    # Format version 2 scans: segments stored key-sorted, as bases or deltas on ``delta_parent``'s segments (the
    # parent when it is layered with the same segments and key schema), in the source's ``generation``.
    layered: bool = False
    delta_parent: str | None = None
    generation: int = 0

    @property
    def key_names(self) -> list[str]:
        return list(self.snapshot.key_types)

    @property
    def incremental(self) -> bool:
        return self.export_type == "INCREMENTAL_EXPORT"


class SegmentWork(VaultlineModel):
    """One piece of work: a scan segment from a cursor, one full-export data file, or (``merge``) the parent's
    segment of that number to apply an incremental export's change set to."""

    segment: int = Field(ge=0)
    cursor: ScanCursor = Field(default_factory=ScanCursor)
    file: str | None = None
    merge: bool = False


class SegmentPart(VaultlineModel):
    """One stored part of one segment; ``next`` is where the segment continues (None: this part ends it)."""

    segment: int
    part: int
    entry: ObjectEntry
    items: int
    read_units: float = 0.0
    stats: BackupStats
    # A merge: the keys of the change set it applied (key_of's bytes, which are JSON text).
    applied: list[str] = Field(default_factory=list)
    next: SegmentWork | None = None
    # A layered delta: the segment's other entries (the parent's layers it builds on, the delta's deletes).
    more: list[ObjectEntry] = Field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.next is None

    @property
    def entries(self) -> list[ObjectEntry]:
        return [self.entry, *self.more]


def _part(
    segment: int,
    part: int,
    entry: ObjectEntry,
    items: int,
    read_units: float = 0.0,
    following: SegmentWork | None = None,
    applied: Sequence[bytes] = (),
    more: Sequence[ObjectEntry] = (),
) -> SegmentPart:
    # Item and byte figures; chunk figures are added by whoever flushes the writer.
    stats = BackupStats(objects=items, objects_read=items, bytes=entry.size, bytes_read=entry.size)
    return SegmentPart(
        segment=segment,
        part=part,
        entry=entry,
        items=items,
        read_units=read_units,
        stats=stats,
        applied=[key.decode() for key in applied],
        next=following,
        more=list(more),
    )


# -- opening a run ------------------------------------------------------------------------------------------------


def open_run(
    ddb: Any,
    url: str,
    options: BackupOptions,
    *,
    worker_concurrency: int = 1,
    plan: str | None = None,
    tags: Mapping[str, str] | None = None,
    compression_level: int | None = None,
) -> TableRun:
    """Describe the table and size the run (TableSizeBytes 0 = unknown, still at least one segment); the read limit
    is split over the ``worker_concurrency`` segments read at once. A share of an on-demand table fails here,
    before any lock or write."""
    ref = parse_table_url(url)
    snapshot = describe_table(ddb, ref.name)
    read_rate = options.read_units_per_second(snapshot)
    total_segments = segments_for(snapshot, options.segments)
    started = datetime.now(UTC)
    return TableRun(
        recovery_point=new_recovery_point_id(started),
        url=ref.url,
        options=options,
        snapshot=snapshot,
        total_segments=total_segments,
        started=started,
        plan=plan,
        tags=dict(tags or {}),
        compression_level=compression_level,
        read_rate_per_worker=read_rate / min(total_segments, worker_concurrency) if read_rate else None,
        worker_concurrency=worker_concurrency,
    )


def start_run(vault: Vault, ddb: Any, run: TableRun) -> list[SegmentWork] | None:
    """Under the run's shared vault lock: find the parent; in scan mode return the work (one item per segment), in
    export mode start the export and return None (its work comes from :func:`export_work` once it completed)."""
    vault.forget_index()
    recover_unindexed_packs(vault)
    parent = latest_for_source(vault, run.url)
    run.parent = parent.id if parent else None
    if run.options.mode == "scan":
        if vault.config.version >= layers.LAYERED_FORMAT_VERSION:
            _plan_layers(run, parent)
            stage_parent_layers(vault, run)
        return [SegmentWork(segment=segment) for segment in range(run.total_segments)]
    # Incremental when the parent is an export 15 minutes to 24 hours old: only the changes are exported, and
    # merged into the parent's streams. Otherwise a full export, one stream per data file.
    parent_info = table_info(parent) if parent is not None and run.options.incremental else None
    window = incremental_window(parent_info, run.started) if parent_info else None
    started = start_export(ddb, vault, run.snapshot, run.recovery_point, window)
    run.export_arn, run.export_type, run.export_time = started
    if run.incremental and parent is not None:
        run.parent_segments = parent.entry_count  # the manifest header counts its entries: one per export segment
    return None


def _plan_layers(run: TableRun, parent: RecoveryPoint | None) -> None:
    """Make ``run`` layered; against a layered parent of the same key schema, keep its segment count (deltas are
    per segment: another count re-bases the whole table) unless the table outgrew it twice over."""
    run.layered = True
    if parent is None or parent.source_kind != "dynamodb":
        return
    info = table_info(parent)
    if info.stream_layout != layers.LAYOUT or info.table.key_types != run.snapshot.key_types:
        return
    if not run.options.segments and run.snapshot.size_bytes <= 2 * SEGMENT_BYTES * info.total_segments:
        if run.read_rate_per_worker:
            total_rate = run.read_rate_per_worker * min(run.total_segments, run.worker_concurrency)
            run.read_rate_per_worker = total_rate / min(info.total_segments, run.worker_concurrency)
        run.total_segments = info.total_segments
    if run.total_segments == info.total_segments:
        run.delta_parent = parent.id
        run.generation = info.generation + 1


class StagedLayers(VaultlineModel):
    """One segment's entries of a delta parent, staged for the worker of that segment."""

    entries: list[ObjectEntry]


def parent_layers_key(rp_id: str, segment: int) -> str:
    return f"{run_prefix(rp_id)}{PARENT_LAYERS}{segment:05d}"


def stage_parent_layers(vault: Vault, run: TableRun, threads: int = 16) -> int:
    """Stage each segment's layers of the run's delta parent, sealed, from one streaming pass over its manifest,
    so that no worker reads the parent's whole manifest to find its segment. Prepare's memory: one segment's
    entries and the puts in flight; time: the manifest's read plus one PUT per segment (16 at once). Returns the
    number of segments staged."""
    if not run.delta_parent:
        return 0
    rp = load_recovery_point(vault, run.delta_parent)
    segments = layers.iter_segments(iter_entries(vault, rp), table_info(rp).total_segments, f"recovery point {rp.id}")

    def put(segment: layers.SegmentLayers) -> None:
        key = parent_layers_key(run.recovery_point, segment.segment)
        body = compress_document(StagedLayers(entries=segment.object_entries).model_dump_json().encode())
        vault.storage.put(key, vault.cipher.seal(body, key.encode()))

    staged = 0
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vl-stage") as pool:
        pending: deque[Future[None]] = deque()
        for segment in segments:
            pending.append(pool.submit(put, segment))
            staged += 1
            if len(pending) >= 2 * threads:
                pending.popleft().result()
        for future in pending:
            future.result()
    return staged


def delete_parent_layers(vault: Vault, rp_id: str) -> None:
    """Delete what :func:`stage_parent_layers` staged (the CLI's run; a state machine's run cleans its prefix)."""
    for obj in list(vault.storage.list(run_prefix(rp_id) + PARENT_LAYERS)):
        vault.storage.delete(obj.key)


def export_work(vault: Vault, run: TableRun) -> list[SegmentWork]:
    """The work of a completed export: one item per data file (full), or one merge per parent segment
    (incremental; :func:`commit_table` stores the items no segment held as one more segment)."""
    files = data_file_keys(vault, run.recovery_point)
    if run.incremental:
        run.change_files = files
        run.total_segments = run.parent_segments + 1
        return [SegmentWork(segment=n, merge=True) for n in range(run.parent_segments)]
    run.total_segments = len(files)
    return [SegmentWork(segment=n, file=key) for n, key in enumerate(files)]


# -- storing and merging segments ---------------------------------------------------------------------------------


@dataclass
class TableReader:
    """What one process reads segments from: the table (its client made on first use, every scan paced by one
    limiter and one time budget) and an incremental export's change set (read once). The CLI makes one for a
    whole backup, a state-machine step one per invocation."""

    vault: Vault
    run: TableRun
    sleep: Callable[[float], None] = time.sleep
    remaining_ms: Callable[[], int] | None = None
    reserve_ms: int = 60_000
    ddb: Any = None

    def client(self) -> Any:
        if self.ddb is None:
            self.ddb = table_client(parse_table_url(self.run.url))
        return self.ddb

    @cached_property
    def scan(self) -> ScanOptions:
        options = self.run.options
        return ScanOptions(
            consistent_read=options.consistent_read,
            page_limit=options.page_size,
            limiter=RateLimiter(self.run.read_rate_per_worker, sleep=self.sleep),
            backoff=Backoff(sleep=self.sleep),
            remaining_ms=self.remaining_ms,
            reserve_ms=self.reserve_ms,
            key_names=self.run.key_names,
        )

    @cached_property
    def changes(self) -> dict[bytes, bytes | None]:
        """The incremental export's change set by key (held whole: each merge applies it to one parent stream)."""
        changes: dict[bytes, bytes | None] = {}
        for key in self.run.change_files:
            changes.update(change_set(read_export_file(self.vault, key), self.run.key_names))
        return changes

    def parent_layers(self, segment: int) -> layers.SegmentLayers:
        """The delta parent's layers of ``segment``, as :func:`stage_parent_layers` staged them (one small read per
        segment, whatever the size of the parent's manifest)."""
        if not self.run.delta_parent:
            raise IntegrityError(f"recovery point {self.run.recovery_point}: a delta without a parent")
        key = parent_layers_key(self.run.recovery_point, segment)
        what = f"{self.vault.url}: {key}"
        plain = self.vault.cipher.open(self.vault.storage.get(key), key.encode(), what)
        staged = StagedLayers.model_validate_json(decompress_document(plain, what))
        return layers.segment_layers(segment, staged.entries, f"recovery point {self.run.delta_parent}")

    @cached_property
    def parent_segments(self) -> list[ObjectEntry]:
        """The parent's segment entries, read once (one per segment: at most MAX_SEGMENTS or one per export file)."""
        if not self.run.parent:
            raise IntegrityError(f"recovery point {self.run.recovery_point}: an incremental merge without a parent")
        return list(iter_entries(self.vault, load_recovery_point(self.vault, self.run.parent)))


def store_segment(
    vault: Vault, run: TableRun, work: SegmentWork, writer: BlobWriter, reader: TableReader
) -> SegmentPart:
    """Store one part of one segment: scan from ``work.cursor`` until the segment ends or the reader's time budget
    runs low (the part then names its ``next`` work), ingest one full-export data file, or merge a parent segment
    (:func:`merge_segment`). Storing the same work again stores the same part: safe."""
    if work.merge:
        return merge_segment(vault, run, work.segment, writer, reader)
    if work.file is not None:
        lines = full_export_lines(read_export_file(vault, work.file))
        entry, count = store_items(writer, work.segment, 0, lines, run.key_names)
        return _part(work.segment, 0, entry, count)
    if run.layered:
        return store_layered(vault, run, work, writer, reader)
    stream = StreamWriter(writer, ITEM_STREAM_CHUNKER)

    key_names = run.key_names

    def add(item: Mapping[str, Any]) -> int:
        return stream.add_item(item, key_names)

    result = scan_part(
        reader.client(), run.snapshot.name, work.segment, run.total_segments, add, work.cursor, reader.scan
    )
    entry = ObjectEntry(
        key=entry_key(work.segment, work.cursor.part),
        size=result.size,
        chunks=stream.finish(),
        metadata={"items": str(result.items)},
    )
    following = SegmentWork(segment=work.segment, cursor=result.next) if result.next else None
    return _part(work.segment, work.cursor.part, entry, result.items, result.read_units, following)


def store_layered(
    vault: Vault, run: TableRun, work: SegmentWork, writer: BlobWriter, reader: TableReader
) -> SegmentPart:
    """Scan one part of a segment into memory (at most layers.RUN_BYTES), sort it by key, and store it as a delta
    on the parent's segment when the part is the whole segment and no re-base is due, else as a base part."""
    lines: list[layers.KeyedLine] = []

    def add(item: Mapping[str, Any]) -> int:
        line = encode_item(item)
        anchor = item_anchor(item, run.key_names)
        if anchor is None:
            raise IntegrityError(f"table {run.snapshot.name}: an item without its key attributes {run.key_names}")
        lines.append((anchor, line))
        return len(line)

    scanned = scan_part(
        reader.client(),
        run.snapshot.name,
        work.segment,
        run.total_segments,
        add,
        work.cursor,
        reader.scan,
        max_bytes=layers.RUN_BYTES,
    )
    lines.sort()
    following = SegmentWork(segment=work.segment, cursor=scanned.next) if scanned.next else None
    whole = work.cursor.part == 0 and following is None
    if whole and run.delta_parent:
        stored = _store_delta(vault, run, work.segment, writer, reader, lines)
        if stored is not None:
            entry, *more = stored
            return _part(work.segment, 0, entry, scanned.items, scanned.read_units, more=more)
    entry = layers.store_base(writer, work.segment, work.cursor.part, lines)
    return _part(work.segment, work.cursor.part, entry, scanned.items, scanned.read_units, following)


def _store_delta(
    vault: Vault,
    run: TableRun,
    segment: int,
    writer: BlobWriter,
    reader: TableReader,
    lines: Sequence[layers.KeyedLine],
) -> list[ObjectEntry] | None:
    """The segment as a delta on its parent's layers (the new put stream first), or None when it is re-based."""
    parent = reader.parent_layers(segment)
    if layers.rebase_due(segment, run.generation, parent):
        return None
    chunks = ChunkReader(vault, lookahead=layers.MERGE_LOOKAHEAD)
    where = f"recovery point {run.delta_parent}"
    try:
        previous = layers.merged_lines(chunks, parent, run.key_names, where)
        puts, deletes = layers.changes_against(previous, lines, run.key_names)
    finally:
        chunks.close()
    if not puts and not deletes:
        return parent.object_entries[-1:] + parent.object_entries[:-1]  # unchanged: the chain as it is
    if layers.delta_too_big(parent, sum(len(line) for _, line in [*puts, *deletes])):
        return None
    *inherited, delete, put = layers.store_delta(writer, parent, puts, deletes)
    return [put, *inherited, delete]


def merge_segment(vault: Vault, run: TableRun, segment: int, writer: BlobWriter, reader: TableReader) -> SegmentPart:
    """The parent's stream number ``segment`` with the change set applied in place (unchanged stretches keep their
    chunks), recording the change keys it applied."""
    parents = reader.parent_segments
    if segment >= len(parents):
        raise IntegrityError(f"recovery point {run.parent} has no segment {segment} to merge changes into")
    chunks = ChunkReader(vault)
    try:
        lines, applied = apply_to_stream(chunks.stream(parents[segment].chunks), reader.changes, run.key_names)
    finally:
        chunks.close()
    stored, count = store_items(writer, segment, 0, lines, run.key_names)
    return _part(segment, 0, stored, count, applied=applied)


# -- committing ---------------------------------------------------------------------------------------------------


class ChainCheck:
    """What Commit learns in its first pass over the parts of ``stored`` segments: their sums, and whether every
    segment is complete. It holds three small fields per part (tens of thousands of parts at most), never a part's
    entries."""

    def __init__(self, stored: int) -> None:
        self.stored = stored
        self.stats = BackupStats()
        self.read_units = 0.0
        self.applied: set[bytes] = set()
        self._chains: dict[int, list[tuple[int, bool]]] = {}

    def counts(self, part: SegmentPart) -> bool:
        """Whether ``part`` belongs to a stored segment (so to the recovery point)."""
        return 0 <= part.segment < self.stored

    def add(self, part: SegmentPart) -> None:
        if not self.counts(part):
            return
        self._chains.setdefault(part.segment, []).append((part.part, part.done))
        self.stats.merge(part.stats)
        self.read_units += part.read_units
        self.applied.update(key.encode() for key in part.applied)

    def require_complete(self, recovery_point: str) -> None:
        """IntegrityError unless each segment's parts are 0..n and the last one ends it: a recovery point never
        silently lacks part of a table."""
        incomplete = []
        for segment in range(self.stored):
            chain = sorted(self._chains.get(segment, []))
            if not chain or [number for number, _ in chain] != list(range(len(chain))) or not chain[-1][1]:
                incomplete.append(segment)
        if incomplete:
            raise IntegrityError(f"recovery point {recovery_point}: segments {incomplete[:10]} are incomplete")


def entries_by_segment(parts: Iterable[SegmentPart], check: ChainCheck) -> Iterator[ObjectEntry]:
    """The parts' entries in the manifest's key order. Every entry key starts ``segment/<5 digits>/``, so sorting
    one segment's entries at a time is sorting them all: only one segment's entries are held (its parts arrive
    together, in segment order, as staging names them and as the CLI stores them)."""
    segment: int | None = None
    held: list[ObjectEntry] = []
    for part in parts:
        if not check.counts(part):
            continue
        if part.segment != segment:
            yield from sorted(held, key=lambda entry: entry.key)
            segment, held = part.segment, []
        held.extend(part.entries)
    yield from sorted(held, key=lambda entry: entry.key)


def commit_table(
    vault: Vault, run: TableRun, parts: Iterable[SegmentPart], writer: BlobWriter, reader: TableReader
) -> RecoveryPoint:
    """Check that the parts form complete chains, store an incremental run's new items as its last segment, then
    the entry stream, flush packs and index, and write the manifest last (the commit point).

    ``parts`` is iterated twice (sums and checks, then entries), in segment then part order; memory holds one
    segment's entries at a time, whatever the table's size (a list, or staging listed anew each time).
    """
    # An incremental run's last segment (the items created since the parent) is Commit's own.
    check = ChainCheck(run.parent_segments if run.incremental else run.total_segments)
    for part in parts:
        check.add(part)
    check.require_complete(run.recovery_point)
    stats = check.stats
    created: ObjectEntry | None = None
    if run.incremental:
        # Stored before the entry stream starts, so the two never share the writer's packs mid-stream.
        created, count = store_items(
            writer, run.parent_segments, 0, new_items(reader.changes, check.applied), run.key_names
        )
        stats.merge(_part(run.parent_segments, 0, created, count).stats)
    info = TableBackupInfo(
        table=run.snapshot,
        mode=run.options.mode,
        total_segments=max(1, run.total_segments),
        items=stats.objects,
        read_capacity_units=round(check.read_units, 3),
        consistent_read=run.options.consistent_read,
        export_arn=run.export_arn,
        export_type=run.export_type,
        export_time=run.export_time,
        item_chunker=layers.LAYERED_STREAM_CHUNKER if run.layered else ITEM_STREAM_CHUNKER,
        stream_layout=layers.LAYOUT if run.layered else layers.SCAN_ORDER,
        generation=run.generation,
    )
    # Chunks the parts' writers already flushed are in their stats; the commit adds what this writer flushes.
    draft = run.draft(run.url, "dynamodb", stats, {EXTRA_KEY: info.model_dump(mode="json")})
    entries = entries_by_segment(parts, check)
    return finish_recovery_point(vault, writer, draft, itertools.chain(entries, [created] if created else []))


class _SpilledParts:
    """The CLI's stored parts, spilled to a temporary file as JSON lines (each holds its chunk list: held in
    memory, a 1 TB table's would take gigabytes) and read back in order each time Commit walks them."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by __exit__)

    def __enter__(self) -> _SpilledParts:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()

    def append(self, part: SegmentPart) -> None:
        self._file.seek(0, os.SEEK_END)
        self._file.write(part.model_dump_json().encode() + b"\n")

    def __iter__(self) -> Iterator[SegmentPart]:
        self._file.seek(0)
        for line in iter(self._file.readline, b""):
            position = self._file.tell()
            yield SegmentPart.model_validate_json(line)
            self._file.seek(position)  # another walk or an append may have moved it meanwhile


# -- the CLI: every piece in one process --------------------------------------------------------------------------


def run_table_backup(
    vault: Vault,
    url: str,
    options: BackupOptions | None = None,
    plan: str | None = None,
    tags: Mapping[str, str] | None = None,
    compression_level: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    ddb: Any = None,
) -> RecoveryPoint:
    """Back up the table at ``url`` in this process and commit a recovery point: the state machine's pieces in a
    loop, one segment after the other, every part into one blob writer."""
    options = options or BackupOptions()
    ddb = ddb or table_client(parse_table_url(url))
    run = open_run(ddb, url, options, plan=plan, tags=tags, compression_level=compression_level)
    # Shared vault lock, as for S3 backups: a prune cannot delete blobs this backup finds in the index and reuses.
    with vault_lock(vault.storage, "backup", exclusive=False):
        try:
            work = start_run(vault, ddb, run)
            if work is None:
                wait_for_export(ddb, str(run.export_arn), sleep)
                work = export_work(vault, run)
            reader = TableReader(vault, run, sleep=sleep, ddb=ddb)
            with BlobWriter(vault, compression_level) as writer, _SpilledParts() as parts:
                for item in work:
                    following: SegmentWork | None = item
                    while following is not None:
                        part = store_segment(vault, run, following, writer, reader)
                        parts.append(part)
                        following = part.next
                return commit_table(vault, run, parts, writer, reader)
        finally:
            if options.mode == "export":
                delete_export(vault, run.recovery_point)
            delete_parent_layers(vault, run.recovery_point)
