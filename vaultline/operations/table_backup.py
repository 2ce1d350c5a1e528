"""Backing up a table in one process (the CLI path); the serverless steps run the same pieces per segment."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from vaultline.operations.backup import recover_unindexed_packs
from vaultline.repository.blob_reader import ChunkReader
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.commit import RecoveryPointDraft, finish_recovery_point
from vaultline.repository.locks import vault_lock
from vaultline.repository.manifest import (
    BackupStats,
    ObjectEntry,
    RecoveryPoint,
    iter_entries,
    latest_for_source,
    new_recovery_point_id,
)
from vaultline.repository.vault import Vault
from vaultline.runs.staging import clean_run
from vaultline.sources.dynamodb.export import (
    apply_changes,
    change_set,
    data_file_keys,
    full_export_lines,
    incremental_window,
    read_export_file,
    start_export,
    wait_for_export,
)
from vaultline.sources.dynamodb.model import EXTRA_KEY, BackupOptions, TableBackupInfo, table_info
from vaultline.sources.dynamodb.scan import ScanOptions, scan_segment, store_items
from vaultline.sources.dynamodb.table import TableSnapshot, describe_table, parse_table_url, table_client
from vaultline.sources.dynamodb.throttle import Backoff, RateLimiter

# One segment per this many bytes of table: a worker reads ~1 GiB well inside a few Lambda invocations, and the map
# stays small for small tables. DynamoDB updates TableSizeBytes about every six hours (moto always reports 0), so a
# size of 0 means "unknown", not "empty": it gets UNKNOWN_SIZE_SEGMENTS.
SEGMENT_BYTES = 1024**3
MAX_SEGMENTS = 1000
UNKNOWN_SIZE_SEGMENTS = 1


def segments_for(snapshot: TableSnapshot, requested: int | None = None) -> int:
    """TotalSegments for a scan: as requested, or one per SEGMENT_BYTES of table size."""
    if requested:
        return requested
    if snapshot.size_bytes <= 0:
        return UNKNOWN_SIZE_SEGMENTS
    return max(1, min(MAX_SEGMENTS, math.ceil(snapshot.size_bytes / SEGMENT_BYTES)))


def stats_for_parts(parts: list[tuple[ObjectEntry, int]]) -> BackupStats:
    """Item and byte figures of stored parts (chunk figures come from the writer)."""
    stats = BackupStats()
    for entry, items in parts:
        stats.objects += items
        stats.objects_read += items
        stats.bytes += entry.size
        stats.bytes_read += entry.size
    return stats


def commit_table_backup(
    vault: Vault,
    writer: BlobWriter,
    rp_id: str,
    url: str,
    started: datetime,
    entries: list[ObjectEntry],
    stats: BackupStats,
    parent: RecoveryPoint | None,
    info: TableBackupInfo,
    plan: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> RecoveryPoint:
    """Store the entry stream, flush packs and index, then write the manifest last (the commit point)."""
    info.items = stats.objects
    draft = RecoveryPointDraft(
        id=rp_id,
        source=url,
        source_kind="dynamodb",
        started=started,
        parent=parent.id if parent else None,
        plan=plan,
        tags=dict(tags or {}),
        stats=stats,
        extra={EXTRA_KEY: info.model_dump(mode="json")},
    )
    return finish_recovery_point(vault, writer, draft, entries)


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
    """Back up the table at ``url`` in this process and commit a recovery point."""
    options = options or BackupOptions()
    ref = parse_table_url(url)
    ddb = ddb or table_client(ref)
    snapshot = describe_table(ddb, ref.name)
    options.read_units_per_second(snapshot)  # a share of an on-demand table fails here, before any lock or write
    started = datetime.now(UTC)
    rp_id = new_recovery_point_id(started)
    # Shared vault lock, as for S3 backups: a prune cannot delete blobs this backup finds in the index and reuses.
    with vault_lock(vault.storage, "backup", exclusive=False):
        vault.reload_index()
        recover_unindexed_packs(vault)
        parent = latest_for_source(vault, ref.url)
        with BlobWriter(vault, compression_level) as writer:
            if options.mode == "export":
                info, parts = _export_parts(vault, ddb, snapshot, rp_id, parent, writer, options, sleep)
            else:
                info, parts = _scan_parts(ddb, snapshot, writer, options, sleep)
            stats = stats_for_parts(parts)
            try:
                return commit_table_backup(
                    vault, writer, rp_id, ref.url, started, [e for e, _ in parts], stats, parent, info, plan, tags
                )
            finally:
                if options.mode == "export":
                    clean_run(vault, rp_id)


def _scan_parts(
    ddb: Any, snapshot: TableSnapshot, writer: BlobWriter, options: BackupOptions, sleep: Callable[[float], None]
) -> tuple[TableBackupInfo, list[tuple[ObjectEntry, int]]]:
    total = segments_for(snapshot, options.segments)
    scan = ScanOptions(
        consistent_read=options.consistent_read,
        page_limit=options.page_size,
        limiter=RateLimiter(options.read_units_per_second(snapshot), sleep=sleep),
        backoff=Backoff(sleep=sleep),
        key_names=list(snapshot.key_types),
    )
    parts = []
    for segment in range(total):
        result = scan_segment(ddb, snapshot.name, segment, total, writer, options=scan)
        parts.append((result.entry, result.items))
    info = TableBackupInfo(
        table=snapshot,
        mode="scan",
        total_segments=total,
        read_capacity_units=round(scan.limiter.consumed, 3),
        consistent_read=options.consistent_read,
    )
    return info, parts


def _export_parts(
    vault: Vault,
    ddb: Any,
    snapshot: TableSnapshot,
    rp_id: str,
    parent: RecoveryPoint | None,
    writer: BlobWriter,
    options: BackupOptions,
    sleep: Callable[[float], None],
) -> tuple[TableBackupInfo, list[tuple[ObjectEntry, int]]]:
    parent_info = table_info(parent) if parent else None
    window = incremental_window(parent_info, datetime.now(UTC)) if options.incremental else None
    arn, export_type, export_time = start_export(ddb, vault, snapshot, rp_id, window)
    wait_for_export(ddb, arn, sleep)
    keys = data_file_keys(vault, rp_id)
    parts: list[tuple[ObjectEntry, int]] = []
    if export_type == "INCREMENTAL_EXPORT" and parent is not None:
        parts = _merge_incremental(vault, parent, keys, snapshot, writer)
    else:
        for segment, key in enumerate(keys):
            lines = full_export_lines(read_export_file(vault, key))
            parts.append(store_items(writer, segment, 0, lines, list(snapshot.key_types)))
    info = TableBackupInfo(
        table=snapshot,
        mode="export",
        total_segments=max(1, len(parts)),
        export_arn=arn,
        export_type=export_type,
        export_time=export_time,
    )
    return info, parts


def _merge_incremental(
    vault: Vault, parent: RecoveryPoint, keys: list[str], snapshot: TableSnapshot, writer: BlobWriter
) -> list[tuple[ObjectEntry, int]]:
    key_names = list(snapshot.key_types)
    changes: dict[bytes, bytes | None] = {}
    for key in keys:
        changes.update(change_set(read_export_file(vault, key), key_names))
    reader = ChunkReader(vault)
    try:
        streams = (reader.stream(entry.chunks) for entry in iter_entries(vault, parent))
        return [
            store_items(writer, segment, 0, lines, key_names)
            for segment, lines in enumerate(apply_changes(streams, changes, key_names))
        ]
    finally:
        reader.close()
