"""Index compaction: consolidate every index object into a new sharded generation (docs/vault-format.md, 9.5).

Run by ``vaultline index compact``, by maintenance after a prune, and by the CLI's backups when the index objects
outside the current generation have grown past ``AUTO_COMPACT_TAIL_BYTES`` (:func:`compact_when_due`): a backup of
a compacted vault holds its filter and the recent index objects rather than the whole index. It only adds objects,
so it holds a shared vault lock, as a backup does: no prune deletes an index object or pack it consolidates while
it runs.
"""

from __future__ import annotations

import time

from pydantic import Field

from vaultline.model import VaultlineModel
from vaultline.repository.layout import INDEX_PREFIX
from vaultline.repository.locks import vault_lock
from vaultline.repository.sharded_index import current_catalog
from vaultline.repository.vault import Vault

# A backup loads the index objects its vault's generation does not consolidate whole (34 bytes an entry): past this
# many stored bytes of them (about 800,000 entries, some 27 MiB of the backup's memory) the CLI compacts first.
AUTO_COMPACT_TAIL_BYTES = 32 * 2**20


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


def index_tail_bytes(vault: Vault) -> int:
    """Stored bytes of the index objects that the current generation does not consolidate (every index object, when
    there is none): the part of the index a backup loads whole. One listing of ``index/`` and one catalog read."""
    sizes = {obj.key[len(INDEX_PREFIX) :]: obj.size for obj in vault.storage.list(INDEX_PREFIX)}
    catalog = current_catalog(vault.storage, vault.cipher, set(sizes))
    consolidated = set(catalog.index_objects) if catalog is not None else set()
    return sum(size for index_id, size in sizes.items() if index_id not in consolidated)


def compact_when_due(vault: Vault, tail_bytes: int | None = None) -> CompactReport | None:
    """Compact when the index a backup would load whole has reached ``tail_bytes`` stored (default
    ``AUTO_COMPACT_TAIL_BYTES``); None when it has not. A CLI user who never runs maintenance so keeps each
    backup's index within the sharded generation's bounds."""
    limit = AUTO_COMPACT_TAIL_BYTES if tail_bytes is None else tail_bytes
    if index_tail_bytes(vault) < limit:
        return None
    return compact_index(vault)


__all__ = ["AUTO_COMPACT_TAIL_BYTES", "CompactReport", "compact_index", "compact_when_due", "index_tail_bytes"]
