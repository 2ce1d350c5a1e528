"""Maintenance benchmark: forget + prune/repack time and storage requests on a local vault of 100 recovery points,
check --read-data throughput, and one Maintenance verify item per pack batch (its time and peak RSS, in a fresh
process, over packs of the default 16 MiB).

    .venv/bin/python bench/maintenance_bench.py [--points 100] [--files 40] [--churn 4] [--file-size 65536]
        [--item-packs 8 16] [--runs 3]

Each recovery point backs up a directory of ``files`` random files of which ``churn`` changed since the previous
one (plus one grown log file), into packs of 512 KiB so that the vault has many packs to sort out.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from measure import run_engine_step

from vaultline.operations.backup import run_backup
from vaultline.operations.check import CheckPlan, PackBatch, check_vault
from vaultline.operations.forget_run import forget_listed
from vaultline.operations.prune import prune
from vaultline.operations.retention import RetentionPolicy
from vaultline.operations.stats import vault_stats
from vaultline.repository.layout import CONFIG_KEY
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import LocalStorage, Storage, StoredObject


class CountingStorage(Storage):
    """Counts requests by kind, as S3 would bill them (a listing page counts once per call here)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.url = inner.url
        self.calls: Counter[str] = Counter()

    def put(self, key: str, data: bytes) -> None:
        self.calls["PUT"] += 1
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        self.calls["GET"] += 1
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        self.calls["GET"] += 1
        return self.inner.get_range(key, start, length)

    def get_tail(self, key: str, length: int) -> bytes:
        self.calls["GET"] += 1
        return self.inner.get_tail(key, length)

    def list(self, prefix: str) -> Iterator[StoredObject]:
        self.calls["LIST"] += 1
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.calls["DELETE"] += 1
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        self.calls["HEAD"] += 1
        return self.inner.exists(key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--churn", type=int, default=4)
    parser.add_argument("--file-size", type=int, default=64 * 1024)
    parser.add_argument("--keep-last", type=int, default=10)
    parser.add_argument("--item-packs", type=int, nargs="+", default=[8, 16], help="packs of 16 MiB per item")
    parser.add_argument("--runs", type=int, default=3, help="runs of each verify item (the median is printed)")
    args = parser.parse_args()
    verify_item_figures(max(args.item_packs), args.item_packs, args.runs)
    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as tmp:
        src, root = Path(tmp, "src"), Path(tmp, "vault")
        src.mkdir()
        vault = Vault.init(LocalStorage(root))
        vault.storage.put(CONFIG_KEY, vault.config.model_copy(update={"pack_size": 512 * 1024}).to_bytes())
        vault = Vault.open(LocalStorage(root))
        for i in range(args.files):
            (src / f"f{i:03d}").write_bytes(rng.randbytes(args.file_size))
        clock = time.perf_counter()
        for _ in range(args.points):
            for i in rng.sample(range(args.files), args.churn):
                (src / f"f{i:03d}").write_bytes(rng.randbytes(args.file_size))
            with (src / "log").open("ab") as log:
                log.write(rng.randbytes(4096))
            run_backup(vault, open_source(str(src)))
        backup_s = time.perf_counter() - clock
        before = vault_stats(vault)
        print(
            f"built {args.points} recovery points in {backup_s:.1f} s: {before.packs} packs, {before.blobs} blobs, "
            f"{before.pack_bytes / 2**20:.1f} MiB in packs, dedup {before.dedup_ratio:.1f}x"
        )

        counting = CountingStorage(LocalStorage(root))
        vault = Vault.open(counting)
        clock = time.perf_counter()
        with forget_listed(vault, RetentionPolicy(keep_last=args.keep_last)) as listing:  # the CLI's forget
            removed = listing.report.removed_count
        forget_s = time.perf_counter() - clock
        print(
            f"forget --keep-last {args.keep_last}: removed {removed} in {forget_s:.2f} s, "
            f"requests {dict(counting.calls)}"
        )
        garbage = vault_stats(Vault.open(LocalStorage(root)))
        print(f"garbage share before prune: {garbage.garbage_share:.1%} ({garbage.garbage_bytes / 2**20:.1f} MiB)")

        counting.calls.clear()
        clock = time.perf_counter()
        report = prune(vault)
        prune_s = time.perf_counter() - clock
        print(
            f"prune: {prune_s:.2f} s; packs {report.packs_before} -> {report.packs_after} "
            f"({report.packs_deleted} deleted, {report.packs_repacked} repacked into {report.packs_written}); "
            f"repacked {report.bytes_repacked / 2**20:.1f} MiB; "
            f"{report.bytes_before / 2**20:.1f} -> {report.bytes_after / 2**20:.1f} MiB; "
            f"requests {dict(counting.calls)}"
        )

        counting.calls.clear()
        clock = time.perf_counter()
        idle = prune(vault)
        print(
            f"second prune (nothing to do): {time.perf_counter() - clock:.2f} s, "
            f"{idle.packs_deleted + idle.packs_repacked} packs touched, requests {dict(counting.calls)}"
        )

        clock = time.perf_counter()
        checked = check_vault(Vault.open(LocalStorage(root)), read_data=True)
        check_s = time.perf_counter() - clock
        assert checked.ok, checked.errors
        print(
            f"check --read-data: {checked.packs_read} packs, {checked.bytes_read / 2**20:.1f} MiB in {check_s:.2f} s "
            f"= {checked.bytes_read / 2**20 / check_s:.0f} MiB/s (structure of {checked.recovery_points} points "
            f"included)"
        )


def verify_item_figures(packs: int, sizes: list[int], runs: int) -> None:
    """A vault of ``packs`` full 16 MiB packs (incompressible data); one verify item over the first ``n`` of them
    for each ``n`` of ``sizes``, ``runs`` times each in a fresh process: seconds per pack and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        src, root = Path(tmp, "src"), Path(tmp, "vault")
        src.mkdir()
        rng = random.Random(7)
        for i in range(packs * 16 + 4):
            (src / f"f{i:04d}").write_bytes(rng.randbytes(1 << 20))
        vault = Vault.init(LocalStorage(root))
        run_backup(vault, open_source(str(src)))
        plan = CheckPlan(Vault.open(LocalStorage(root)), read_data=True)
        listed = [pack for batch in plan.batches() if isinstance(batch, PackBatch) for pack in batch.packs]
        full = [pack for pack in listed if pack.size >= 15 << 20]
        for count in sizes:
            batch_file = Path(tmp, f"batch-{count}.json")
            batch_file.write_text(PackBatch(packs=full[:count]).model_dump_json())
            results = [run_engine_step("verify-item", str(root), str(batch_file)) for _ in range(runs)]
            seconds = statistics.median(r.report["seconds"] for r in results)
            peak = statistics.median(r.peak_rss_mib for r in results)
            size = sum(p.size for p in full[:count])
            print(
                f"verify item, {count} packs ({size / 2**20:.0f} MiB, {results[0].report['blobs']} blobs): "
                f"{seconds:.2f} s = {seconds / count * 1000:.0f} ms a pack ({size / 2**20 / seconds:.0f} MiB/s), "
                f"peak RSS {peak:.0f} MiB (median of {runs})"
            )


if __name__ == "__main__":
    main()
