"""Index compaction: consolidate every index object into a new sharded generation (docs/vault-format.md, 9.5).

Run by ``vaultline index compact`` (and by maintenance after a prune): a worker of a compacted vault holds its
filter and the recent index objects rather than the whole index. It only adds objects, so it holds a shared vault
lock, as a backup does: no prune deletes an index object or pack it consolidates while it runs.
"""

from __future__ import annotations

import time

from pydantic import Field

from vaultline.model import VaultlineModel
from vaultline.repository.locks import vault_lock
from vaultline.repository.vault import Vault


class CompactReport(VaultlineModel):
    """What a compaction wrote (``--json``)."""

    generation: str | None = None
    up_to_date: bool = False
    index_objects: int = 0
    blobs: int = 0
    packs: int = 0
    shards: int = 0
    bytes_written: int = 0
    filter_seconds: float = 0.0
    superseded: list[str] = Field(default_factory=list)
    seconds: float = 0.0


def compact_index(vault: Vault, force: bool = False) -> CompactReport:
    """Write a new index generation unless the current one consolidates every index object already (``force``
    writes one anyway). Superseded generations stay until a prune retires them."""
    clock = time.monotonic()
    with vault_lock(vault.storage, "compact", exclusive=False):
        result = vault.compact_index(force=force)
    vault.forget_index()
    return CompactReport(
        generation=result.generation,
        up_to_date=result.up_to_date,
        index_objects=result.index_objects,
        blobs=result.blobs,
        packs=result.packs,
        shards=result.shards,
        bytes_written=result.bytes_written,
        filter_seconds=result.filter_seconds,
        superseded=result.superseded,
        seconds=round(time.monotonic() - clock, 3),
    )


__all__ = ["CompactReport", "compact_index"]
