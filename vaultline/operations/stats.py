"""Vault statistics: sizes, dedup, compression and garbage, per source and in total, and what storing it costs."""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from vaultline.model import VaultlineModel
from vaultline.operations import prune_records as rec
from vaultline.operations.defaults import S3_STANDARD_PER_GIB_MONTH
from vaultline.operations.marks import (
    MARK_BITS,
    IndexWalk,
    RunWriter,
    StoredPacks,
    scratch_staging,
    walk_indexed_packs,
)
from vaultline.repository.layout import INDEX_PREFIX, MANIFEST_PREFIX
from vaultline.repository.manifest import (
    BackupStats,
    iter_recovery_points,
    load_recovery_point,
    needed_blobs,
)
from vaultline.repository.sharded_index import SortedLocator
from vaultline.repository.vault import Vault


class SourceStats(VaultlineModel):
    """One source's share of the vault."""

    source: str
    source_kind: str
    recovery_points: int
    latest: str
    latest_objects: int
    latest_bytes: int
    logical_bytes: int = 0
    unique_raw_bytes: int = 0
    stored_bytes: int = 0
    dedup_ratio: float = 0.0
    compression_ratio: float = 0.0


class VaultStats(VaultlineModel):
    """Totals. ``logical_bytes`` sums every recovery point's size; the ratios compare it with what is stored."""

    recovery_points: int = 0
    packs: int = 0
    blobs: int = Field(default=0, description="the entries of the stored packs the index lists")
    index_objects: int = 0
    vault_bytes: int = 0
    pack_bytes: int = 0
    logical_bytes: int = 0
    live_blobs: int = 0
    live_raw_bytes: int = 0
    live_stored_bytes: int = 0
    garbage_bytes: int = 0
    garbage_share: float = 0.0
    dedup_ratio: float = 0.0
    compression_ratio: float = 0.0
    sources: list[SourceStats] = Field(default_factory=list)


def _ratio(a: int, b: int) -> float:
    return round(a / b, 3) if b else 0.0


@dataclass(frozen=True)
class _Point:
    id: str
    time: datetime
    source_kind: str
    stats: BackupStats


def vault_stats(vault: Vault) -> VaultStats:
    """Read every manifest and the index (no pack data) and compute sizes and ratios.

    Dedup ratio = logical bytes / unique raw bytes of the live blobs; compression ratio = unique raw bytes /
    their stored bytes; garbage = pack blob bytes no live recovery point references (what prune can free).

    Never holds the index (the pieces prune and check use, vaultline/operations/marks.py): one pass over the index
    objects beside the packs listing sums the indexed bytes; each source's needed blob ids are marked into sorted
    partitions (spilled to a scratch directory), and the partitions of every source are merged and located
    together in one pass over the index's shards. Ceilings: the packs listing (40 bytes a pack), the recovery
    points' figures (about 100 bytes each), one partition of every source's marks at a time, and what the
    vault's index lookup holds (the whole index only for a vault never compacted).
    """
    walk = IndexWalk(StoredPacks.list(vault.storage))
    indexed = sum(e.stored_length for _, entries, _ in walk_indexed_packs(vault, walk) for e in entries)
    stats = VaultStats(packs=len(walk.stored), blobs=walk.entries, index_objects=walk.index_objects)
    stats.pack_bytes = walk.stored.bytes
    stats.vault_bytes = stats.pack_bytes + sum(
        obj.size for prefix in (INDEX_PREFIX, MANIFEST_PREFIX) for obj in vault.storage.list(prefix)
    )
    # What each recovery point's figures need, not its header (which names all its entry blobs): read again below.
    by_source: dict[str, list[_Point]] = {}
    for rp in iter_recovery_points(vault):
        by_source.setdefault(rp.source, []).append(_Point(rp.id, rp.time, rp.source_kind, rp.stats))
        stats.recovery_points += 1
    sources = sorted(by_source)
    with scratch_staging(vault, "stats") as scratch:
        writers = [_mark_source(vault, scratch, n, by_source[source]) for n, source in enumerate(sources)]
        sizes = _located_sizes(vault, writers)
    for n, source in enumerate(sources):
        rps = sorted(by_source[source], key=lambda rp: (rp.time, rp.id))  # ids order by second only
        raw, kept = sizes[n].raw, sizes[n].stored
        logical = sum(rp.stats.bytes for rp in rps)
        latest = rps[-1]
        stats.sources.append(
            SourceStats(
                source=source,
                source_kind=latest.source_kind,
                recovery_points=len(rps),
                latest=latest.id,
                latest_objects=latest.stats.objects,
                latest_bytes=latest.stats.bytes,
                logical_bytes=logical,
                unique_raw_bytes=raw,
                stored_bytes=kept,
                dedup_ratio=_ratio(logical, raw),
                compression_ratio=_ratio(raw, kept),
            )
        )
        stats.logical_bytes += logical
    live = sizes[-1]
    stats.live_blobs, stats.live_raw_bytes, stats.live_stored_bytes = live.blobs, live.raw, live.stored
    # Blob bytes in packs (all copies of every indexed blob in existing packs) minus one copy of each live blob.
    stats.garbage_bytes = max(0, indexed - stats.live_stored_bytes)
    stats.garbage_share = _ratio(stats.garbage_bytes, indexed)
    stats.dedup_ratio = _ratio(stats.logical_bytes, stats.live_raw_bytes)
    stats.compression_ratio = _ratio(stats.live_raw_bytes, stats.live_stored_bytes)
    return stats


