"""Vaultline scale benchmark (issue 11): each step's peak RSS and time on a synthetic vault, and how far today's
code reaches within Lambda's limits.

Run ``make bench`` (1,000,000 objects, 3,000,000 chunks, 3 runs), ``.venv/bin/python bench/scale_bench.py
--quick``, or ``--full`` (10,000,000 objects, and the index also at 30,000,000 chunks; hours on a small machine).
The data is generated here, in a temporary vault (bench/scale_steps.py says how); each step runs in its
own process (median of ``--runs``). A step's peak RSS is split into its fixed part (the interpreter, the vault and,
for the steps that ask it, the index a worker uses: on the compacted vault the filter of ``--chunks`` chunks) and
the rest, charged to its size (objects,
chunks or recovery points); both are extrapolated linearly to the largest size that fits its function's MemorySize
(infra/registry.py) and 900 seconds.

The index table measures a worker's index start-up twice on index-only vaults: with the whole compact index, and on
the same vault compacted into a sharded generation (catalog, filter, shards fetched on demand); it also times the
compaction and counts the shard GETs of a synthetic day-2 GiB with and without the parent-chunk hint.

The packs of data chunks are empty placeholders, so nothing that reads pack data runs: check --read-data, restore,
prune's sweep and finish (its mark, plan and decide are measured), drills, and a worker's chunking of real objects.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from measure import BENCH_DIR, StepResult, run_measured

from vaultline.repository.layout import MANIFEST_PREFIX
from vaultline.storage.local import LocalStorage

sys.path.insert(0, str(BENCH_DIR.parent))  # the registry of the stack's functions lives in infra/, beside bench/
from infra import registry

LAMBDA_SECONDS = 900
LAMBDA_MAX_MB = 10_240
TARGET_CHUNKS = 30_000_000  # issue 11: the index of 10 TB of S3 data at 320 KiB chunks
FULL_OBJECTS = 10_000_000  # issue 11: the largest listing and manifest
PRUNE_PARTITIONS = 256  # vaultline.operations.prune.MAX_PARTITION_BITS = 8
# The steps that run on the vault compacted (as after Maintenance's daily Compact); Prepare never asks the index,
# and prune and forget run on the vault as generated (a prune retires the generation).
SHARDED_STEPS = ("worker-start", "commit", "ls", "check", "stats")
HEADER = f"{'step':<14}{'size':>16}{'peak MiB':>10}{'fixed MiB':>11}{'seconds':>9}{'B/unit':>9}  function (MB)"


@dataclass(frozen=True)
class Step:
    """One measured step: what its size counts, and the Lambda function (or the CLI) that runs it."""

    name: str
    unit: str
    function: registry.FunctionSpec
    note: str = ""
    # A step run once per partition (prune's Plan): the vault it reaches is this many times one partition.
    partitions: int = 1


STEPS = (
    Step("prepare", "objects", registry.BACKUP_PREPARE),
    Step("worker-start", "chunks", registry.BACKUP_WORKER, "compacted vault: catalog, filter, one shard"),
    Step("commit", "objects", registry.BACKUP_COMMIT),
    Step("ls", "objects", registry.RESTORE_PREPARE, "ls is the CLI's; restore's Prepare walks a manifest alike"),
    Step(
        "check",
        "objects",
        registry.MAINTENANCE_VERIFY_ITEM,
        "without read-data, compacted vault: the plan and the recovery point items",
    ),
    Step("stats", "objects", registry.MAINTENANCE_VERIFY_ITEM, "the CLI's; sized against a verify item"),
    Step("prune-mark", "objects", registry.MAINTENANCE_PRUNE_MARK, "all mark items, one after another"),
    Step(
        "prune-plan",
        "chunks",
        registry.MAINTENANCE_PRUNE_PLAN,
        f"one partition; a vault has up to {PRUNE_PARTITIONS}",
        partitions=PRUNE_PARTITIONS,
    ),
    Step("prune-decide", "chunks", registry.MAINTENANCE_PRUNE_DECIDE, "every pack's partial, nothing to sweep"),
    Step(
        "forget",
        "points",
        registry.MAINTENANCE_FORGET_DECIDE,
        "the staged steps in one process, one source: its decide item holds every point",
    ),
)


@dataclass
class Figures:
    """The medians of one step's runs."""

    step: Step
    size: int
    peak_mib: float
    fixed_mib: float
    seconds: float
    fixed_seconds: float
    step_peak_mib: float = 0.0  # Prepare and Commit: their peak RSS once the index is loaded
    held_bytes_per_unit: float = 0.0  # worker-start: the filter, the one part of its start-up that grows with chunks

    @property
    def bytes_per_unit(self) -> float:
        return (self.peak_mib - self.fixed_mib) * 2**20 / self.size

    def largest(self, memory_mb: int) -> tuple[int, int]:
        """The largest size (at this bench's fixed part) within ``memory_mb`` and within 900 seconds."""
        per_unit_mib = max(self.peak_mib - self.fixed_mib, 1e-9) / self.size
        per_unit_s = max(self.seconds - self.fixed_seconds, 1e-9) / self.size
        by_memory = (memory_mb * 10**6 / 2**20 - self.fixed_mib) / per_unit_mib
        by_time = (LAMBDA_SECONDS - self.fixed_seconds) / per_unit_s
        return max(0, int(by_memory)), max(0, int(by_time))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000, help="objects in the listing and the manifest")
    parser.add_argument("--chunks", type=int, default=3_000_000, help="chunks in the index")
    parser.add_argument("--points", type=int, default=365, help="recovery points forget sees (default a year)")
    parser.add_argument("--runs", type=int, default=3, help="runs of each step (the median is reported)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="4,000 objects, 20,000 chunks, 1 run: checks that it runs (the figures mean little)",
    )
    parser.add_argument(
        "--index-chunks",
        type=int,
        nargs="*",
        default=[1_000_000],
        help="index-only vaults whose start-up is measured (default 1,000,000; --full adds 30,000,000)",
    )
    parser.add_argument(
        "--full", action="store_true", help="10,000,000 objects, and the index also at 30,000,000 chunks"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="where the temporary vault goes")
    parser.add_argument(
        "--steps", nargs="*", default=None, help=f"only these steps (of {', '.join(s.name for s in STEPS)})"
    )
    parser.add_argument(
        "--cli-files", type=int, default=1_000_000, help="small files the CLI backup bench writes (0: no CLI bench)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.objects, args.chunks, args.points, args.runs = 4_000, 20_000, 20, 1
        args.index_chunks = [20_000]
        args.cli_files = 300
    if args.full:
        args.objects = FULL_OBJECTS
        if TARGET_CHUNKS not in args.index_chunks:
            args.index_chunks = [*args.index_chunks, TARGET_CHUNKS]
    return args


def log(message: str) -> None:
    print(message, flush=True)


def run_step(step: str, vault: Path, *sizes: int) -> StepResult:
    return run_measured([sys.executable, str(BENCH_DIR / "scale_steps.py"), step, str(vault), *map(str, sizes)])


def measure(step: Step, vault: Path, args: argparse.Namespace) -> Figures:
    """Run ``step`` ``--runs`` times, undoing what each run leaves (Commit's manifest, forget's deletions)."""
    sizes = (args.objects, args.chunks, args.points) if step.unit == "points" else (args.objects, args.chunks)
    manifests = vault / MANIFEST_PREFIX
    saved = vault.parent / "manifests-before-forget"
    results = []
    for _ in range(args.runs):
        if step.name == "forget":
            shutil.rmtree(saved, ignore_errors=True)
            shutil.copytree(manifests, saved)
        if step.name == "commit":  # each Commit cleans the run it commits: stage one for it
            run_step("stage-commit", vault, *sizes)
        result = run_step(step.name, vault, *sizes)
        if step.name == "commit":
            LocalStorage(str(vault)).delete(MANIFEST_PREFIX + result.report["rp"])
        if step.name == "forget":
            shutil.rmtree(manifests)
            shutil.copytree(saved, manifests)
        if result.report.get("errors"):
            raise RuntimeError(f"{step.name}: the synthetic vault is not sound: {result.report['first_error']}")
        results.append(result)
    size = {"objects": args.objects, "chunks": args.chunks, "points": args.points}[step.unit]
    return Figures(
        step=step,
        size=size,
        peak_mib=statistics.median(r.peak_rss_mib for r in results),
        fixed_mib=statistics.median(r.report["fixed_rss_mib"] for r in results),
        seconds=statistics.median(r.report["seconds"] for r in results),
        fixed_seconds=statistics.median(r.report["fixed_seconds"] for r in results),
        step_peak_mib=statistics.median(r.report.get("step_peak_mib", 0.0) for r in results),
        held_bytes_per_unit=statistics.median(r.report.get("index_bytes_per_chunk", 0.0) for r in results),
    )


def print_table(figures: list[Figures]) -> None:
    log("")
    log(HEADER)
    for f in figures:
        size = f"{f.size:,} {f.step.unit}"
        function = f"{f.step.function.name} {f.step.function.memory_mb}"
        log(
            f"{f.step.name:<14}{size:>16}{f.peak_mib:>10.0f}{f.fixed_mib:>11.0f}{f.seconds:>9.1f}"
            f"{f.bytes_per_unit:>9.0f}  {function}"
        )
    log("")
    log("Largest size within Lambda's limits (linear; the fixed part as measured here, so at this index size):")
    log("  a bound, not a forecast: what a step holds in bounded windows (Prepare's listing and staged parts,")
    log("  Commit's merge) is charged to its size here, and only a run at a second size shows it flat")
    log(f"{'step':<14}{'unit':>8}{'at MemorySize':>16}{'at 10,240 MB':>16}{'in 900 s':>16}  note")
    for f in figures:
        memory, seconds = (n * f.step.partitions for n in f.largest(f.step.function.memory_mb))
        most = f.largest(LAMBDA_MAX_MB)[0] * f.step.partitions
        log(f"{f.step.name:<14}{f.step.unit:>8}{memory:>16,}{most:>16,}{seconds:>16,}  {f.step.note}")
    for f in figures:
        if f.step_peak_mib:
            log(
                f"{f.step.name}: {f.step_peak_mib:,.0f} MiB at most of its own "
                f"(the peak RSS since its fixed part, whose loads peak above what they keep)"
            )
    start = next((f for f in figures if f.step.name == "worker-start"), None)
    if start is None:
        return
    # Of a worker's start-up only the filter grows with the chunks: a shard and the catalog's entries stay about
    # the same size as shards are added, so the peak grows by the filter's bytes and the time (pessimistically) by
    # all of what the start-up took beyond its fixed part.
    grown = TARGET_CHUNKS - start.size
    log("")
    log(
        f"worker start-up on the compacted vault at {TARGET_CHUNKS:,} chunks (from {start.size:,}; the filter "
        f"{start.held_bytes_per_unit:.1f} B/chunk): {start.peak_mib + start.held_bytes_per_unit * grown / 2**20:,.0f}"
        f" MiB, {start.fixed_seconds + (start.seconds - start.fixed_seconds) * TARGET_CHUNKS / start.size:,.1f} s"
        " at most (issue 11's target: 256 MiB, 10 s, 40 bytes per chunk)"
    )
    log(
        "  the index table (--index-chunks) measures it at its sizes directly, beside the whole index that a vault "
        "never compacted loads (maintenance compacts daily; a CLI backup past 32 MiB of index outside the generation)"
    )
    sizes = sorted({f.step.function.memory_mb for f in figures})
    per_chunk = max(start.held_bytes_per_unit, 1e-9)
    reach = ", ".join(f"{mb} MB: {int((mb * 10**6 - start.peak_mib * 2**20) / per_chunk):,}" for mb in sizes)
    log(f"chunks whose filter fits beside the rest of a worker's start-up: {reach}")


@dataclass(frozen=True)
class IndexFigures:
    """Medians of a worker's index start-up on an index-only vault of ``chunks`` chunks."""

    chunks: int
    seconds: float
    cpu_seconds: float
    peak_mib: float
    baseline_mib: float
    bytes_per_chunk: float
    sharded: IndexFigures | None = None
    compact_seconds: float = 0.0
    compact_peak_mib: float = 0.0
    filter_seconds: float = 0.0
    shards: int = 0
    day2: dict[str, float] | None = None


def _start_figures(chunks: int, results: list[StepResult]) -> IndexFigures:
    return IndexFigures(
        chunks=chunks,
        seconds=statistics.median(r.report["load_seconds"] for r in results),
        cpu_seconds=statistics.median(r.report["cpu_seconds"] for r in results),
        peak_mib=statistics.median(r.peak_rss_mib for r in results),
        baseline_mib=statistics.median(r.report["fixed_rss_mib"] for r in results),
        bytes_per_chunk=statistics.median(r.report["index_bytes_per_chunk"] for r in results),
    )


def measure_index(chunks: int, scratch: Path, runs: int) -> IndexFigures:
    """Generate an index-only vault of ``chunks`` chunks, then load its whole index ``runs`` times, each in a fresh
    process (a worker's cold start); compact it, and start a worker on the sharded generation ``runs`` times; then
    count the shard GETs of a synthetic day-2 GiB."""
    vault = scratch / f"index-{chunks}"
    log(f"index of {chunks:,} chunks: generating")
    run_step("generate-index", vault, chunks)
    whole = _start_figures(chunks, [run_step("index-start", vault, chunks) for _ in range(runs)])
    log(f"index of {chunks:,} chunks: compacting")
    compacted = run_step("compact", vault, chunks)
    sharded = _start_figures(chunks, [run_step("sharded-start", vault, chunks) for _ in range(runs)])
    day2 = run_step("day2", vault, chunks).report
    shutil.rmtree(vault)
    return dataclasses.replace(
        whole,
        sharded=sharded,
        compact_seconds=compacted.report["seconds"],
        compact_peak_mib=compacted.peak_rss_mib,
        filter_seconds=compacted.report["filter_seconds"],
        shards=compacted.report["shards"],
        day2=day2,
    )


def print_index_table(figures: list[IndexFigures]) -> None:
    log("")
    log("Worker index start-up, the whole compact index (issue 11's target at 30,000,000 chunks: 256 MiB, 10 s;")
    log("at most 40 bytes per chunk wherever a whole index is held):")
    log(
        f"{'chunks':>12}{'load s':>9}{'cpu s':>8}{'peak MiB':>10}{'index MiB':>11}"
        f"{'held B/chunk':>14}{'peak B/chunk':>14}"
    )
    for f in figures:
        _index_row(f.chunks, f)
    log("")
    log("Worker index start-up on a compacted vault (catalog, filter, no recent index objects; held = the filter):")
    for f in figures:
        if f.sharded is not None:
            _index_row(f.chunks, f.sharded)
    log("")
    log(f"{'chunks':>12}{'shards':>8}{'compact s':>11}{'compact MiB':>13}{'B/chunk':>9}{'filter s':>10}")
    for f in figures:
        grown = (f.compact_peak_mib - f.baseline_mib) * 2**20 / f.chunks
        log(
            f"{f.chunks:>12,}{f.shards:>8,}{f.compact_seconds:>11.1f}{f.compact_peak_mib:>13.0f}{grown:>9.1f}"
            f"{f.filter_seconds:>10.1f}"
        )
    log("")
    log("Shard GETs of a synthetic day-2 GiB (80% of the chunks their parent entries', 2% stored elsewhere):")
    log(f"{'chunks':>12}{'GETs/GiB hint':>15}{'MiB':>7}{'GETs/GiB no hint':>18}{'MiB':>7}")
    for f in figures:
        if f.day2 is not None:
            d = f.day2
            log(
                f"{f.chunks:>12,}{d['hint_gets_per_gib']:>15,}{d['hint_mib_per_gib']:>7.0f}"
                f"{d['no_hint_gets_per_gib']:>18,}{d['no_hint_mib_per_gib']:>7.0f}"
            )


def _index_row(chunks: int, f: IndexFigures) -> None:
    grown = (f.peak_mib - f.baseline_mib) * 2**20 / chunks
    log(
        f"{chunks:>12,}{f.seconds:>9.1f}{f.cpu_seconds:>8.1f}{f.peak_mib:>10.0f}"
        f"{f.bytes_per_chunk * chunks / 2**20:>11.0f}{f.bytes_per_chunk:>14.1f}{grown:>14.1f}"
    )


CLI_TARGET_MIB = 300  # issue 11: a second backup of a million small files within 300 MiB of peak RSS
CLI_FILES_PER_DIR = 1000
LOAD_INDEX = (
    "import json, sys; from vaultline.repository.vault import Vault; "
    "print(json.dumps({'chunks': len(Vault.open(sys.argv[1]).index)}))"
)


def measure_cli_backup(files: int, scratch: Path) -> None:
    """Peak RSS and time of the ``vaultline`` CLI process backing up a directory of ``files`` small files (each its
    own chunk, 1,000 per directory) into a local vault: a first backup, then a second with nothing changed (every
    file carried over from the parent). Beside them, what is not the backup's own: the CLI listing the vault's
    recovery points (the interpreter and the engine), and a process holding the vault's master index (one entry
    per file's chunk, which every backup loads first)."""
    source, vault = scratch / "cli-source", scratch / "cli-vault"
    log(f"cli backup: writing {files:,} small files")
    for number in range(files):
        directory = source / f"d{number // CLI_FILES_PER_DIR:05d}"
        if number % CLI_FILES_PER_DIR == 0:
            directory.mkdir(parents=True)
        (directory / f"f{number:07d}.txt").write_bytes(f"small file {number}\n".encode())
    cli = [sys.executable, "-m", "vaultline", "--vault", str(vault)]
    run_measured([*cli, "init"])
    baseline = run_measured([*cli, "list", "--json"])
    runs = []
    for label in ("first", "second"):
        log(f"cli backup: {label} backup")
        result = run_measured([*cli, "backup", str(source), "--json"])
        runs.append((label, result, json.loads(result.stdout)))
    index = run_measured([sys.executable, "-c", LOAD_INDEX, str(vault)])
    log("")
    log(
        f"CLI backup of {files:,} small files (baseline: the CLI listing the vault, {baseline.peak_rss_mib:.0f} MiB; "
        f"a process holding the index of {index.report['chunks']:,} chunks, {index.peak_rss_mib:.0f} MiB)"
    )
    log(f"{'backup':<10}{'peak MiB':>10}{'seconds':>9}{'B/file':>9}{'read':>10}{'unchanged':>11}")
    for label, result, doc in runs:
        per_file = (result.peak_rss_mib - baseline.peak_rss_mib) * 2**20 / files
        log(
            f"{label:<10}{result.peak_rss_mib:>10.0f}{result.seconds:>9.1f}{per_file:>9.0f}"
            f"{doc['objects_read']:>10,}{doc['objects_unchanged']:>11,}"
        )
    second = runs[-1][1].peak_rss_mib
    verdict = "within" if second <= CLI_TARGET_MIB else "over"
    log(
        f"second backup: {second:.0f} MiB, {verdict} issue 11's {CLI_TARGET_MIB} MiB (at 1,000,000 files); "
        f"beyond the index's process: {second - index.peak_rss_mib:.0f} MiB"
    )


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    parent = args.work_dir or BENCH_DIR / ".work"
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="scale-", dir=parent) as scratch:
        vault = Path(scratch) / "vault"
        log(f"generating a vault: {args.objects:,} objects, {args.chunks:,} chunks")
        generated = run_step("generate", vault, args.objects, args.chunks)
        # The listing and the entries are generated as streams: this peak stays flat whatever --objects says.
        log(
            f"  {generated.seconds:.1f} s, {generated.report['packs']:,} packs, "
            f"peak RSS {generated.peak_rss_mib:.0f} MiB"
        )
        figures = []
        selected = [step for step in STEPS if not args.steps or step.name in args.steps]
        # SHARDED_STEPS (contiguous in STEPS) run as after Maintenance's Compact (on a sharded index); the other
        # steps on the vault as generated, which the index's retirement restores.
        sharded = [step for step in selected if step.name in SHARDED_STEPS]
        for step in selected:
            if sharded and step is sharded[0]:
                run_step("compact-vault", vault, args.objects, args.chunks)
            if step.name == "forget":
                run_step("add-points", vault, args.objects, args.chunks, args.points)
            if step.name == "prune-mark":
                run_step("prune-start", vault, args.objects, args.chunks)
            log(f"{step.name}: {args.runs} run(s)")
            figures.append(measure(step, vault, args))
            if step.name == "prune-decide":
                run_step("prune-abort", vault, args.objects, args.chunks)
            if sharded and step is sharded[-1]:
                run_step("uncompact-vault", vault, args.objects, args.chunks)
        print_table(figures)
        if args.index_chunks:
            print_index_table([measure_index(chunks, Path(scratch), args.runs) for chunks in args.index_chunks])
    if args.cli_files:
        with tempfile.TemporaryDirectory(prefix="scale-cli-", dir=parent) as scratch:
            measure_cli_backup(args.cli_files, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
