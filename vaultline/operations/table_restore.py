"""Restoring a table recovery point: into a new table built from the saved description, into an existing table
with the same key schema, or item by item; and reading single items as they were."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from vaultline.errors import IntegrityError, RecoveryPointNotFound, TargetError
from vaultline.model import VaultlineModel
from vaultline.repository.blob_reader import ChunkReader
from vaultline.repository.manifest import ObjectEntry, RecoveryPoint, iter_entries
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb import layers
from vaultline.sources.dynamodb.items import Item, decode_item, iter_lines, key_of, parse_key
from vaultline.sources.dynamodb.model import table_info
from vaultline.sources.dynamodb.table import (
    TableSnapshot,
    check_key_schema,
    create_table,
    find_table,
    table_client,
)
from vaultline.sources.dynamodb.throttle import Backoff, RateLimiter
from vaultline.sources.dynamodb.urls import parse_table_url

BATCH_SIZE = 25  # BatchWriteItem's limit


class TableRestoreStats(VaultlineModel):
    """Figures of a table restore; also its `--json` output."""

    items: int = 0
    batches: int = 0
    retried_batches: int = 0
    write_capacity_units: float = 0.0
    table_created: bool = False
    seconds: float = 0.0


def iter_stream_items(
    vault: Vault, entries: Iterable[ObjectEntry], reader: ChunkReader | None = None
) -> Iterator[Item]:
    """Items of segment streams, in stream order, chunks read ahead in parallel."""
    own = reader is None
    reader = reader or ChunkReader(vault)
    try:
        for entry in entries:
            for line in iter_lines(reader.stream(entry.chunks)):
                yield decode_item(line)
    finally:
        if own:
            reader.close()


def iter_layered_items(
    vault: Vault, rp: RecoveryPoint, segments: Iterable[layers.SegmentLayers], reader: ChunkReader | None = None
) -> Iterator[Item]:
    """Items of layered segments: each segment's base and deltas merged by key, streaming."""
    own = reader is None
    reader = reader or ChunkReader(vault, lookahead=layers.MERGE_LOOKAHEAD)
    key_names = list(table_info(rp).table.key_types)
    try:
        for segment in segments:
            for _, line in layers.merged_lines(reader, segment, key_names, f"recovery point {rp.id}"):
                yield decode_item(line)
    finally:
        if own:
            reader.close()


def table_segments(vault: Vault, rp: RecoveryPoint) -> Iterator[layers.SegmentLayers]:
    """The segments of a layered recovery point, each checked complete (IntegrityError names a missing link)."""
    info = table_info(rp)
    return layers.iter_segments(iter_entries(vault, rp), info.total_segments, f"recovery point {rp.id}")


def is_layered(rp: RecoveryPoint) -> bool:
    return table_info(rp).stream_layout == layers.LAYOUT


def check_layers(vault: Vault, rp: RecoveryPoint) -> int:
    """Before a layered restore writes anything: every segment's chain complete and every chunk it names indexed;
    IntegrityError naming the segment, the layer and the chunk otherwise. Returns the segment count. Streams the
    manifest (one segment's entries in memory)."""
    segments = 0
    for segment in table_segments(vault, rp):
        for layer in segment.entries:
            for chunk in layer.entry.chunks:
                if bytes.fromhex(chunk) not in vault.lookup:
                    raise IntegrityError(
                        f"recovery point {rp.id}: {layer.entry.key} needs chunk {chunk[:16]}, which is in no pack "
                        "of the vault (a layer it builds on is gone); nothing was restored"
                    )
        segments += 1
    return segments


def iter_table_items(vault: Vault, rp: RecoveryPoint) -> Iterator[Item]:
    """Every item of a table recovery point: its streams one after the other (format version 1 layout), or its
    segments' layers merged by key (layered)."""
    if is_layered(rp):
        return iter_layered_items(vault, rp, table_segments(vault, rp))
    return iter_stream_items(vault, iter_entries(vault, rp))


