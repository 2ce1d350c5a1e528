"""Backing up a source into a vault: read what changed, store new chunks, commit a manifest last.

The unit of work is :func:`backup_objects` (one batch of listed objects -> entries and stats): the CLI runs it
over the whole listing in one process, the Lambda workers each run it over one batch of the work list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vaultline.chunking import Chunker
from vaultline.errors import IntegrityError, SourceError
from vaultline.index import write_index
from vaultline.locks import vault_lock
from vaultline.manifest import (
    BackupStats,
    ObjectEntry,
    RecoveryPoint,
    commit_recovery_point,
    iter_entries,
    latest_for_source,
    new_recovery_point_id,
    write_entries,
)
from vaultline.packer import BlobWriter
from vaultline.packs import BlobType, list_pack_ids
from vaultline.sources.base import Source
from vaultline.vault import Vault

Progress = Callable[[int, int], None]
"""Called with (objects done, bytes done) increments."""


@dataclass
class BatchOutcome:
    """What backing up one batch produced: entries for the manifest, figures, vanished keys."""

    entries: list[ObjectEntry] = field(default_factory=list)
    stats: BackupStats = field(default_factory=BackupStats)
    vanished: list[str] = field(default_factory=list)


def backup_objects(
    vault: Vault,
    source: Source,
    listed: Iterable[ObjectEntry],
    previous: Mapping[str, ObjectEntry],
    writer: BlobWriter,
    progress: Progress | None = None,
) -> BatchOutcome:
    """Back up ``listed`` objects; those matching ``previous`` (same key, version, size, ETag, mtime) are not read.

    The caller flushes ``writer`` before the entries may be committed anywhere.
    """
    chunker = Chunker(vault.config.chunker)
    outcome = BatchOutcome()
    stats = outcome.stats
    for item in listed:
        stats.objects += 1
        stats.bytes += item.size
        before = previous.get(item.key)
        if before is not None and before.same_content(item):
            outcome.entries.append(before)
            stats.objects_unchanged += 1
            if progress:
                progress(1, item.size)
            continue
        try:
            entry = _store_object(source, item, chunker, writer, progress)
        except SourceError as exc:
            if _vanished(exc):
                # Deleted between listing and reading: the recovery point records the bucket as it is now.
                outcome.vanished.append(item.key)
                stats.objects -= 1
                stats.bytes -= item.size
                continue
            raise
        stats.objects_read += 1
        stats.bytes_read += entry.size
        outcome.entries.append(entry)
    return outcome


def _vanished(exc: SourceError) -> bool:
    return "NoSuchKey" in str(exc) or "NoSuchVersion" in str(exc)


def _store_object(
    source: Source, item: ObjectEntry, chunker: Chunker, writer: BlobWriter, progress: Progress | None
) -> ObjectEntry:
    with source.open(item) as (stream, entry):
        chunks = []
        size = 0
        for chunk in chunker.split(stream):
            chunks.append(writer.add(chunk, BlobType.DATA).hex())
            size += len(chunk)
            if progress:
                progress(0, len(chunk))
        if progress:
            progress(1, 0)
    entry.chunks = chunks
    entry.size = size
    return entry


def recover_unindexed_packs(vault: Vault) -> int:
    """Index packs that a crashed backup uploaded but never indexed, so the next backup reuses them.

    Each such pack is read whole and verified (its bytes hash to its name, its header matches its blob area)
    before it is indexed: a damaged leftover is skipped, never trusted, and prune removes it later.
    """
    known = vault.index.packs
    orphans = [pack_id for pack_id in list_pack_ids(vault.storage) if pack_id not in known]
    recovered = []
    for pack_id in orphans:
        try:
            recovered.append((pack_id, vault.read_verified_pack_entries(pack_id)))
        except IntegrityError:
            continue
    if recovered:
        write_index(vault.storage, recovered, vault.cipher)
        for pack_id, entries in recovered:
            vault.index.add_pack(pack_id, entries)
    return len(recovered)


def load_previous(vault: Vault, parent: RecoveryPoint | None) -> dict[str, ObjectEntry]:
    """Entries of the parent recovery point by key (empty for a first backup)."""
    if parent is None:
        return {}
    return {entry.key: entry for entry in iter_entries(vault, parent)}


def finish_recovery_point(
    vault: Vault,
    writer: BlobWriter,
    rp_id: str,
    source: Source,
    started: datetime,
    entries: Iterable[ObjectEntry],
    stats: BackupStats,
    parent: RecoveryPoint | None,
    plan: str | None = None,
    tags: Mapping[str, str] | None = None,
    clock_start: float | None = None,
) -> RecoveryPoint:
    """Store the entry stream, flush every pack and index, then write the manifest: the commit point.

    ``stats`` arrive with the figures of the data already written elsewhere (other workers); this writer's own
    figures are added to them.
    """
    entry_blobs, count = write_entries(writer, Chunker(vault.config.chunker), entries)
    written = writer.flush()
    stats.packs += len(written.packs)
    stats.bytes_stored += written.stored_bytes
    stats.new_chunks += written.new_blobs
    stats.duplicate_chunks += written.duplicate_blobs
    if clock_start is not None:
        stats.seconds = round(time.monotonic() - clock_start, 3)
    header = RecoveryPoint(
        id=rp_id,
        source=source.url,
        source_kind=source.kind,
        time=started,
        finished=datetime.now(UTC),
        parent=parent.id if parent else None,
        plan=plan,
        tags=dict(tags or {}),
        stats=stats,
        entry_count=count,
        entry_blobs=entry_blobs,
    )
    commit_recovery_point(vault, header)
    return header


def run_backup(
    vault: Vault,
    source: Source,
    plan: str | None = None,
    tags: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    compression_level: int | None = None,
) -> RecoveryPoint:
    """Back up ``source`` in this process and commit a recovery point (the CLI path).

    A shared vault lock is held throughout, taken before the index is read: a prune (exclusive lock) cannot
    delete a blob this backup deduplicates against while it runs (docs/vault-format.md, section 17).
    """
    clock = time.monotonic()
    started = datetime.now(UTC)
    rp_id = new_recovery_point_id(started)
    with vault_lock(vault.storage, "backup", exclusive=False):
        vault.reload_index()  # the index may have changed (a prune) since this Vault object loaded it
        recover_unindexed_packs(vault)
        parent = latest_for_source(vault, source.url)
        previous = load_previous(vault, parent)
        with BlobWriter(vault, compression_level) as writer:
            outcome = backup_objects(vault, source, source.list(), previous, writer, progress)
            return finish_recovery_point(
                vault, writer, rp_id, source, started, outcome.entries, outcome.stats, parent, plan, tags, clock
            )
