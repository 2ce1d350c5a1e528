"""Layered DynamoDB recovery points (issue 11 item 4): index entries per 32 KiB of table and day-N growth with 1% of
items changed a day, through the real backup path (a scan of a fake table -> sort -> base or delta -> packs in a
local vault), and each backup's and restore's peak RSS and time.

    .venv/bin/python bench/table_bench.py [--items 200000] [--item-size 400] [--segments 64] [--days 40] [--quick]

The table is generated in memory and served by a fake DynamoDB client (pages of 1 MB, Segment/TotalSegments by a
hash of the key), so nothing but the scan's wire calls is simulated. Growth is the bytes each backup stored
(data, manifest and index objects) over the bytes the first backup stored; with ``--segments`` >= 32 the staggered
re-bases show their steady state (one segment in 32 re-based a backup). The extrapolation to 1 TB is linear in
the segments (each a Lambda worker) at SEGMENT_BYTES each.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from vaultline.operations import table_backup
from vaultline.operations.table_restore import iter_table_items
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb import layers
from vaultline.sources.dynamodb.items import encode_item
from vaultline.sources.dynamodb.model import BackupOptions
from vaultline.storage import LocalStorage

PAGE_BYTES = 1024**2


class FakeTable:
    """The DynamoDB calls a scan backup makes, over items held in memory."""

    def __init__(self, name: str, items: dict[str, dict[str, Any]]) -> None:
        self.name, self.items = name, items
        self.segments: dict[tuple[int, int], list[str]] = {}

    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {
            "Table": {
                "TableName": self.name,
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "TableSizeBytes": 0,
                "ItemCount": len(self.items),
                "TableStatus": "ACTIVE",
                "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
                "TableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{self.name}",
            }
        }

    def describe_time_to_live(self, TableName: str) -> dict[str, Any]:
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}

    def get_paginator(self, name: str) -> Any:
        class NoTags:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                return [{"Tags": []}]

        return NoTags()

    def describe_continuous_backups(self, TableName: str) -> dict[str, Any]:
        return {"ContinuousBackupsDescription": {"ContinuousBackupsStatus": "DISABLED"}}

    def scan(self, **args: Any) -> dict[str, Any]:
        segment, total = args.get("Segment", 0), args.get("TotalSegments", 1)
        start = args.get("ExclusiveStartKey", {}).get("pk", {}).get("S", "")
        if (total, segment) not in self.segments:  # the keys never change in this bench, only the items
            self.segments[total, segment] = sorted(k for k in self.items if _segment_of(k, total) == segment)
        keys = self.segments[total, segment]
        page, size = [], 0
        for key in keys[bisect.bisect_right(keys, start) :]:
            page.append(self.items[key])
            size += len(encode_item(self.items[key]))
            if size >= PAGE_BYTES:
                return {"Items": page, "LastEvaluatedKey": {"pk": {"S": key}}, "ConsumedCapacity": {}}
        return {"Items": page, "ConsumedCapacity": {}}


def _segment_of(key: str, total: int) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") % total


class Daily(datetime):
    """Backups a day apart (recovery point ids sort by their second; the parent is the latest id)."""

    days = 0

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Daily:
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=cls.days, seconds=time.perf_counter() % 60)
        return cls.fromtimestamp(moment.timestamp(), tz)


def make_item(rng: random.Random, n: int, size: int) -> dict[str, Any]:
    return {
        "pk": {"S": f"order#{n:09d}"},
        "total": {"N": str(rng.randint(1, 10**6))},
        "body": {"S": rng.randbytes(size // 2).hex()},
    }


def stored_bytes(vault: Vault) -> int:
    return sum(o.size for prefix in ("data/", "index/", "recovery-points/") for o in vault.storage.list(prefix))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--item-size", type=int, default=400)
    parser.add_argument("--segments", type=int, default=64)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--quick", action="store_true", help="3,000 items, 4 segments, 3 days: runs end to end")
    args = parser.parse_args()
    if args.quick:
        args.items, args.segments, args.days = 3000, 4, 3
    rng = random.Random(1)
    items = {f"order#{n:09d}": make_item(rng, n, args.item_size) for n in range(args.items)}
    table_bytes = sum(len(encode_item(i)) for i in items.values())
    fake = FakeTable("orders", items)
    table_backup.datetime = Daily  # type: ignore[misc]
    options = BackupOptions(segments=args.segments)
    with tempfile.TemporaryDirectory() as tmp:
        vault = Vault.init(LocalStorage(Path(tmp) / "v"))
        before = 0
        growth: list[float] = []
        for day in range(args.days):
            if day:
                for key in rng.sample(sorted(items), int(len(items) * args.changed)):
                    items[key] = make_item(rng, int(key.split("#")[1]), args.item_size)
            Daily.days = day
            clock = time.perf_counter()
            rp = table_backup.run_table_backup(vault, "dynamodb://orders", options, sleep=lambda _: None, ddb=fake)
            seconds = time.perf_counter() - clock
            now = stored_bytes(vault)
            added, before = now - before, now
            if day == 0:
                first, chunks = added, rp.stats.new_chunks
                print(
                    f"table {table_bytes / 1e6:.1f} MB, {len(items)} items, {args.segments} segments; day 1: "
                    f"stored {added / 1e6:.1f} MB in {chunks} chunks = one index entry per "
                    f"{table_bytes / chunks / 1024:.0f} KiB of table ({added / chunks / 1024:.0f} KiB stored), "
                    f"{seconds:.1f} s, peak RSS {peak_mib():.0f} MiB"
                )
                continue
            growth.append(added / first)
            if day in (1, 2, 7, args.days - 1):
                print(
                    f"day {day + 1}: stored {added / 1e6:.2f} MB = {added / first:.1%} of day 1 "
                    f"({rp.stats.new_chunks} new chunks), {seconds:.1f} s, generation {day}"
                )
        steady = growth[-layers.MAX_LAYERS :] if len(growth) >= layers.MAX_LAYERS else growth
        print(
            f"mean growth a backup over the last {len(steady)} backups: {sum(steady) / len(steady):.2%} of day 1 "
            f"(MAX_LAYERS {layers.MAX_LAYERS}: re-bases staggered, one segment in {layers.MAX_LAYERS} a backup)"
        )
        clock = time.perf_counter()
        count = sum(1 for _ in iter_table_items(vault, rp))
        seconds = time.perf_counter() - clock
        print(
            f"restore read of the last recovery point: {count} items in {seconds:.1f} s, peak RSS {peak_mib():.0f} MiB"
        )
        seg = table_bytes / args.segments
        workers = 1024**4 / table_backup.SEGMENT_BYTES
        print(
            f"1 TB: {1024**4 / (table_bytes / chunks) / 1e6:.1f} M index entries (vs ~330 M at 3 KiB); "
            f"{workers:.0f} segments of {table_backup.SEGMENT_BYTES / 1024**2:.0f} MiB, each a worker holding at "
            f"most {layers.RUN_BYTES / 1024**2:.0f} MiB of item lines (this run: {seg / 1e6:.1f} MB a segment)"
        )


if __name__ == "__main__":
    main()
