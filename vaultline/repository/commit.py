"""One commit for every source kind: store a recovery point's entry stream, flush its packs and index, then write
its manifest last (the commit point: a recovery point exists if and only if its manifest does).

Each source kind drafts its header (:class:`RecoveryPointDraft`: what it backed up, when, and what its kind records
under ``extra``); :func:`finish_recovery_point` is the one path from a draft and its entries to a manifest, for the
CLI and for the state machines' Commit steps alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from vaultline.model import VaultlineModel
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.chunking import Chunker
from vaultline.repository.manifest import (
    BackupStats,
    Entry,
    ObjectEntry,
    RecoveryPoint,
    commit_recovery_point,
    load_recovery_point,
    write_sorted_entries,
)
from vaultline.repository.vault import Vault

SourceKind = Literal["s3", "local", "dynamodb"]


class RecoveryPointRun(VaultlineModel):
    """What a backup run of any source kind knows, from its start to its commit, about the recovery point it makes:
    the run documents of the S3 and DynamoDB workflows (and the CLI's table run) extend it."""

    recovery_point: str
    started: datetime
    parent: str | None = None
    plan: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    compression_level: int | None = None

    def draft(
        self, source: str, source_kind: SourceKind, stats: BackupStats, extra: dict[str, Any]
    ) -> RecoveryPointDraft:
        """The draft this run commits, with the figures its workers stored and what its source kind records."""
        run = {name: getattr(self, name) for name in RecoveryPointRun.model_fields}
        return RecoveryPointDraft(**run, source=source, source_kind=source_kind, stats=stats, extra=extra)


class RecoveryPointDraft(RecoveryPointRun):
    """A recovery point's header before its entries are stored: the run's part and everything the source kind
    knows."""

    model_config = ConfigDict(extra="forbid")

    source: str
    source_kind: SourceKind
    # The figures of the data already written elsewhere (other workers, or this run's writer so far): the commit
    # adds what its own writer stores, and the seconds from ``started`` to the manifest's write.
    stats: BackupStats = Field(default_factory=BackupStats)
    # What the source kind records beside the standard header (skipped objects, tags age, a table's description).
    extra: dict[str, Any] = Field(default_factory=dict)


_NOT_IN_HEADER = ("recovery_point", "started", "stats", "compression_level")


@dataclass(frozen=True)
class StoredEntries:
    """A recovery point's entry stream once stored: the MANIFEST blobs that hold it and how many entries."""

    blobs: list[str]
    count: int


def store_entries(
    vault: Vault, writer: BlobWriter, entries: Iterable[Entry], what: str = "recovery point"
) -> StoredEntries:
    """Store a key-sorted entry stream as MANIFEST blobs as it arrives (memory stays bounded whatever its length);
    keys out of order raise IntegrityError naming ``what``. The blobs are safe to name once ``writer`` is flushed."""
    blobs, count = write_sorted_entries(writer, Chunker(vault.config.chunker), entries, what)
    return StoredEntries(blobs, count)


def finish_recovery_point(
    vault: Vault, writer: BlobWriter, draft: RecoveryPointDraft, entries: Iterable[ObjectEntry]
) -> RecoveryPoint:
    """Store the entry stream (sorted by key: it is streamed, never held), flush every pack and index, then write
    the manifest; return its header."""
    stored = store_entries(vault, writer, entries, f"recovery point {draft.recovery_point}")
    return commit_stored(vault, writer, draft, stored)


def commit_stored(vault: Vault, writer: BlobWriter, draft: RecoveryPointDraft, stored: StoredEntries) -> RecoveryPoint:
    """Flush every pack and index, then write the manifest of ``draft`` naming the ``stored`` entries.

    For a caller that learns its figures while its entries stream (a Commit sums its parts' stats as it reads
    them): it stores the entries first, then drafts the header.
    """
    stats = draft.stats.model_copy()
    stats.add_written(writer.flush())
    finished = datetime.now(UTC)
    stats.seconds = round((finished - draft.started).total_seconds(), 3)
    # The draft's fields are the header's, but for its id, its start (the header's ``time``), its stats (completed
    # here) and the writers' compression level (a setting of the run, not of the recovery point).
    drafted = {name: value for name, value in draft if name not in _NOT_IN_HEADER}
    header = RecoveryPoint(
        **drafted,
        id=draft.recovery_point,
        time=draft.started,
        finished=finished,
        stats=stats,
        entry_count=stored.count,
        entry_blobs=stored.blobs,
    )
    if not commit_recovery_point(vault, header):
        # A retried Commit whose first attempt wrote the manifest: the first one is the recovery point.
        return load_recovery_point(vault, header.id)
    return header
