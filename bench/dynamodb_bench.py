"""DynamoDB item-stream throughput, scan read cost and day-2 growth, measured off moto.

Items are generated in memory and fed through the real path a scan worker runs (serialize to type-preserving JSON
lines -> content-defined chunks -> zstd + seal -> packs in a local vault), compared with plain zstd on the same bytes.

    .venv/bin/python bench/dynamodb_bench.py [--items 100000] [--item-size 1000]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import zstandard

from vaultline.dynamodb.items import encode_item
from vaultline.dynamodb.scan import StreamWriter
from vaultline.packer import BlobWriter
from vaultline.storage import LocalStorage
from vaultline.vault import Vault


def make_items(count: int, size: int, seed: int = 1) -> list[dict[str, Any]]:
    """Order-like items: a key, a few typed attributes and a text body of about ``size`` bytes in all."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 6)).hex() for _ in range(2000)]
    items = []
    for n in range(count):
        body = " ".join(rng.choices(words, k=max(1, size // 9)))
        items.append(
            {
                "pk": {"S": f"customer#{n:08d}"},
                "sk": {"N": str(rng.randint(1, 10**12))},
                "total": {"N": f"{rng.random() * 1000:.2f}"},
                "tags": {"SS": sorted({rng.choice(words) for _ in range(3)})},
                "paid": {"BOOL": rng.random() < 0.5},
                "body": {"S": body},
            }
        )
    return items


def store(vault: Vault, items: list[dict[str, Any]], threads: int = 1) -> tuple[float, int, int]:
    """(seconds, stream bytes, stored bytes) of one worker storing ``items`` as one segment stream."""
    clock = time.perf_counter()
    with BlobWriter(vault, threads=threads) as writer:
        stream = StreamWriter(writer)
        for item in items:
            stream.add(encode_item(item))
        stream.finish()
        stored = writer.flush().stored_bytes
    return time.perf_counter() - clock, stream.size, stored


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--item-size", type=int, default=1000)
    args = parser.parse_args()
    items = make_items(args.items, args.item_size)
    raw = b"".join(encode_item(i) for i in items)
    clock = time.perf_counter()
    compressed = zstandard.ZstdCompressor(level=3).compress(raw)
    zstd_s = time.perf_counter() - clock

    with tempfile.TemporaryDirectory() as tmp:
        vault = Vault.init(LocalStorage(Path(tmp) / "v"))
        seconds, size, stored = store(vault, items, threads=1)
        print(f"items: {len(items)}, stream {size / 1e6:.1f} MB ({size / len(items):.0f} B/item)")
        print(f"worker (1 seal thread): {len(items) / seconds:,.0f} items/s, {size / seconds / 1e6:.1f} MB/s")
        print(f"raw zstd-3 on the same bytes: {len(items) / zstd_s:,.0f} items/s, {size / zstd_s / 1e6:.1f} MB/s")
        print(f"worker / raw zstd throughput ratio: {zstd_s / seconds:.2f}")
        print(f"stored {stored / 1e6:.2f} MB vs raw zstd {len(compressed) / 1e6:.2f} MB")
        # DynamoDB charges scans by the bytes read: 0.5 RCU per 4 KiB eventually consistent, 1 RCU strongly.
        rcu_per_gb = 1e9 / 4096 * 0.5
        print(f"scan read capacity: {rcu_per_gb:,.0f} RCU/GB eventually consistent, {2 * rcu_per_gb:,.0f} strongly")

        rng = random.Random(2)
        for item in rng.sample(items, len(items) // 100):
            item["body"] = {"S": item["body"]["S"][::-1]}
        _, _, day2 = store(vault, items, threads=1)
        print(f"day-2 growth with 1% of items changed: {day2 / 1e6:.2f} MB = {day2 / stored:.1%} of day 1")


if __name__ == "__main__":
    main()
