"""A simulated 1 TB DynamoDB table (issue 11): one scan segment's worker, its restore and the table commit, measured
per segment, and extrapolated to the segments of 1 TB.

    .venv/bin/python bench/table_scale_bench.py [--segment-mb 134] [--item-bytes 400] [--commit-segments 256 1024]
    .venv/bin/python bench/table_scale_bench.py --quick

Nothing of 1 TB is written. A segment of ``--segment-mb`` MB (default SEGMENT_BYTES, 128 MiB) is generated page by
page as it is scanned (bench/table_scale_steps.py) and backed up for real into a local vault: day 1 stores its
base, day 2 (1% of its items changed) a delta layer on it; then a restore reads the segment back, its layers
merged by key. Each segment of a table is one such worker, so a worker's figures are the table's per segment. The
commit streams what the segments' workers staged (one part each: a base's chunk list and up to 31 delta layers)
twice, holding one segment's entries at a time; it is measured at ``--commit-segments`` segments with synthetic
parts and extrapolated linearly. Each step runs in its own process.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from measure import BENCH_DIR, StepResult, run_measured

from vaultline.operations.table_backup import MAX_SEGMENTS, SEGMENT_BYTES
from vaultline.sources.dynamodb import layers

sys.path.insert(0, str(BENCH_DIR.parent))  # the registry of the stack's functions lives in infra/, beside bench/
from infra import registry

TB = 1024**4
CHANGED_PERMILLE = 10  # 1% of the items changed a day


def log(message: str) -> None:
    print(message, flush=True)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--segment-mb", type=int, default=SEGMENT_BYTES // 10**6, help="MB of one segment")
    parser.add_argument("--item-bytes", type=int, default=400, help="bytes of one item line")
    parser.add_argument("--commit-segments", type=int, nargs=2, default=[256, 1024], help="two commit sizes")
    parser.add_argument("--quick", action="store_true", help="a 4 MB segment, commits of 16 and 64 segments")
    args = parser.parse_args(argv)
    if args.quick:
        args.segment_mb, args.commit_segments = 4, [16, 64]
    return args


def step(name: str, vault: Path, *sizes: int) -> StepResult:
    return run_measured([sys.executable, str(BENCH_DIR / "table_scale_steps.py"), name, str(vault), *map(str, sizes)])


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    segment_bytes = args.segment_mb * 10**6
    segments_1tb = min(MAX_SEGMENTS, math.ceil(TB / SEGMENT_BYTES))
    with tempfile.TemporaryDirectory(prefix="table-scale-") as scratch:
        vault = Path(scratch) / "vault"
        sizes = (args.segment_mb, args.item_bytes, CHANGED_PERMILLE)
        base = step("backup", vault, *sizes, 0)
        delta = step("backup", vault, *sizes, 1)
        restore = step("restore", vault, *sizes, 1)
        chunks = max(1, base.report["new_chunks"])
        commits = [
            step("commit", Path(scratch) / f"commit-{n}", n, chunks, layers.MAX_LAYERS - 1)
            for n in args.commit_segments
        ]
    worker, commit = registry.DDB_SEGMENT_WORKER, registry.DDB_BACKUP_COMMIT
    log(
        f"one segment: {segment_bytes / 1e6:,.0f} MB, {base.report['items']:,} items of {args.item_bytes} B, "
        f"{chunks:,} chunks; 1 TB = {segments_1tb:,} segments of {SEGMENT_BYTES / 2**20:.0f} MiB "
        f"(at most {MAX_SEGMENTS:,}: {MAX_SEGMENTS * SEGMENT_BYTES / TB:.0f} TiB)"
    )
    log(f"{'step':<26}{'peak MiB':>10}{'base MiB':>10}{'seconds':>9}{'cpu s':>8}  function (MemorySize MB)")
    rows = [
        ("worker, day 1 (base)", base, worker),
        ("worker, day 2 (1% delta)", delta, worker),
        ("restore read (2 layers)", restore, registry.DDB_RESTORE_WORKER),
    ]
    for label, result, function in rows:
        log(
            f"{label:<26}{result.peak_rss_mib:>10.0f}{result.report['baseline_mib']:>10.0f}"
            f"{result.report['seconds']:>9.1f}{result.report['cpu_seconds']:>8.1f}"
            f"  {function.name} ({function.memory_mb})"
        )
    for n, result in zip(args.commit_segments, commits, strict=True):
        log(
            f"{f'commit, {n:,} segments':<26}{result.peak_rss_mib:>10.0f}{result.report['baseline_mib']:>10.0f}"
            f"{result.report['seconds']:>9.1f}{result.report['cpu_seconds']:>8.1f}  {commit.name} ({commit.memory_mb})"
        )
    (small, large), (low, high) = args.commit_segments, commits
    per_segment_mib = max(0.0, high.peak_rss_mib - low.peak_rss_mib) / (large - small)
    per_segment_s = max(0.0, high.report["seconds"] - low.report["seconds"]) / (large - small)

    def commit_at(segments: int) -> tuple[float, float]:
        return (
            low.peak_rss_mib + per_segment_mib * (segments - small),
            low.report["seconds"] + per_segment_s * (segments - small),
        )

    scale = SEGMENT_BYTES / segment_bytes
    log("")
    log(f"Extrapolated (linear; a worker's figures scaled from {segment_bytes / 1e6:,.0f} MB to one segment):")
    for label, result in (("base", base), ("delta", delta)):
        grown = (result.peak_rss_mib - result.report["baseline_mib"]) * scale + result.report["baseline_mib"]
        log(
            f"  segment worker ({label}): {grown:,.0f} MiB of {worker.memory_mb} MB, "
            f"{result.report['seconds'] * scale:,.0f} s ({result.report['cpu_seconds'] * scale:,.0f} s of CPU) of 900 "
            f"a segment; 1 TB: {segments_1tb:,} worker runs, "
            f"{result.report['seconds'] * scale * segments_1tb / 3600:,.1f} worker-hours"
        )
    memory, seconds = commit_at(segments_1tb)
    most, _ = commit_at(MAX_SEGMENTS)
    fits = int(small + (commit.memory_mb * 10**6 / 2**20 - low.peak_rss_mib) / max(per_segment_mib, 1e-9))
    log(
        f"  table commit: {per_segment_mib * 1024:,.0f} KiB a segment (parts stream; one segment's entries held); 1 TB "
        f"({segments_1tb:,} segments): {memory:,.0f} MiB, {seconds:,.0f} s; {MAX_SEGMENTS:,} segments: "
        f"{most:,.0f} MiB; fits {commit.memory_mb} MB up to ~{fits:,} segments ({fits * SEGMENT_BYTES / TB:.2f} TiB)"
    )
    reads = 1 + layers.MAX_DELTA_SHARE
    log(
        f"  restore: one worker a segment, merging at most {layers.MAX_LAYERS} layers "
        f"({layers.MAX_LAYERS * 2 - 1} streams, {layers.MERGE_LOOKAHEAD} chunks read ahead each, chunks <= 1 MiB: "
        f"<= {(layers.MAX_LAYERS * 2 - 1) * layers.MERGE_LOOKAHEAD} MiB of chunks), reading at most {reads:.1f}x "
        f"its segment ({reads * SEGMENT_BYTES / 2**20:.0f} MiB); measured here "
        f"{restore.report['seconds'] * scale:,.0f} s a segment"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
