"""Backing up a source into a vault: read what changed, store new chunks, commit a manifest last.

The unit of work is :func:`backup_stream` (listed objects, each paired with its parent's entry when unchanged ->
entries, produced one by one): the CLI runs it over the whole listing merge-joined with the parent's manifest and
streams its entries into the new manifest, so memory does not grow with the source; the Lambda workers run it over
one batch of the work list through :func:`backup_objects`, which returns the batch's entries as a list.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ConfigDict

from vaultline.errors import IntegrityError
from vaultline.model import VaultlineModel
from vaultline.operations.chunk_ahead import ChunkAhead, ObjectChunks
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.chunking import Chunker
from vaultline.repository.commit import RecoveryPointDraft, finish_recovery_point
from vaultline.repository.entry_streams import join_with_parent
from vaultline.repository.locks import vault_lock
from vaultline.repository.manifest import (
    ISSUES_LISTED,
    BackupStats,
    Issues,
    ObjectEntry,
    ObjectIssue,
    RecoveryPoint,
    iter_entries,
    latest_for_source,
    new_recovery_point_id,
)
from vaultline.repository.packs import BlobType, list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.sources.base import ObjectArchived, ObjectVanished, Source
from vaultline.sources.s3_options import ArchivedObjects, TagsRefresh

Progress = Callable[[int, int], None]
"""Called with (objects done, bytes done) increments."""


class BackupOptions(VaultlineModel):
    """How a backup treats what it cannot read and what its change test cannot see (plan options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # skip: record an archived object as an issue and back up the rest; fail: the run fails, no recovery point.
    archived_objects: ArchivedObjects = "skip"
    # Re-read the tags of unchanged objects (one GetObjectTagging each): every backup, every N-th, or never.
    tags_refresh: TagsRefresh = "always"

    def tags_due(self, parent: RecoveryPoint | None) -> bool:
        """Whether this backup re-reads the tags of unchanged objects, given the parent's tags age."""
        if parent is None or self.tags_refresh == "never":
            return False
        if self.tags_refresh == "always" or parent.tags_age is None:
            return True
        return parent.tags_age + 1 >= self.tags_refresh

    def tags_age(self, parent: RecoveryPoint | None, refreshed: bool) -> int | None:
        """The new recovery point's ``extra.tags_age``: 0 when every object's tags were read."""
        if parent is None or refreshed:
            return 0
        return None if parent.tags_age is None else parent.tags_age + 1


TAG_THREADS = 16
TAG_LOOKAHEAD = 64
# Listed items looked ahead for objects to read, cut and hash before the backup reaches them (operations.chunk_ahead).
CHUNK_LOOKAHEAD = 32


@dataclass
class BatchOutcome:
    """What backing up one batch produced: entries for the manifest, figures, objects skipped and why."""

    entries: list[ObjectEntry] = field(default_factory=list)
    stats: BackupStats = field(default_factory=BackupStats)
    issues: list[ObjectIssue] = field(default_factory=list)


def backup_objects(
    vault: Vault,
    source: Source,
    listed: Iterable[ObjectEntry],
    previous: Mapping[str, ObjectEntry],
    writer: BlobWriter,
    progress: Progress | None = None,
    options: BackupOptions | None = None,
    refresh_tags: bool = False,
) -> BatchOutcome:
    """Back up ``listed`` objects (one bounded batch: its entries and issues are returned as lists); those matching
    ``previous`` (same key, version, size, ETag, mtime) are not read, only their tags when ``refresh_tags`` (and the
    source has tags). :func:`backup_stream` says what is left out and why; the caller flushes ``writer`` before the
    entries may be committed anywhere."""
    outcome = BatchOutcome()
    paired = ((item, unchanged_entry(previous, item)) for item in listed)
    stream = backup_stream(
        vault, source, paired, writer, outcome.stats, outcome.issues.append, progress, options, refresh_tags
    )
    outcome.entries.extend(stream)
    return outcome


def backup_stream(
    vault: Vault,
    source: Source,
    paired: Iterable[tuple[ObjectEntry, ObjectEntry | None]],
    writer: BlobWriter,
    stats: BackupStats,
    record_issue: Callable[[ObjectIssue], None],
    progress: Progress | None = None,
    options: BackupOptions | None = None,
    refresh_tags: bool = False,
) -> Iterator[ObjectEntry]:
    """Back up each listed object as the stream is consumed and yield its entry, in the order listed: each item comes
    with its parent's entry when unchanged (not read again, only its tags when ``refresh_tags`` and the source has
    tags; :func:`repository.entry_streams.join_with_parent` pairs a sorted listing with the parent's manifest).

    Nothing is kept per object: ``stats`` is added to as entries are produced and each object left out is handed to
    ``record_issue``: one deleted since the listing, or (with ``archived_objects: skip``) one in an archive tier.
    """
    options = options or BackupOptions()
    retag = refresh_tags and source.has_tags
    with ChunkAhead(source, Chunker(vault.config.chunker), vault.cipher.chunk_id) as ahead:
        items = _tags_read_ahead(source, paired, retag)
        yield from _store_stream(ahead, items, writer, stats, record_issue, progress, options)


def _store_stream(
    ahead: ChunkAhead,
    items: Iterable[tuple[ObjectEntry, ObjectEntry | None, Future[dict[str, str]] | None]],
    writer: BlobWriter,
    stats: BackupStats,
    record_issue: Callable[[ObjectIssue], None],
    progress: Progress | None,
    options: BackupOptions,
) -> Iterator[ObjectEntry]:
    for item, before, tags, chunks in _chunked_ahead(ahead, items):
        unchanged = before is not None
        try:
            if before is not None:
                entry = before if tags is None else before.model_copy(update={"tags": tags.result()})
            else:
                assert chunks is not None  # every changed object is started before it comes out
                entry = _store_object(chunks, writer, progress)
        except ObjectVanished as exc:
            # Deleted between listing and reading: the recovery point records the bucket as it is now.
            record_issue(_issue(item, "vanished", exc))
            continue
        except ObjectArchived as exc:
            if options.archived_objects == "fail":
                raise
            record_issue(_issue(item, "archived", exc, exc.storage_class))
            stats.errors += 1
            continue
        stats.objects += 1
        stats.bytes += entry.size
        if unchanged:
            stats.objects_unchanged += 1
            if progress:
                progress(1, item.size)
        else:
            stats.objects_read += 1
            stats.bytes_read += entry.size
        yield entry


def _tags_read_ahead(
    source: Source, paired: Iterable[tuple[ObjectEntry, ObjectEntry | None]], retag: bool
) -> Iterator[tuple[ObjectEntry, ObjectEntry | None, Future[dict[str, str]] | None]]:
    """Each listed item with its parent entry when unchanged (the same content: not read again) and, when ``retag``,
    the pending GetObjectTagging of that entry: a few dozen run ahead in parallel, since one request per object
    made one by one would be most of an unchanged bucket's backup time."""
    window: deque[tuple[ObjectEntry, ObjectEntry | None, Future[dict[str, str]] | None]] = deque()
    with ThreadPoolExecutor(max_workers=TAG_THREADS, thread_name_prefix="vl-tags") as pool:
        for item, before in paired:
            tags = pool.submit(source.read_tags, before) if retag and before is not None else None
            window.append((item, before, tags))
            if len(window) > TAG_LOOKAHEAD:
                yield window.popleft()
        while window:
            yield window.popleft()


def unchanged_entry(previous: Mapping[str, ObjectEntry], item: ObjectEntry) -> ObjectEntry | None:
    """The parent's entry of a listed ``item`` whose object is unchanged (same key, version, size, ETag and mtime):
    such an object is not read again, its chunks are reused. The one change test of the CLI and the Lambda paths."""
    before = previous.get(item.key)
    return before if before is not None and before.same_content(item) else None


def _issue(
    item: ObjectEntry, kind: Literal["archived", "vanished"], exc: Exception, storage: str | None = None
) -> ObjectIssue:
    return ObjectIssue(
        key=item.key,
        kind=kind,
        reason=str(exc),
        version_id=item.version_id,
        storage_class=storage or item.storage_class,
    )


def _chunked_ahead(
    ahead: ChunkAhead, items: Iterable[tuple[ObjectEntry, ObjectEntry | None, Future[dict[str, str]] | None]]
) -> Iterator[tuple[ObjectEntry, ObjectEntry | None, Future[dict[str, str]] | None, ObjectChunks | None]]:
    """Each item, in order, with the chunks of the object when it is to be read: the objects of the next
    :data:`CHUNK_LOOKAHEAD` items are read, cut and hashed ahead, as many as ``ahead``'s byte budget lets in."""
    window: deque[_Slot] = deque()
    waiting: deque[_Slot] = deque()  # changed objects in the window not started yet, in order

    def start_what_fits() -> None:
        while waiting and ahead.room_for(waiting[0].item):
            slot = waiting.popleft()
            slot.chunks = ahead.start(slot.item)

    def emit() -> Iterator[tuple[ObjectEntry, ObjectEntry | None, Future[dict[str, str]] | None, ObjectChunks | None]]:
        start_what_fits()  # the oldest changed object always fits once everything before it is taken
        slot = window.popleft()
        yield slot.item, slot.before, slot.tags, slot.chunks
        if slot.chunks is not None:
            ahead.taken(slot.chunks)
        start_what_fits()

    for item, before, tags in items:
        slot = _Slot(item, before, tags)
        window.append(slot)
        if before is None:
            waiting.append(slot)
        start_what_fits()
        # Past the lookahead, or with the byte budget full (nothing more can start until the oldest is taken).
        while len(window) > CHUNK_LOOKAHEAD or (waiting and not ahead.room_for(waiting[0].item)):
            yield from emit()
    while window:
        yield from emit()


@dataclass
class _Slot:
    """One listed item in the read-ahead window."""

    item: ObjectEntry
    before: ObjectEntry | None
    tags: Future[dict[str, str]] | None
    chunks: ObjectChunks | None = None


def _store_object(chunks: ObjectChunks, writer: BlobWriter, progress: Progress | None) -> ObjectEntry:
    """Store the chunks of one object as they are read (their ids come with them); return its entry."""
    ids = []
    size = 0
    for chunk, blob_id in chunks:
        ids.append(writer.add(chunk, BlobType.DATA, blob_id).hex())
        size += len(chunk)
        if progress:
            progress(0, len(chunk))
    if progress:
        progress(1, 0)
    entry = chunks.entry
    assert entry is not None  # set before the last chunk is taken
    entry.chunks = ids
    entry.size = size
    return entry


def recover_unindexed_packs(vault: Vault) -> int:
    """Index packs that a crashed backup uploaded but never indexed, so the next backup reuses them.

    Each such pack is read whole and verified (its bytes hash to its name, its header matches its blob area)
    before it is indexed: a damaged leftover is skipped, never trusted, and prune removes it later.
    """
    known = vault.lookup
    orphans = [pack_id for pack_id in list_pack_ids(vault.storage) if not known.has_pack(pack_id)]
    recovered = []
    for pack_id in orphans:
        try:
            recovered.append((pack_id, vault.read_verified_pack_entries(pack_id)))
        except IntegrityError:
            continue
    if recovered:
        vault.write_index(recovered)
        for pack_id, entries in recovered:
            vault.lookup.add_pack(pack_id, entries)
    return len(recovered)


def header_extra(issues: Iterable[ObjectIssue] | Issues, tags_age: int | None) -> dict[str, Any]:
    """``extra`` of an S3 or directory recovery point's draft: each key only when it says something. ``issues``
    are the skipped objects, or their summary already counted (a Commit sums its parts' as it reads them)."""
    return extra_of(issues if isinstance(issues, Issues) else Issues.of(issues), tags_age)


def extra_of(issues: Issues, tags_age: int | None) -> dict[str, Any]:
    """``extra`` from the summary of the objects skipped (counts and the first of them) and the tags age."""
    extra: dict[str, Any] = {}
    if issues.total:
        extra["issues"] = issues.model_dump(mode="json", exclude_defaults=True)
    if tags_age is not None:
        extra["tags_age"] = tags_age
    return extra


@dataclass
class IssueTally:
    """Objects left out of a backup, counted, and the first :data:`ISSUES_LISTED` of them by key kept: what a
    manifest header records, in memory that does not grow with the number of issues."""

    listed: int = ISSUES_LISTED
    archived: int = 0
    vanished: int = 0
    first: list[ObjectIssue] = field(default_factory=list)

    def add(self, issue: ObjectIssue) -> None:
        if issue.kind == "archived":
            self.archived += 1
        else:
            self.vanished += 1
        self.first.append(issue)
        if len(self.first) >= 2 * self.listed:  # whatever order they come in: the lowest keys stay
            self._trim()

    def _trim(self) -> None:
        self.first = sorted(self.first, key=lambda i: i.key)[: self.listed]

    def summary(self) -> Issues:
        self._trim()
        return Issues(archived=self.archived, vanished=self.vanished, objects=list(self.first))


def run_backup(
    vault: Vault,
    source: Source,
    plan: str | None = None,
    tags: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    compression_level: int | None = None,
    options: BackupOptions | None = None,
) -> RecoveryPoint:
    """Back up ``source`` in this process and commit a recovery point (the CLI path). The listing (in key order) is
    merge-joined with the parent's entry stream and each entry goes on to the manifest writer as it is produced:
    the listing, the parent and the new entries are never held whole; the figures are counts and the issues the
    first :data:`ISSUES_LISTED` by key.

    A shared vault lock is held throughout, taken before the index is read: a prune (exclusive lock) cannot
    delete a blob this backup deduplicates against while it runs (docs/vault-format.md, section 17).
    """
    started = datetime.now(UTC)
    rp_id = new_recovery_point_id(started)
    with vault_lock(vault.storage, "backup", exclusive=False):
        vault.forget_index()  # the index may have changed (a prune) since this Vault object loaded it
        recover_unindexed_packs(vault)
        parent = latest_for_source(vault, source.url)
        options = options or BackupOptions()
        retag = options.tags_due(parent) and source.has_tags
        draft = RecoveryPointDraft(
            recovery_point=rp_id,
            source=source.url,
            source_kind=source.kind,
            started=started,
            parent=parent.id if parent else None,
            plan=plan,
            tags=dict(tags or {}),
            compression_level=compression_level,
        )
        tags_age = options.tags_age(parent, retag) if source.has_tags else None
        with BlobWriter(vault, compression_level) as writer:
            # The listing, merge-joined with the parent's manifest, flows object by object into the new manifest:
            # nothing here holds the listing, the parent or the entries.
            paired = join_with_parent(source.list(), iter_entries(vault, parent) if parent else ())
            stats, issues = BackupStats(), IssueTally()
            entries = backup_stream(vault, source, paired, writer, stats, issues.add, progress, options, retag)
            return finish_recovery_point(vault, writer, draft, _filling(draft, entries, stats, issues, tags_age))


def _filling(
    draft: RecoveryPointDraft,
    entries: Iterator[ObjectEntry],
    stats: BackupStats,
    issues: IssueTally,
    tags_age: int | None,
) -> Iterator[ObjectEntry]:
    """``entries``, completing ``draft`` with the figures and issues once the last one is through: the commit reads
    its draft only after it has stored the whole entry stream."""
    yield from entries
    draft.stats = stats
    draft.extra = extra_of(issues.summary(), tags_age)
