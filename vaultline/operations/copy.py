"""Copying recovery points into another vault (another region, account or key): AWS Backup's copy jobs.

Chunk ids are keyed per vault (``Cipher.chunk_id``: BLAKE3 keyed by a subkey of the vault's data key, or of its
id seed when unencrypted), so the same plaintext has another id in the target. A copy therefore

1. streams the source recovery point's entries in key order and gives every chunk its *target* id. A chunk of an
   entry that the reference (an earlier copy of the same source, usually the parent) held with the same source id
   takes the id that copy gave it, unread; every other chunk is read from its source pack (grouped by pack, adjacent
   blobs in one ranged GET), decrypted and verified with the source's key, and named by hashing its plaintext with
   the target's id key;
2. stores each chunk the target's index lacks (dedup on the target is by the target's ids) through the target's
   normal blob writer: re-sealed for the target's key, still compressed as the source stored it, in normal packs
   and index objects;
3. writes the rewritten entry stream as the target's MANIFEST blobs, flushes every pack and index object, and
   writes the manifest last, under the same recovery point id, with ``extra.copied_from`` naming the source
   vault and recovery point (docs/vault-format.md, section 10.7).

A crash at any request leaves the target without that recovery point (its manifest is the commit point); the
packs already uploaded are found by the next copy's dedup (when indexed) or collected by prune. A recovery point
whose manifest exists on the target as a copy of the same source recovery point is skipped: a re-run resumes.

Memory does not grow with the number of recovery points or chunks: entries stream through in batches of at most
``BATCH_CHUNKS`` unresolved chunks (their ids, and the packs' ranges in flight: at most ``RANGES_IN_FLIGHT`` ranged
GETs of at most ``MAX_RANGE`` bytes), the reference streams beside them, and the selection is a stream of ids.
Ceilings: one entry's chunk list is held (as every backup holds it: 128 bytes per chunk of the largest object),
the report's ``copied`` list holds one id per recovery point copied, and ``--all`` lists the source's ids
(``list_recovery_point_ids``: about 30 bytes per recovery point).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import zip_longest

from pydantic import ConfigDict, Field

from vaultline.errors import IntegrityError, ObjectMissing, RecoveryPointNotFound, UsageError, VaultError
from vaultline.model import VaultlineModel
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.commit import StoredEntries, store_entries
from vaultline.repository.layout import manifest_key, pack_key
from vaultline.repository.locks import vault_lock
from vaultline.repository.manifest import (
    ObjectEntry,
    RecoveryPoint,
    commit_recovery_point,
    iter_entries,
    iter_recovery_points,
    list_recovery_point_ids,
    load_recovery_point,
    resolve_recovery_point,
)
from vaultline.repository.packs import BlobEntry
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb.layers import LAYERED_FORMAT_VERSION, LAYOUT
from vaultline.sources.dynamodb.model import EXTRA_KEY

COPIED_FROM = "copied_from"  # the key under a copy's ``extra``
# Unresolved chunks gathered before their packs are read: enough to group most of a pack's blobs into few ranges,
# few enough that the batch's ids and entries stay small (a batch of 256 KiB chunks is 1 GiB of source data).
BATCH_CHUNKS = 4096
BATCH_ENTRIES = 8192
BATCH_CHUNK_REFS = 65_536  # chunk ids named by a batch's entries (a staged batch stays a few MiB)
# Two blobs of one pack share a ranged GET when the gap between them is at most this (reading the gap costs less
# than another request), up to MAX_RANGE bytes a GET: a pack (16 MiB, plus the blob that filled it) is one GET.
# A range in flight holds its bytes and its blobs' payloads: at most RANGES_IN_FLIGHT * 2 * MAX_RANGE (320 MiB).
RANGE_GAP = 256 * 1024
MAX_RANGE = 20 * 1024 * 1024
RANGE_THREADS = 8
RANGES_IN_FLIGHT = 8


class CopiedFrom(VaultlineModel):
    """``extra.copied_from`` of a recovery point written by a copy: where it was copied from, and when."""

    model_config = ConfigDict(extra="forbid")

    vault_id: str
    vault_url: str
    recovery_point: str
    copied: datetime


class CopyReport(VaultlineModel):
    """What a copy did: the ``--json`` document of ``vaultline copy``."""

    model_config = ConfigDict(extra="forbid")

    target: str
    copied: list[str] = Field(default_factory=list)
    already_copied: list[str] = Field(default_factory=list)
    # Bytes of the blobs new to the target, as sealed into its packs: the data that crossed to its region and
    # account (pack headers, index objects and manifests, a few hundred bytes a pack, are not counted).
    bytes_transferred: int = 0
    bytes_read: int = 0  # bytes of the source's packs read (ranged GETs, gaps included)
    range_reads: int = 0
    chunks_copied: int = 0  # blobs new to the target
    chunks_present: int = 0  # blobs the target held already (by its ids)
    chunks_mapped: int = 0  # chunk ids taken from the reference copy, not read
    packs: int = 0
    seconds: float = 0.0


@dataclass
class CopyCounters:
    """What a copy read and what it knew without reading, beside what its writers stored."""

    bytes_read: int = 0
    range_reads: int = 0
    mapped: int = 0


@dataclass(frozen=True)
class _Opened:
    """A source blob read, verified and named for the target."""

    source_id: bytes
    target_id: bytes
    entry: BlobEntry
    payload: bytes


def copied_from(rp: RecoveryPoint) -> CopiedFrom | None:
    """The copy record of a recovery point (None for one a backup wrote)."""
    raw = rp.extra.get(COPIED_FROM)
    return CopiedFrom.model_validate(raw) if raw else None


# -- which recovery points --------------------------------------------------------------------------------------


def select_recovery_points(
    vault: Vault, refs: Sequence[str] = (), everything: bool = False, source: str | None = None
) -> Iterator[str]:
    """The ids to copy, oldest first: the ``refs`` given (ids, unique prefixes or ``latest``; each resolved before
    anything is copied, so an unknown one fails the copy before it starts), every recovery point, or those of
    ``source``. RecoveryPointNotFound when a ref names none, or ``source`` has none."""
    chosen = [name for name, given in (("RP", bool(refs)), ("--all", everything), ("--source", source)) if given]
    if len(chosen) != 1:
        raise UsageError("copy: give recovery point ids, --all or --source SOURCE (exactly one of them)")
    if everything:
        return iter(list_recovery_point_ids(vault))
    if source is not None:
        return _of_source(vault, source)
    return iter(sorted({resolve_recovery_point(vault, ref).id for ref in refs}))


def _of_source(vault: Vault, source: str) -> Iterator[str]:
    found = False
    for rp in iter_recovery_points(vault):
        if rp.source == source:
            found = True
            yield rp.id
    if not found:
        raise RecoveryPointNotFound(f"{vault.url} holds no recovery points of source {source}")


# -- the copy ---------------------------------------------------------------------------------------------------


def open_target(url: str, passphrase: bytes | None = None) -> Vault:
    """The target vault, which must exist (VaultNotFound names ``vaultline init`` otherwise)."""
    return Vault.open(url, passphrase=passphrase)


def run_copy(
    source: Vault,
    target: Vault,
    rp_ids: Iterable[str],
    progress: Callable[[str], None] | None = None,
) -> CopyReport:
    """Copy each recovery point of ``rp_ids`` (oldest first) from ``source`` into ``target``, skipping those the
    target already holds as copies of them; each is committed on the target after all its packs and index objects.

    A shared lock on the target is held throughout (a prune there must not delete the blobs this copy dedups
    against); the source is only read.
    """
    if source.config.vault_id == target.config.vault_id:
        raise UsageError(f"copy: {target.url} is the source vault itself (vault id {source.config.vault_id})")
    clock = datetime.now(UTC)
    report = CopyReport(target=target.url)
    counters = CopyCounters()
    with vault_lock(target.storage, "copy", exclusive=False):
        target.forget_index()  # read after the lock: what a prune removed before it is not trusted
        last_of_source: dict[str, str] = {}
        for rp_id in rp_ids:
            rp = load_recovery_point(source, rp_id)
            if already_copied(source, target, rp):
                report.already_copied.append(rp.id)
                last_of_source[rp.source] = rp.id
                continue
            reference = reference_for(source, target, rp, last_of_source.get(rp.source))
            with BlobWriter(target) as writer:
                copy_recovery_point(source, target, rp, writer, reference, counters)
                written = writer.stats
            report.copied.append(rp.id)
            report.bytes_transferred += written.stored_bytes
            report.chunks_copied += written.new_blobs
            report.chunks_present += written.duplicate_blobs
            report.packs += len(written.packs)
            last_of_source[rp.source] = rp.id
            if progress:
                progress(rp.id)
    report.bytes_read = counters.bytes_read
    report.range_reads = counters.range_reads
    report.chunks_mapped = counters.mapped
    report.seconds = round((datetime.now(UTC) - clock).total_seconds(), 3)
    return report


def already_copied(source: Vault, target: Vault, rp: RecoveryPoint) -> bool:
    """Whether the target holds ``rp`` as a copy of it; a recovery point of that id that is not one is refused
    (ids are random: this is another vault's history, which a copy must not hide)."""
    if not target.storage.exists(manifest_key(rp.id)):
        return False
    there = load_recovery_point(target, rp.id)
    record = copied_from(there)
    if record and record.vault_id == source.config.vault_id and record.recovery_point == rp.id:
        return True
    raise VaultError(
        f"{target.url}: recovery point {rp.id} exists there and is not a copy of {source.url}'s {rp.id}; "
        "refusing to overwrite it"
    )


def reference_for(source: Vault, target: Vault, rp: RecoveryPoint, previous: str | None) -> str | None:
    """A recovery point of the same source already on the target as a copy from this source, whose chunk ids the
    copy may reuse unread: ``rp``'s parent if it was copied, else the one this run copied last for the source."""
    for candidate in (rp.parent, previous):
        # Both sides must still hold it: a parent forgotten in the source may live on in the target, and the reverse.
        if (
            candidate
            and candidate != rp.id
            and target.storage.exists(manifest_key(candidate))
            and source.storage.exists(manifest_key(candidate))
        ):
            try:
                there = load_recovery_point(target, candidate)
            except (ObjectMissing, RecoveryPointNotFound):
                continue
            record = copied_from(there)
            if record and record.vault_id == source.config.vault_id and record.recovery_point == candidate:
                return candidate
    return None


def copy_recovery_point(
    source: Vault,
    target: Vault,
    rp: RecoveryPoint,
    writer: BlobWriter,
    reference: str | None = None,
    counters: CopyCounters | None = None,
) -> RecoveryPoint:
    """Copy one recovery point: its chunks the target lacks, its entry stream with the target's chunk ids, then
    its manifest (last). ``reference``: a recovery point copied earlier from the same source (see module doc)."""
    counters = counters or CopyCounters()
    check_target_version(target, rp)
    stored = store_entries(
        target, writer, _mapped_entries(source, target, rp, writer, reference, counters), f"copy of {rp.id}"
    )
    return commit_copy(source, target, rp, writer, stored)


def commit_copy(
    source: Vault, target: Vault, rp: RecoveryPoint, writer: BlobWriter, stored: StoredEntries
) -> RecoveryPoint:
    """Flush ``writer`` (every pack and index object of the copy), then write the copy's manifest: ``rp``'s header
    naming the ``stored`` entry stream, with ``extra.copied_from``. The commit point of a copy."""
    writer.flush()
    record = CopiedFrom(vault_id=source.config.vault_id, vault_url=source.url, recovery_point=rp.id, copied=_now())
    header = rp.model_copy(
        update={
            "entry_blobs": stored.blobs,
            "entry_count": stored.count,
            "extra": {**rp.extra, COPIED_FROM: record.model_dump(mode="json")},
        }
    )
    if stored.count != rp.entry_count:
        raise IntegrityError(
            f"{source.url}: recovery point {rp.id} lists {rp.entry_count} entries, {stored.count} were read"
        )
    commit_recovery_point(target, header)
    return header


def check_target_version(target: Vault, rp: RecoveryPoint) -> None:
    """Refuse a recovery point the target's format version cannot hold (VaultError)."""
    if (
        rp.source_kind == "dynamodb"
        and (rp.extra.get(EXTRA_KEY) or {}).get("stream_layout") == LAYOUT
        and target.config.version < LAYERED_FORMAT_VERSION
    ):
        raise VaultError(
            f"{target.url}: recovery point {rp.id} has layered table streams, which this vault's format version "
            f"{target.config.version} cannot hold (a version 1 reader would misread them); copy into a vault of "
            f"version {LAYERED_FORMAT_VERSION} or later"
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _reference_pairs(source: Vault, target: Vault, reference: str | None) -> Iterator[tuple[ObjectEntry, ObjectEntry]]:
    """(source entry, target entry) of the reference recovery point, in key order: a copy keeps every key, so the
    two streams pair one to one."""
    if reference is None:
        return
    there = iter_entries(target, load_recovery_point(target, reference))
    here = iter_entries(source, load_recovery_point(source, reference))
    for ours, theirs in zip_longest(here, there):
        if ours is None or theirs is None or ours.key != theirs.key or len(ours.chunks) != len(theirs.chunks):
            raise IntegrityError(
                f"{target.url}: recovery point {reference} is not an entry-for-entry copy of {source.url}'s"
            )
        yield ours, theirs


class CopyBatch(VaultlineModel):
    """Consecutive entries of a recovery point being copied, with the target ids already known for some of their
    chunks (from the reference copy); the rest are read from the source. The unit of work of a copy: the CLI
    resolves batches as they are cut, the Copy state machine stages them and fans them out."""

    model_config = ConfigDict(extra="forbid")

    entries: list[ObjectEntry] = Field(default_factory=list)
    known: dict[str, str] = Field(default_factory=dict)  # source chunk id -> target chunk id (hex)
    unresolved: int = 0  # distinct chunks to read
    chunk_refs: int = 0

    def wanted(self) -> set[bytes]:
        """The distinct source chunks of the batch whose target ids are not known: those to read."""
        return {bytes.fromhex(c) for entry in self.entries for c in entry.chunks if c not in self.known}


def copy_batches(
    source: Vault, target: Vault, rp: RecoveryPoint, reference: str | None = None, counters: CopyCounters | None = None
) -> Iterator[CopyBatch]:
    """The entries of ``rp`` cut into batches of at most ``BATCH_CHUNKS`` chunks to read, ``BATCH_ENTRIES`` entries
    and ``BATCH_CHUNK_REFS`` chunk references (an entry is never split: one entry's chunk list is the ceiling), each
    with what ``reference`` (see :func:`copy_recovery_point`) tells of its chunks' target ids. Streamed: the
    entries, the reference's two entry streams and one batch are held."""
    counters = counters or CopyCounters()
    pairs = _reference_pairs(source, target, reference)
    pending = next(pairs, None)
    batch, wanted = CopyBatch(), set()
    for entry in iter_entries(source, rp):
        while pending is not None and pending[0].key < entry.key:
            pending = next(pairs, None)
        if pending is not None and pending[0].key == entry.key:
            batch.known.update(zip(pending[0].chunks, pending[1].chunks, strict=True))
        batch.entries.append(entry)
        batch.chunk_refs += len(entry.chunks)
        for chunk in entry.chunks:
            if chunk in batch.known:
                counters.mapped += 1
            else:
                wanted.add(chunk)
        if len(wanted) >= BATCH_CHUNKS or len(batch.entries) >= BATCH_ENTRIES or batch.chunk_refs >= BATCH_CHUNK_REFS:
            batch.unresolved = len(wanted)
            yield batch
            batch, wanted = CopyBatch(), set()
    if batch.entries:
        batch.unresolved = len(wanted)
        yield batch


def copy_batch(
    source: Vault,
    target: Vault,
    batch: CopyBatch,
    writer: BlobWriter,
    pool: ThreadPoolExecutor,
    counters: CopyCounters | None = None,
) -> list[ObjectEntry]:
    """Read the batch's chunks whose target ids are not known from the source's packs, store those the target
    lacks through ``writer`` (they are safe to name once it is flushed), and return the batch's entries with target
    chunk ids."""
    counters = counters or CopyCounters()
    names = dict(batch.known)
    for opened in _read_blobs(source, target, batch.wanted(), pool, counters):
        names[opened.source_id.hex()] = opened.target_id.hex()
        blob = opened.entry
        writer.add_compressed(opened.target_id, blob.type, blob.compression, blob.raw_length, opened.payload)
    return [
        entry.model_copy(update={"chunks": [names[chunk] for chunk in entry.chunks]}) if entry.chunks else entry
        for entry in batch.entries
    ]


def copy_pool() -> ThreadPoolExecutor:
    """The threads that read a batch's ranges of source packs."""
    return ThreadPoolExecutor(max_workers=RANGE_THREADS, thread_name_prefix="vl-copy")


def _mapped_entries(
    source: Vault, target: Vault, rp: RecoveryPoint, writer: BlobWriter, reference: str | None, counters: CopyCounters
) -> Iterator[ObjectEntry]:
    """The entries of ``rp`` with target chunk ids, in key order; the chunks the target lacks are written to
    ``writer`` on the way."""
    with copy_pool() as pool:
        for batch in copy_batches(source, target, rp, reference, counters):
            yield from copy_batch(source, target, batch, writer, pool, counters)


def _read_blobs(
    source: Vault, target: Vault, wanted: set[bytes], pool: ThreadPoolExecutor, counters: CopyCounters
) -> Iterator[_Opened]:
    """Read, verify and name for the target every blob of ``wanted``, pack by pack in ranged GETs, a bounded number
    in flight."""
    by_pack: dict[str, list[BlobEntry]] = {}
    for blob_id in wanted:
        location = source.lookup.get(blob_id)
        if location is None:
            raise ObjectMissing(f"{source.url}: blob {blob_id.hex()} is not in any index")
        by_pack.setdefault(location.pack_id, []).append(location.entry)
    in_flight: deque[Future[tuple[int, list[_Opened]]]] = deque()

    def collect() -> list[_Opened]:
        read, opened = in_flight.popleft().result()
        counters.bytes_read += read
        counters.range_reads += 1
        return opened

    for pack_id, entries in sorted(by_pack.items()):
        for piece in pack_ranges(sorted(entries, key=lambda e: e.offset)):
            in_flight.append(pool.submit(_read_range, source, target, pack_id, piece))
            while len(in_flight) >= RANGES_IN_FLIGHT:
                yield from collect()
    while in_flight:
        yield from collect()


def pack_ranges(entries: list[BlobEntry]) -> Iterator[list[BlobEntry]]:
    """Consecutive blobs of one pack (sorted by offset) grouped into ranges of at most MAX_RANGE bytes whose gaps
    are at most RANGE_GAP."""
    group: list[BlobEntry] = []
    for entry in entries:
        if group:
            start, end = group[0].offset, group[-1].offset + group[-1].stored_length
            if entry.offset - end > RANGE_GAP or entry.offset + entry.stored_length - start > MAX_RANGE:
                yield group
                group = []
        group.append(entry)
    if group:
        yield group


def _read_range(source: Vault, target: Vault, pack_id: str, entries: list[BlobEntry]) -> tuple[int, list[_Opened]]:
    """One ranged GET of ``pack_id`` and its blobs opened: (bytes read, blobs)."""
    start = entries[0].offset
    length = entries[-1].offset + entries[-1].stored_length - start
    data = memoryview(source.storage.get_range(pack_key(pack_id), start, length))
    opened = []
    for entry in entries:
        at = entry.offset - start
        payload, plain = source.open_blob(data[at : at + entry.stored_length], entry, pack_id)
        opened.append(_Opened(entry.id, target.cipher.chunk_id(plain), entry, payload))
    return len(data), opened