def _mark_source(vault: Vault, scratch: rec.Staging, number: int, points: list[_Point]) -> RunWriter:
    """The ids of every blob a source's recovery points need, marked into sorted partitions and written out (so
    that one source's buffer is held at a time)."""
    writer = RunWriter(scratch, f"sources/{number:06d}", MARK_BITS, "run")
    for point in points:
        for blob in needed_blobs(vault, load_recovery_point(vault, point.id)):
            writer.add(blob)
            if writer.full():
                writer.flush()
    writer.flush()
    return writer


@dataclass
class _Sizes:
    blobs: int = 0
    raw: int = 0
    stored: int = 0


def _located_sizes(vault: Vault, writers: list[RunWriter]) -> list[_Sizes]:
    """The distinct blobs and their raw and stored bytes of each writer's marks, and (last) of all of them
    together: partition by partition, the writers' streams merged so that each id is located once."""
    sizes = [_Sizes() for _ in range(len(writers) + 1)]
    locator = SortedLocator(vault.lookup)
    for partition in range(1 << MARK_BITS):
        streams = [((blob, n) for blob in writer.partition(partition)) for n, writer in enumerate(writers)]
        for blob, group in itertools.groupby(heapq.merge(*streams), key=lambda record: record[0]):
            location = locator.get(blob)
            raw, stored = (location.entry.raw_length, location.entry.stored_length) if location else (0, 0)
            for n in {n for _, n in group} | {len(writers)}:
                sizes[n].blobs += 1
                sizes[n].raw += raw
                sizes[n].stored += stored
    return sizes


class StorageCost(VaultlineModel):
    """What the vault's storage costs per month at one price, and what it saves."""

    price_per_gib_month: float
    vault_per_month: float
    garbage_per_month: float  # what `prune` would save
    full_copies_per_month: float  # every recovery point stored as a plain copy (no dedup, no compression)


def storage_cost(stats: VaultStats, price_per_gib_month: float = S3_STANDARD_PER_GIB_MONTH) -> StorageCost:
    """Monthly storage cost of the vault at ``price_per_gib_month`` (requests, KMS and transfer not included)."""
    per_byte = price_per_gib_month / 1024**3
    return StorageCost(
        price_per_gib_month=price_per_gib_month,
        vault_per_month=round(stats.vault_bytes * per_byte, 4),
        garbage_per_month=round(stats.garbage_bytes * per_byte, 4),
        full_copies_per_month=round(stats.logical_bytes * per_byte, 4),
    )
