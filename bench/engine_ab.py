"""A/B of two Vaultline trees on the engine bench's corpus: first backup and restore, interleaved, with medians.

Usage: ``engine_ab.py --base DIR [--size-mib 256] [--runs 5]``, where ``DIR`` holds another checkout of the project
(``git archive <commit> | tar -x -C DIR``). Each run backs up the same corpus into a fresh vault with each tree, then
restores it with each, the order of the two trees swapped from one run to the next, and measures raw zstd-3 on
every core (the bench's reference) and, when restic is on PATH, restic's restore in the same run. Every step runs in
its own process (this tree's ``engine_steps.py``, with the tree under test first on ``PYTHONPATH``), so its wall
time, CPU time and peak RSS are its own. One runner for both trees: its backup and restore steps run the CLI's
``main()``, which both trees have, so both are measured as a user runs them. On a machine shared with other work,
read the per-run ratios (each pair measured side by side) and the CPU seconds, not the absolute speeds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import corpus
import restic_bench
from engine_bench import MB, verify_restore, zstd_reference
from measure import BENCH_DIR, StepResult, run_measured


@dataclass
class Tree:
    """One checkout under test: its name in the report and its root."""

    name: str
    root: Path
    figures: dict[str, list[float]] = field(default_factory=dict)

    def step(self, *args: str) -> StepResult:
        # Bytecode is cached for both trees alike: a user's install has its .pyc files.
        env = {"PYTHONPATH": str(self.root), "PYTHONDONTWRITEBYTECODE": ""}
        return run_measured([sys.executable, str(BENCH_DIR / "engine_steps.py"), *args], env=env)

    def record(self, figure: str, value: float) -> None:
        self.figures.setdefault(figure, []).append(value)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="root of the tree to compare against")
    parser.add_argument("--size-mib", type=int, default=256, help="corpus size in MiB (default %(default)s)")
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs (default %(default)s)")
    parser.add_argument("--seed", type=int, default=20261128, help="corpus seed (default %(default)s)")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work" / "ab", help="scratch directory")
    parser.add_argument("--no-restic", action="store_true", help="skip restic's restore even if it is on PATH")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, flush=True)


def backup_and_restore(tree: Tree, work: Path, source: Path, source_bytes: int, zstd_all: float) -> None:
    vault, target = work / f"vault-{tree.name}", work / f"restore-{tree.name}"
    shutil.rmtree(vault, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    backup = tree.step("init-backup", str(vault), str(source))
    restore = tree.step("restore", str(vault), str(source), str(target))
    engine_backup = float(backup.report.get("seconds", backup.seconds))
    tree.record("backup MB/s", source_bytes / MB / backup.seconds)
    tree.record("backup / zstd-3 all cores", source_bytes / MB / backup.seconds / zstd_all)
    tree.record("backup engine MB/s", source_bytes / MB / engine_backup)
    tree.record("backup CPU s", backup.cpu_seconds)
    tree.record("backup peak RSS MiB", backup.peak_rss_mib)
    tree.record("restore MB/s", source_bytes / MB / restore.seconds)
    tree.record("restore engine MB/s", source_bytes / MB / float(restore.report.get("seconds", restore.seconds)))
    tree.record("restore CPU s", restore.cpu_seconds)
    tree.record("restore peak RSS MiB", restore.peak_rss_mib)
    tree.record("restore s", restore.seconds)
    if not verify_restore(source, target):
        raise SystemExit(f"{tree.name}: the restore differs from the corpus")
    log(
        f"  {tree.name:>5}: backup {backup.seconds:.2f} s (engine {engine_backup:.2f} s, "
        f"CPU {backup.cpu_seconds:.2f} s, {backup.peak_rss_mib:.0f} MiB), "
        f"restore {restore.seconds:.2f} s (CPU {restore.cpu_seconds:.2f} s, {restore.peak_rss_mib:.0f} MiB)"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    work = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    source = work / "corpus"
    specs = corpus.plan_corpus(args.size_mib * 1024 * 1024, args.seed)
    corpus.generate(source, specs)
    _, source_bytes = corpus.tree_size(source)
    trees = [Tree("base", args.base.resolve()), Tree("new", BENCH_DIR.parent)]
    restic = None
    if not args.no_restic and restic_bench.available():
        restic = restic_bench.Restic(work / "restic-repo", work / "restic-cache")
        restic.init()
        restic.backup(source)
    restic_restores: list[float] = []
    loads: list[float] = []
    for number in range(args.runs):
        loads.append(os.getloadavg()[0])
        zstd_all, _, _ = zstd_reference(source, os.cpu_count() or 1)
        log(f"run {number + 1}/{args.runs} (load {loads[-1]:.1f}; zstd-3 on every core {zstd_all:.0f} MB/s)")
        order = trees if number % 2 == 0 else trees[::-1]
        for tree in order:
            backup_and_restore(tree, work, source, source_bytes, zstd_all)
        if restic:
            step = restic.restore(work / "restore-restic")
            restic_restores.append(step.seconds)
            for tree in trees:
                tree.record("restore / restic's speed", step.seconds / tree.figures["restore s"][-1])
            log(f"  restic restore {step.seconds:.2f} s")
    log(f"\n{source_bytes / MB:.0f} MB corpus, {args.runs} interleaved runs, load average {loads}")
    log(f"{'median':<28}{'base':>10}{'new':>10}{'new/base':>10}")
    for figure in trees[0].figures:
        base, new = (statistics.median(t.figures[figure]) for t in trees)
        log(f"{figure:<28}{base:>10.2f}{new:>10.2f}{new / base:>9.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