@dataclass
class BatchWriter:
    """BatchWriteItem in batches of 25; UnprocessedItems retried with backoff; writes paced by a WCU/s limit."""

    ddb: Any
    table: str
    key_names: list[str]
    limiter: RateLimiter = field(default_factory=RateLimiter)
    backoff: Backoff = field(default_factory=Backoff)
    stats: TableRestoreStats = field(default_factory=TableRestoreStats)
    _batch: dict[bytes, Item] = field(default_factory=dict)

    def put(self, item: Item) -> None:
        # Keyed, so a key seen twice in one batch (which BatchWriteItem rejects) keeps its last version.
        self._batch[key_of(item, self.key_names)] = item
        if len(self._batch) >= BATCH_SIZE:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered, retrying unprocessed items until none are left."""
        if not self._batch:
            return
        requests = [{"PutRequest": {"Item": item}} for item in self._batch.values()]
        count = len(requests)
        self._batch = {}
        attempt = 0
        while requests:
            response = self.backoff.call(
                lambda r=requests: self.ddb.batch_write_item(  # type: ignore[misc]
                    RequestItems={self.table: r}, ReturnConsumedCapacity="TOTAL"
                ),
                f"table {self.table}",
            )
            for consumed in response.get("ConsumedCapacity", []):
                units = float(consumed.get("CapacityUnits") or 0)
                self.stats.write_capacity_units += units
                self.limiter.spend(units)
            requests = response.get("UnprocessedItems", {}).get(self.table, [])
            if requests:
                self.stats.retried_batches += 1
                if attempt >= self.backoff.attempts:
                    raise TargetError(f"table {self.table}: {len(requests)} items stayed unprocessed")
                self.backoff.sleep(self.backoff.delay(attempt))
                attempt += 1
        self.stats.items += count
        self.stats.batches += 1


def prepare_target(ddb: Any, name: str, snapshot: TableSnapshot, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Make sure ``name`` can take the items: create it from the description if missing (True), else check its key
    schema (a mismatch raises TargetError before anything is written)."""
    existing = find_table(ddb, name)
    if existing is None:
        create_table(ddb, name, snapshot, sleep)
        return True
    check_key_schema(existing, snapshot)
    return False


def find_items(vault: Vault, rp: RecoveryPoint, keys: Sequence[Item]) -> list[Item]:
    """The items of ``rp`` with the given keys, in the order asked; RecoveryPointNotFound names a missing key."""
    snapshot = table_info(rp).table
    names = list(snapshot.key_types)
    wanted = {key_of(k, names): k for k in keys}
    found: dict[bytes, Item] = {}
    for item in iter_table_items(vault, rp):
        key = key_of(item, names)
        if key in wanted:
            found[key] = item
            if len(found) == len(wanted):
                break
    missing = [k for k in wanted if k not in found]
    if missing:
        raise RecoveryPointNotFound(
            f"recovery point {rp.id} of table {snapshot.name} has no item with key {missing[0].decode().strip()}"
        )
    return [found[key_of(k, names)] for k in keys]


def parse_keys(rp: RecoveryPoint, texts: Sequence[str]) -> list[Item]:
    """Keys from the command line, checked against the backed-up table's key schema."""
    snapshot = table_info(rp).table
    return [parse_key(text, snapshot.key_types, snapshot.name) for text in texts]


def restore_table(
    vault: Vault,
    rp: RecoveryPoint,
    target_url: str,
    keys: Sequence[str] = (),
    write_rate: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    ddb: Any = None,
) -> TableRestoreStats:
    """Restore ``rp`` (every item, or only ``keys``) into the table at ``target_url``.

    Everything that can be refused is checked before the first write: the keys against the schema and the
    recovery point, the target's key schema against the saved one.
    """
    clock = time.monotonic()
    snapshot = table_info(rp).table
    ref = parse_table_url(target_url)
    parsed = parse_keys(rp, keys)
    if is_layered(rp) and not parsed:
        check_layers(vault, rp)
    selected = find_items(vault, rp, parsed) if parsed else None
    ddb = ddb or table_client(ref)
    created = prepare_target(ddb, ref.name, snapshot, sleep)
    writer = BatchWriter(
        ddb, ref.name, list(snapshot.key_types), RateLimiter(write_rate, sleep=sleep), Backoff(sleep=sleep)
    )
    writer.stats.table_created = created
    for item in selected if selected is not None else iter_table_items(vault, rp):
        writer.put(item)
    writer.flush()
    writer.stats.seconds = round(time.monotonic() - clock, 3)
    return writer.stats


def restore_work(vault: Vault, rp: RecoveryPoint) -> list[str]:
    """A serverless restore's work items: one per layered segment (its key prefix, ``segment/00003/``; the chains
    checked first) or one per stream with chunks."""
    if is_layered(rp):
        return [f"segment/{n:05d}/" for n in range(check_layers(vault, rp))]
    return [entry.key for entry in iter_entries(vault, rp) if entry.chunks]


def work_items(vault: Vault, rp: RecoveryPoint, work: str) -> Iterator[Item]:
    """The items of one of :func:`restore_work`'s items."""
    if not is_layered(rp):
        return iter_stream_items(vault, [e for e in iter_entries(vault, rp) if e.key == work])
    where = f"recovery point {rp.id}"
    segment = layers.segment_layers(
        int(work.split("/")[1]), (e for e in iter_entries(vault, rp) if e.key.startswith(work)), where
    )
    return iter_layered_items(vault, rp, [segment])


def write_items_to_table(
    items: Iterable[Item],
    ddb: Any,
    table: str,
    key_names: list[str],
    write_rate: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> TableRestoreStats:
    """Write items (a restore worker's share: some segment streams, or one layered segment) into ``table``."""
    writer = BatchWriter(ddb, table, key_names, RateLimiter(write_rate, sleep=sleep), Backoff(sleep=sleep))
    for item in items:
        writer.put(item)
    writer.flush()
    return writer.stats
