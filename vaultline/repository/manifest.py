"""Manifests: one per recovery point, the only thing that makes a recovery point exist.

A manifest object ``recovery-points/<rp id>`` is ``seal(zstd(JSON header))`` with AAD
``b"vaultline manifest " + rp_id``. The header names the blobs (type MANIFEST) that hold the entry stream:
JSON lines of :class:`ObjectEntry`, sorted by key, cut by the chunker so that an unchanged stretch of a large
bucket's listing dedups against the previous recovery point like data does.
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import orjson
from pydantic import ConfigDict, Field, ValidationError

from vaultline.errors import IntegrityError, ObjectMissing, RecoveryPointNotFound, UsageError
from vaultline.model import VaultlineModel
from vaultline.repository.blob_writer import BlobWriter, WriteStats
from vaultline.repository.chunking import Chunker
from vaultline.repository.compression import compress_document, decompress_document
from vaultline.repository.layout import MANIFEST_PREFIX, manifest_key
from vaultline.repository.packs import BlobType
from vaultline.repository.vault import Vault

_RP_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{8}$")


class ObjectEntry(VaultlineModel):
    """One backed-up object (S3 object or file): what it was and which chunks rebuild it."""

    model_config = ConfigDict(extra="forbid")

    key: str
    size: int = Field(ge=0)
    chunks: list[str] = Field(default_factory=list)
    version_id: str | None = None
    etag: str | None = None
    last_modified: datetime | None = None
    content_type: str | None = None
    content_encoding: str | None = None
    content_disposition: str | None = None
    content_language: str | None = None
    cache_control: str | None = None
    expires: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    storage_class: str | None = None
    # Only for a file whose name is not valid UTF-8: the exact bytes of the relative path, base64; ``key`` is then
    # its display form (invalid bytes as ``\\xNN``). docs/vault-format.md, section 10.2.
    raw_key: str | None = None

    def same_content(self, other: ObjectEntry) -> bool:
        """Whether ``other`` (a listing of the same key) is the object this entry backed up: not read again."""
        return (
            self.version_id == other.version_id
            and self.size == other.size
            and self.etag == other.etag
            and self.last_modified == other.last_modified
        )

    def manifest_line(self) -> bytes:
        """This entry as a line of the manifest's entry stream (without its newline)."""
        return self.model_dump_json(exclude_defaults=True).encode()


