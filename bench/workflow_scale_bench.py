"""Vaultline workflow scale benchmark (issue 11): the real Backup state machine on the embedded AWS over a bucket
of many small objects, each function run as Lambda runs it (its MemorySize and Timeout enforced).

    .venv/bin/python bench/workflow_scale_bench.py [--objects 200000] [--object-bytes 256] [--once]

The source bucket is filled inside moto's backend (the bench's set-up, not the product's requests: it would take
longer than the backups over HTTP); then a first backup reads every object and a second one, of the unchanged
bucket, carries them all over from its parent. For each run: wall time, S3 requests by API (and the other
services'), Lambda invocations by function, Step Functions state transitions, and each function's peak memory (the
sandboxes' ``Max Memory Used`` of Lambda's REPORT lines, their peak RSS) against its MemorySize. A function over its
MemorySize is killed with ``Runtime.OutOfMemory`` and the run fails, as on AWS.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from workflow_bench import (
    PROJECT,
    SOURCE_BUCKET,
    Instruments,
    Phase,
    backup_payload,
    bench_client,
    deploy,
    lambda_memory,
    log,
    run_phase,
    synthesized_template,
    table,
)

from vaultline_dev.embedded import EmbeddedAws

REPORT_LINE = re.compile(r"Memory Size: (\d+) MB\tMax Memory Used: (\d+) MB")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--objects", type=int, default=200_000, help="objects in the source bucket")
    parser.add_argument("--object-bytes", type=int, default=256, help="bytes of each object (distinct contents)")
    parser.add_argument("--once", action="store_true", help="only the first backup (no unchanged second run)")
    parser.add_argument("--quick", action="store_true", help="2,000 objects: checks the script end to end")
    args = parser.parse_args(argv)
    if args.quick:
        args.objects = 2_000
    return args


def fill_source(objects: int, size: int) -> int:
    """Put ``objects`` objects of ``size`` distinct bytes into the source bucket, straight into moto's backend."""
    bench_client("s3").create_bucket(Bucket=SOURCE_BUCKET)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for number in range(objects):
        stamp = f"object {number:09d} ".encode()
        body = (stamp * (size // len(stamp) + 1))[:size]
        backend.put_object(SOURCE_BUCKET, f"data/{number // 1000:04d}/object-{number:09d}.bin", body)
    return objects * size


@dataclass(frozen=True)
class MemoryUse:
    """A function's peak memory over the sandboxes that ran it, and its configured MemorySize (MB)."""

    function: str
    peak_mb: int
    memory_mb: int
    reports: int


def memory_use(aws: EmbeddedAws, functions: Sequence[str]) -> list[MemoryUse]:
    """Each function's highest ``Max Memory Used`` in its log group so far (a sandbox's peak RSS: a warm sandbox
    keeps the peak of every invocation it served, as Lambda's figure does)."""
    uses = []
    for function in functions:
        reports = [(int(size), int(used)) for size, used in REPORT_LINE.findall(aws.lambdas.logs(function))]
        if reports:
            uses.append(MemoryUse(function, max(u for _, u in reports), reports[0][0], len(reports)))
    return uses


def report_phase(phase: Phase, objects: int, uses: list[MemoryUse]) -> None:
    s3 = phase.requests.by_service("s3")
    log(
        f"\n{phase.name}: {phase.seconds:,.1f} s wall, {objects / phase.seconds:,.0f} objects/s; "
        f"{sum(phase.invocations.values()):,} Lambda invocations, {phase.transitions:,} state transitions "
        f"(parent history {phase.parent_states} StateEntered)"
    )
    stats = phase.output.get("committed", {}).get("stats") or {}
    if stats:
        log(
            "  committed: "
            + ", ".join(f"{k} {v:,}" for k, v in stats.items() if isinstance(v, int) and not isinstance(v, bool))
        )
    log(f"  S3 requests {sum(s3.values()):,}: " + ", ".join(f"{op} {n:,}" for op, n in s3.most_common()))
    others = {f"{s}:{o}": n for (s, o), n in phase.requests.counts.items() if s != "s3"}
    log("  other requests: " + ", ".join(f"{k} {n:,}" for k, n in sorted(others.items())))
    log("  invocations: " + ", ".join(f"{_short(f)} {n:,}" for f, n in phase.invocations.most_common()))
    errors = f"  function errors: {dict(phase.errors)}" if phase.errors else "  function errors: none"
    log(errors)
    log("  states entered: " + ", ".join(f"{s} {n:,}" for s, n in phase.states.most_common()))
    rows = [
        [_short(u.function), f"{u.peak_mb:,}", f"{u.memory_mb:,}", f"{u.peak_mb / u.memory_mb:.0%}", str(u.reports)]
        for u in uses
    ]
    log("  peak memory so far (Max Memory Used of the REPORT lines):")
    table(["function", "peak MB", "MemorySize", "used", "invocations"], rows)


def _short(function: str) -> str:
    name = function.removeprefix("Functions").removeprefix("Vaultline")
    return name[:-8] if len(name) > 8 and name[-8:].isalnum() and name[-8:].upper() == name[-8:] else name


def run(args: argparse.Namespace, template: dict[str, Any]) -> None:
    with EmbeddedAws(PROJECT / "functions", quiet=True) as aws, ExitStack() as stack:
        instruments = Instruments.installed(stack)
        deployed, info = deploy(template)
        memory = lambda_memory(template, deployed)
        clock = time.monotonic()
        nbytes = fill_source(args.objects, args.object_bytes)
        log(
            f"filled s3://{SOURCE_BUCKET}: {args.objects:,} objects, {nbytes / 1e6:,.1f} MB in "
            f"{time.monotonic() - clock:,.0f} s"
        )
        payload = backup_payload(info)
        names = ["first backup"] if args.once else ["first backup", "unchanged backup"]
        for name in names:
            phase = run_phase(name, instruments, info.backup_state_machine, payload)
            report_phase(phase, args.objects, memory_use(aws, sorted(memory)))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    clock = time.monotonic()
    log(f"Vaultline workflow scale bench: {args.objects:,} objects of {args.object_bytes} B; synthesizing ...")
    run(args, synthesized_template(clock))
    log(f"\nworkflow scale bench finished in {time.monotonic() - clock:,.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
