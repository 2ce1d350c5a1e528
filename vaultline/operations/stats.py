"""Vault statistics: sizes, dedup, compression and garbage, per source and in total, and what storing it costs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, Field

from vaultline.operations.defaults import S3_STANDARD_PER_GIB_MONTH
from vaultline.repository.layout import INDEX_PREFIX, MANIFEST_PREFIX
from vaultline.repository.manifest import (
    BackupStats,
    iter_recovery_points,
    load_recovery_point,
    needed_blobs,
)
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault


class SourceStats(BaseModel):
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


class VaultStats(BaseModel):
    """Totals. ``logical_bytes`` sums every recovery point's size; the ratios compare it with what is stored."""

    recovery_points: int = 0
    packs: int = 0
    blobs: int = 0
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
    """
    index = vault.reload_index()
    stored = list_pack_ids(vault.storage)
    stats = VaultStats(packs=len(stored), blobs=len(index), index_objects=len(index.index_ids))
    stats.pack_bytes = sum(stored.values())
    stats.vault_bytes = stats.pack_bytes + sum(
        obj.size for prefix in (INDEX_PREFIX, MANIFEST_PREFIX) for obj in vault.storage.list(prefix)
    )
    live: set[bytes] = set()
    # What each recovery point's figures need, not its header (which names all its entry blobs): read again below.
    by_source: dict[str, list[_Point]] = {}
    for rp in iter_recovery_points(vault):
        by_source.setdefault(rp.source, []).append(_Point(rp.id, rp.time, rp.source_kind, rp.stats))
        stats.recovery_points += 1
    for source in sorted(by_source):
        rps = sorted(by_source[source], key=lambda rp: (rp.time, rp.id))  # ids order by second only
        blobs: set[bytes] = set()
        for point in rps:
            blobs.update(needed_blobs(vault, load_recovery_point(vault, point.id)))
        live |= blobs
        raw, kept = _sizes(vault, blobs)
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
    stats.live_blobs = len(live)
    stats.live_raw_bytes, stats.live_stored_bytes = _sizes(vault, live)
    # Blob bytes in packs (all copies of every indexed blob in existing packs) minus one copy of each live blob.
    indexed = sum(e.stored_length for p, entries in index.packs.items() if p in stored for e in entries)
    stats.garbage_bytes = max(0, indexed - stats.live_stored_bytes)
    stats.garbage_share = _ratio(stats.garbage_bytes, indexed)
    stats.dedup_ratio = _ratio(stats.logical_bytes, stats.live_raw_bytes)
    stats.compression_ratio = _ratio(stats.live_raw_bytes, stats.live_stored_bytes)
    return stats


class StorageCost(BaseModel):
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


def _sizes(vault: Vault, blobs: set[bytes]) -> tuple[int, int]:
    raw = stored = 0
    for blob_id in blobs:
        location = vault.index.get(blob_id)
        if location is not None:
            raw += location.entry.raw_length
            stored += location.entry.stored_length
    return raw, stored