# Not frozen: a frozen dataclass sets each field through object.__setattr__, a third of the parse at millions.
@dataclass(slots=True)
class EntryLine:
    """An entry kept as the line of the entry stream that holds it, with only what a comparison and a part's
    figures need decoded from it: an unchanged object's entry passes from the parent's manifest to the new one as
    these bytes, never validated into an :class:`ObjectEntry` and serialized again (at millions of objects that
    round trip was most of Prepare's and Commit's time). The bytes are authenticated blob content the parent's
    writer produced, so the new manifest holds exactly what the parent held."""

    key: str
    size: int
    version_id: str | None
    etag: str | None
    modified: str | None  # as the line holds it; parsed only when the rest of a comparison matched
    line: bytes

    @classmethod
    def parse(cls, line: bytes, what: str = "entry stream") -> EntryLine:
        """The entry that ``line`` holds, decoding only its key and what identifies its content."""
        try:
            fields = orjson.loads(line)
            key, size = fields["key"], fields["size"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise IntegrityError(f"{what}: malformed entry line {line[:80]!r}") from None
        if not isinstance(key, str) or not isinstance(size, int):
            raise IntegrityError(f"{what}: malformed entry line {line[:80]!r}")
        return cls(key, size, fields.get("version_id"), fields.get("etag"), fields.get("last_modified"), line)

    @classmethod
    def of(cls, entry: ObjectEntry) -> EntryLine:
        """An entry already decoded, as its line."""
        return cls.parse(entry.manifest_line())

    def same_content(self, other: ObjectEntry) -> bool:
        """:meth:`ObjectEntry.same_content`, from the line's fields."""
        if self.version_id != other.version_id or self.size != other.size or self.etag != other.etag:
            return False
        if self.modified is None or other.last_modified is None:
            return self.modified is None and other.last_modified is None
        return datetime.fromisoformat(self.modified) == other.last_modified

    def entry(self) -> ObjectEntry:
        """The whole entry, decoded and validated (for an entry that changes: its tags read again)."""
        return ObjectEntry.model_validate_json(self.line)

    def manifest_line(self) -> bytes:
        return self.line


Entry = ObjectEntry | EntryLine  # what a manifest writer takes: decoded entries, or lines carried through


class Keyed(Protocol):
    """Anything an entry stream holds: ordered by its key."""

    @property
    def key(self) -> str: ...


K = TypeVar("K", bound=Keyed)


class BackupStats(VaultlineModel):
    """Figures of one backup; also the `--json` stats of the CLI."""

    objects: int = 0
    bytes: int = 0
    objects_read: int = 0
    bytes_read: int = 0
    objects_unchanged: int = 0
    bytes_stored: int = 0
    new_chunks: int = 0
    duplicate_chunks: int = 0
    packs: int = 0
    seconds: float = 0.0
    errors: int = 0

    def merge(self, other: BackupStats) -> None:
        for name in BackupStats.model_fields:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def add_written(self, written: WriteStats) -> None:
        """Add what a blob writer stored (its packs, bytes and chunks) to these figures."""
        self.packs += len(written.packs)
        self.bytes_stored += written.stored_bytes
        self.new_chunks += written.new_blobs
        self.duplicate_chunks += written.duplicate_blobs


ISSUES_LISTED = 1000  # objects named in a manifest header's issues; the counts are always complete
ISSUES_REPORTED = 20  # objects named in a step result or an event (Step Functions payloads are small)
_ISSUES_BATCH = 1000  # issues gathered between two trims to the first ``listed``


class ObjectIssue(VaultlineModel):
    """A listed object that the recovery point does not hold, and why."""

    model_config = ConfigDict(extra="forbid")

    key: str
    kind: Literal["archived", "vanished"]
    reason: str
    version_id: str | None = None
    storage_class: str | None = None


class Issues(VaultlineModel):
    """What made a recovery point "completed with issues": counts of skipped objects and the first of them by key.

    Stored under the header's ``extra.issues`` (absent when there are none), so version 1 readers still parse it.
    """

    model_config = ConfigDict(extra="forbid")

    archived: int = 0
    vanished: int = 0
    objects: list[ObjectIssue] = Field(default_factory=list)

    @property
    def total(self) -> int:
        return self.archived + self.vanished

    @classmethod
    def of(cls, issues: Iterable[ObjectIssue], listed: int = ISSUES_LISTED) -> Issues:
        """Count ``issues`` and keep the first ``listed`` of them in key order (a stream of any length: only those
        ``listed`` are held)."""
        return cls().plus(issues, listed)

    def plus(self, issues: Iterable[ObjectIssue], listed: int = ISSUES_LISTED) -> Issues:
        """These counts and ``issues``' added, naming the first ``listed`` objects of both in key order; what is
        held stays within ``listed`` plus one batch, whatever the stream's length."""
        archived, vanished = self.archived, self.vanished
        kept = list(self.objects)
        for issue in issues:
            archived += issue.kind == "archived"
            vanished += issue.kind == "vanished"
            kept.append(issue)
            if len(kept) >= listed + _ISSUES_BATCH:
                kept = heapq.nsmallest(listed, kept, key=lambda i: i.key)
        first = heapq.nsmallest(listed, kept, key=lambda i: i.key)
        return Issues(archived=archived, vanished=vanished, objects=first)

    def first(self, listed: int) -> Issues:
        """The same counts, naming only the first ``listed`` objects (for results and events)."""
        return self.model_copy(update={"objects": self.objects[:listed]})

    def summary(self) -> str:
        """``2 archived objects skipped, 1 vanished`` (empty when there are none)."""
        parts = [f"{self.archived} archived objects skipped"] if self.archived else []
        parts += [f"{self.vanished} deleted while the backup ran"] if self.vanished else []
        return ", ".join(parts)


MANIFEST_VERSION = 1


class RecoveryPoint(VaultlineModel):
    """The manifest header: everything but the entries themselves."""

    model_config = ConfigDict(extra="forbid")

    # The manifest header's own version: unchanged (1) in vault format version 2, which changed only the index.
    format_version: int = MANIFEST_VERSION
    id: str
    source: str
    source_kind: Literal["s3", "local", "dynamodb"]
    time: datetime
    finished: datetime
    parent: str | None = None
    plan: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    stats: BackupStats = Field(default_factory=BackupStats)
    entry_count: int = 0
    entry_blobs: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def issues(self) -> Issues:
        """The skipped objects recorded under ``extra.issues`` (none for a clean or an older recovery point)."""
        return Issues.model_validate(self.extra.get("issues") or {})

    @property
    def status(self) -> Literal["completed", "completed_with_issues"]:
        """AWS Backup's words: a recovery point that skipped objects is "completed with issues"."""
        return "completed_with_issues" if self.issues.total else "completed"

    @property
    def tags_age(self) -> int | None:
        """Backups since one last read every object's tags (0: this one did); None when not recorded."""
        age = self.extra.get("tags_age")
        return age if isinstance(age, int) else None


def new_recovery_point_id(now: datetime | None = None) -> str:
    """Time-sortable, collision-resistant id: ``YYYYMMDDTHHMMSSZ-<8 hex>``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"


def _aad(rp_id: str) -> bytes:
    return b"vaultline manifest " + rp_id.encode()


def in_key_order(entries: Iterable[K], what: str) -> Iterator[K]:
    """``entries`` unchanged, checked to be strictly increasing by key: a stream out of order (or with a key twice)
    would make a merge silently wrong, so it stops here and names ``what`` it was."""
    previous: str | None = None
    for entry in entries:
        if previous is not None and entry.key <= previous:
            raise IntegrityError(
                f"{what}: entries out of key order ({entry.key!r} after {previous!r}); the stream must be sorted"
            )
        previous = entry.key
        yield entry


def write_entries(writer: BlobWriter, chunker: Chunker, entries: Iterable[ObjectEntry]) -> tuple[list[str], int]:
    """Store an entry stream in any order as MANIFEST blobs (sorted here, in memory); return their ids and the
    entry count. Callers that can produce key order stream through :func:`write_sorted_entries` instead."""
    return write_sorted_entries(writer, chunker, sorted(entries, key=lambda e: e.key))


def write_sorted_entries(
    writer: BlobWriter, chunker: Chunker, entries: Iterable[Entry], what: str = "manifest"
) -> tuple[list[str], int]:
    """Store a key-sorted entry stream as MANIFEST blobs as it arrives (memory stays bounded by the chunker's
    buffer, whatever the entry count); return the blob ids and the entry count. Keys out of order raise. Entry
    lines (:class:`EntryLine`) are written as they are."""
    lines = _EntryLines(in_key_order(entries, what))
    ids = [writer.add(chunk, BlobType.MANIFEST).hex() for chunk in chunker.split(lines)]
    return ids, lines.count


class _EntryLines:
    """A readable stream of JSON lines, one per entry, produced as the chunker reads."""

    def __init__(self, entries: Iterator[Entry]) -> None:
        self._entries = entries
        self._buffer = bytearray()
        self.count = 0

    def read(self, n: int = -1, /) -> bytes:
        while n < 0 or len(self._buffer) < n:
            entry = next(self._entries, None)
            if entry is None:
                break
            self._buffer += entry.manifest_line()
            self._buffer += b"\n"
            self.count += 1
        size = len(self._buffer) if n < 0 else min(n, len(self._buffer))
        out = bytes(self._buffer[:size])
        del self._buffer[:size]
        return out


def commit_recovery_point(vault: Vault, header: RecoveryPoint) -> bool:
    """Write the manifest object: the last step of a backup. Its blobs must be flushed and indexed first.

    The manifest is created, never replaced (If-None-Match: *, as the vault account's bucket policy demands of
    the protected account): return False when it already exists, that is when an earlier attempt of the same
    commit got there first; that recovery point stands as written.
    """
    body = compress_document(header.model_dump_json().encode())
    return vault.storage.create(manifest_key(header.id), vault.cipher.seal(body, _aad(header.id)))


def load_recovery_point(vault: Vault, rp_id: str) -> RecoveryPoint:
    """Read a manifest header; raise RecoveryPointNotFound if the id does not exist."""
    what = f"{vault.url}: recovery point {rp_id}"
    try:
        stored = vault.storage.get(manifest_key(rp_id))
    except ObjectMissing:
        raise RecoveryPointNotFound(f"recovery point {rp_id} does not exist in {vault.url}") from None
    try:
        return RecoveryPoint.model_validate_json(
            decompress_document(vault.cipher.open(stored, _aad(rp_id), what), what)
        )
    except ValidationError as exc:
        raise IntegrityError(f"{what}: malformed manifest ({exc.errors()[0]['msg']})") from None


def iter_entries(vault: Vault, rp: RecoveryPoint) -> Iterator[ObjectEntry]:
    """The entries of a recovery point, in key order, read blob by blob (memory stays bounded)."""
    return (ObjectEntry.model_validate_json(line) for line in _entry_stream_lines(vault, rp))


def iter_entry_lines(vault: Vault, rp: RecoveryPoint) -> Iterator[EntryLine]:
    """The entries of a recovery point as their lines (:class:`EntryLine`), in key order, read blob by blob: for
    a stream whose entries mostly pass on unchanged (a backup's parent)."""
    what = f"recovery point {rp.id}"
    return (EntryLine.parse(line, what) for line in _entry_stream_lines(vault, rp))


def _entry_stream_lines(vault: Vault, rp: RecoveryPoint) -> Iterator[bytes]:
    carry = b""
    for blob_hex in rp.entry_blobs:
        data = carry + vault.read_blob(bytes.fromhex(blob_hex))
        lines = data.split(b"\n")
        carry = lines.pop()
        yield from lines
    if carry.strip():
        yield carry.strip()


def needed_blobs(vault: Vault, rp: RecoveryPoint) -> Iterator[bytes]:
    """Every blob ``rp`` needs, streamed (repeats included): its entry blobs, then each entry's chunks (for a
    DynamoDB delta, those of every layer below it, which its entries list)."""
    for blob in rp.entry_blobs:
        yield bytes.fromhex(blob)
    for entry in iter_entries(vault, rp):
        for chunk in entry.chunks:
            yield bytes.fromhex(chunk)


def entries_under(vault: Vault, rp: RecoveryPoint, prefix: str) -> Iterator[ObjectEntry]:
    """The entries of ``rp`` whose keys start with ``prefix``, streamed: the stream is in key order, so it stops
    at the first key past the prefix."""
    for entry in iter_entries(vault, rp):
        if entry.key.startswith(prefix):
            yield entry
        elif entry.key > prefix:
            return


def list_recovery_point_ids(vault: Vault) -> list[str]:
    """Ids of every recovery point, oldest first; stray objects under ``recovery-points/`` are ignored."""
    names = (obj.key[len(MANIFEST_PREFIX) :] for obj in vault.storage.list(MANIFEST_PREFIX))
    return sorted(name for name in names if _RP_ID.match(name))


HEADERS_IN_FLIGHT = 32  # manifest headers read ahead in parallel: one GET each, latency-bound on S3


def iter_recovery_points(vault: Vault, ids: Iterable[str] | None = None) -> Iterator[RecoveryPoint]:
    """Every recovery point (or those of ``ids``), oldest first, read a few dozen ahead in parallel and handed on
    one by one: a caller that keeps only what it needs of each header holds no more than the read-ahead window."""
    with ThreadPoolExecutor(max_workers=HEADERS_IN_FLIGHT, thread_name_prefix="vl-headers") as pool:
        window: deque[Future[RecoveryPoint]] = deque()
        for rp_id in list_recovery_point_ids(vault) if ids is None else ids:
            window.append(pool.submit(load_recovery_point, vault, rp_id))
            if len(window) >= HEADERS_IN_FLIGHT:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def list_recovery_points(vault: Vault) -> list[RecoveryPoint]:
    """Every recovery point, oldest first (all headers in memory: for listings a person reads)."""
    return list(iter_recovery_points(vault))


def resolve_recovery_point(vault: Vault, ref: str) -> RecoveryPoint:
    """Accept a full id, a unique prefix of one, or ``latest``."""
    ids = list_recovery_point_ids(vault)
    if ref == "latest":
        if not ids:
            raise RecoveryPointNotFound(f"{vault.url} holds no recovery points")
        return load_recovery_point(vault, ids[-1])
    if ref in ids:
        return load_recovery_point(vault, ref)
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return load_recovery_point(vault, matches[0])
    if len(matches) > 1:
        raise UsageError(f"recovery point {ref!r} is ambiguous: {', '.join(matches[:5])}")
    raise RecoveryPointNotFound(f"recovery point {ref} does not exist in {vault.url}")


def latest_for_source(vault: Vault, source: str) -> RecoveryPoint | None:
    """The newest recovery point of ``source``: the parent an incremental backup compares against."""
    for rp_id in reversed(list_recovery_point_ids(vault)):
        rp = load_recovery_point(vault, rp_id)
        if rp.source == source:
            return rp
    return None


def is_recovery_point_id(text: str) -> bool:
    return bool(_RP_ID.match(text))


def entries_to_json(entries: Iterable[ObjectEntry]) -> str:
    return json.dumps([e.model_dump(mode="json", exclude_defaults=True) for e in entries])
