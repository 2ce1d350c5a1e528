"""The table scale benchmark's steps, one per process (bench/table_scale_bench.py drives them).

Usage: ``table_scale_steps.py STEP VAULT_DIR SEGMENT_MB ITEM_BYTES [CHANGED_PERMILLE]``. Prints one JSON
line: the step's seconds, its peak RSS (VmHWM) and its baseline (the interpreter and the engine imported).

The table is never held: :class:`GeneratedSegment` serves the DynamoDB calls of a scan of one segment of
``SEGMENT_MB`` MB, generating each 1 MB page from its page number (items of about ``ITEM_BYTES``, keys in hash
order as DynamoDB returns them), and a day-N version of it with ``CHANGED_PERMILLE`` per mille of its items
changed. What a worker does with it is real: the layered store (sort, base or delta against the parent's layers,
chunks, packs in a local vault), then the table commit of that one segment.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from engine_steps import vm_hwm_mib

from vaultline.operations import table_backup
from vaultline.operations.table_backup import SEGMENT_BYTES, ChainCheck, SegmentPart, entries_by_segment
from vaultline.operations.table_restore import iter_table_items
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.commit import RecoveryPointDraft, finish_recovery_point
from vaultline.repository.manifest import BackupStats, ObjectEntry, latest_for_source, new_recovery_point_id
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb import layers
from vaultline.sources.dynamodb.model import BackupOptions
from vaultline.storage import LocalStorage

URL = "dynamodb://orders"
PAGE_BYTES = 1_000_000  # DynamoDB's 1 MB page


class GeneratedSegment:
    """A table of one scan segment whose items are made as they are scanned, a page at a time."""

    def __init__(self, segment_bytes: int, item_bytes: int, changed_permille: int, generation: int) -> None:
        self.item_bytes = item_bytes
        self.items = max(1, segment_bytes // item_bytes)
        self.per_page = max(1, PAGE_BYTES // item_bytes)
        self.changed_permille = changed_permille
        self.generation = generation

    def item(self, number: int) -> dict[str, Any]:
        key = hashlib.blake2b(number.to_bytes(8, "little"), digest_size=8).hexdigest()
        version = 0
        if self.generation and int(key[:6], 16) % 1000 < self.changed_permille:
            version = self.generation  # the same items change every generation: a steady 1% a day
        body = hashlib.blake2b(f"{number}:{version}".encode(), digest_size=32).hexdigest()
        filler = (body * (self.item_bytes // 64 + 1))[: max(0, self.item_bytes - 60)]
        return {"pk": {"S": key}, "version": {"N": str(version)}, "body": {"S": filler}}

    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {
            "Table": {
                "TableName": TableName,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "TableSizeBytes": 0,
                "ItemCount": self.items,
                "TableStatus": "ACTIVE",
                "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
                "TableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TableName}",
            }
        }

    def describe_time_to_live(self, TableName: str) -> dict[str, Any]:
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}

    def describe_continuous_backups(self, TableName: str) -> dict[str, Any]:
        return {"ContinuousBackupsDescription": {"ContinuousBackupsStatus": "DISABLED"}}

    def get_paginator(self, name: str) -> Any:
        class NoTags:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"Tags": []}]

        return NoTags()

    def scan(self, **args: Any) -> dict[str, Any]:
        start = int(args.get("ExclusiveStartKey", {}).get("page", {}).get("N", "0"))
        first = start * self.per_page
        page = [self.item(n) for n in range(first, min(first + self.per_page, self.items))]
        answer: dict[str, Any] = {"Items": page, "ConsumedCapacity": {"CapacityUnits": 128.0}}
        if first + self.per_page < self.items:
            # A page-number cursor in place of the last key: the generator is indexed by page, not by key.
            answer["LastEvaluatedKey"] = {"page": {"N": str(start + 1)}}
        return answer


class Daily(datetime):
    """Backups a day apart, so that the day-N recovery point is the latest (recovery point ids sort by time)."""

    days = 0

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Daily:
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=cls.days)
        return cls.fromtimestamp(moment.timestamp(), tz)


def backup(vault_dir: str, segment_mb: int, item_bytes: int, changed: int, day: int) -> dict[str, Any]:
    """One backup of the generated segment (day 0: into a new vault, a base; later days: a delta on the parent)."""
    vault = Vault.init(LocalStorage(vault_dir)) if day == 0 else Vault.open(LocalStorage(vault_dir))
    table = GeneratedSegment(segment_mb * 10**6, item_bytes, changed, day)
    table_backup.datetime = Daily  # type: ignore[misc]
    Daily.days = day
    rp = table_backup.run_table_backup(vault, URL, BackupOptions(segments=1), sleep=lambda _: None, ddb=table)
    stored = sum(o.size for o in vault.storage.list("data/"))
    return {"rp": rp.id, "items": table.items, "new_chunks": rp.stats.new_chunks, "data_bytes": stored}


def restore(vault_dir: str, segment_mb: int, item_bytes: int, changed: int, day: int) -> dict[str, Any]:
    """Read every item of the latest recovery point (its layers merged by key), as a restore worker does."""
    vault = Vault.open(LocalStorage(vault_dir))
    rp = latest_for_source(vault, URL)
    assert rp is not None
    return {"items": sum(1 for _ in iter_table_items(vault, rp))}


def commit(
    vault_dir: str, segments: int, chunks_per_segment: int, layers_per_segment: int, _: int = 0
) -> dict[str, Any]:
    """What the table commit holds and writes for ``segments`` segments, as ``commit_table`` does it: every staged
    part (each a base of ``chunks_per_segment`` chunks and ``layers_per_segment`` delta layers of one chunk each)
    read once for the sums and the chain check, then again as the entries stream into the manifest, one segment's
    entries held at a time."""
    vault = Vault.init(LocalStorage(vault_dir), encryption="none")

    def staged_parts() -> Iterator[SegmentPart]:
        for segment in range(segments):
            yield SegmentPart.model_validate_json(_part_json(segment, chunks_per_segment, layers_per_segment))

    clock = time.perf_counter()
    check = ChainCheck(segments)
    for part in staged_parts():
        check.add(part)
    check.require_complete("bench")
    staged = time.perf_counter() - clock
    started = datetime.now(UTC)
    draft = RecoveryPointDraft(
        recovery_point=new_recovery_point_id(started), started=started, source=URL, source_kind="dynamodb"
    )
    with BlobWriter(vault) as writer:
        rp = finish_recovery_point(vault, writer, draft, entries_by_segment(staged_parts(), check))
    return {"entries": rp.entry_count, "parts_seconds": staged}


def _part_json(segment: int, chunks: int, deltas: int) -> str:
    def ids(count: int, salt: str) -> list[str]:
        return [hashlib.blake2b(f"{segment}:{salt}:{n}".encode(), digest_size=32).hexdigest() for n in range(count)]

    stats = BackupStats(objects=1, new_chunks=chunks)
    base = ObjectEntry(key=layers.base_key(segment, 0), size=SEGMENT_BYTES, chunks=ids(chunks, "b"))
    more = []
    for layer in range(1, deltas + 1):
        for kind in ("delete", "put"):  # the literal kinds, in key order
            key = layers.delta_key(segment, layer, kind)
            more.append(ObjectEntry(key=key, size=SEGMENT_BYTES // 100, chunks=ids(1, f"{layer}{kind}")))
    part = SegmentPart(segment=segment, part=0, entry=base, items=SEGMENT_BYTES // 400, stats=stats, more=more)
    return part.model_dump_json()


STEPS: dict[str, Callable[..., dict[str, Any]]] = {"backup": backup, "restore": restore, "commit": commit}


def main(argv: list[str]) -> int:
    step, vault_dir, *sizes = argv
    numbers = [int(n) for n in sizes] + [0] * (4 - len(sizes))
    baseline = vm_hwm_mib()
    clock = time.perf_counter()
    result = STEPS[step](vault_dir, *numbers)
    result["seconds"] = time.perf_counter() - clock
    result["cpu_seconds"] = time.process_time()
    result["baseline_mib"] = baseline
    result["vm_hwm_mib"] = vm_hwm_mib()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
