"""DynamoDB backup through the real backup state machine on the embedded AWS, with request and transition counts.

Synthesizes the CDK app, deploys it into moto's server in this process, fills a table straight through moto's
DynamoDB backend (no HTTP: 100,000 items in seconds rather than 4,000 BatchWriteItem calls), then runs one backup of
it through the backup state machine with the demo plan's dynamodb source input. Prints items, raw DynamoDB-JSON bytes,
vault bytes added, seconds, items/s, Lambda invocations by function, Step Functions state transitions, S3 requests
by operation, DynamoDB requests (Scan pages) and read capacity, each also per GiB of table data (raw DynamoDB JSON).

    .venv/bin/python bench/dynamodb_workflow_bench.py [--items 100000] [--quick]

Counters come from bench/instrument.py (the same hooks as bench/workflow_bench.py). GiB are 2^30 bytes.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from instrument import S3_GROUPS, s3_group
from moto.dynamodb.models import dynamodb_backends
from workflow_bench import (
    GIB,
    MIB,
    PROJECT,
    Instruments,
    Phase,
    _short,
    bench_client,
    deploy,
    log,
    run_phase,
    synthesized_template,
    table,
    vault_usage,
)

from vaultline.cli.stack import StackInfo
from vaultline_dev.embedded import EmbeddedAws
from vaultline_dev.embedded.deploy import ACCOUNT, REGION
from vaultline_dev.sample_tables import create_keyed_table

TABLE = "vaultline-bench-orders"
SCAN_PAGE_BYTES = 1024 * 1024  # a Scan page stops at 1 MB of items
RCU_BYTES = 4096  # one read unit reads 4 KB strongly consistent, or 8 KB eventually consistent


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000, help="items in the table (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="10,000 items: checks the script end to end")
    parser.add_argument("--seed", type=int, default=20261128, help="item seed (default %(default)s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.items = 10_000
    return args


def make_item(rng: random.Random, i: int) -> dict[str, Any]:
    """An order-like item in DynamoDB JSON (binary as base64, as on the wire): ~250 bytes of mixed types."""
    item: dict[str, Any] = {
        "customer": {"S": f"customer#{i % 5000:05d}"},
        "order": {"N": str(1_000_000 + i)},
        "total": {"N": f"{rng.randrange(10**6)}.{rng.randrange(100):02d}"},
        "paid": {"BOOL": rng.random() < 0.8},
        "receipt": {"B": base64.b64encode(rng.randbytes(rng.randrange(8, 48))).decode()},
        "note": {"S": f"order {i} placed via {rng.choice(['web', 'app', 'store', 'phone'])}"},
        "lines": {
            "L": [
                {"M": {"sku": {"S": f"sku-{rng.randrange(9999):04d}"}, "qty": {"N": str(rng.randrange(1, 9))}}}
                for _ in range(rng.randrange(1, 4))
            ]
        },
    }
    if i % 3 == 0:
        item["labels"] = {"SS": sorted({f"l{rng.randrange(9)}", "all"})}
    if i % 7 == 0:
        item["gift"] = {"NULL": True}
    return item


def ddb_size(value: Any) -> int:
    """Approximate DynamoDB item size (attribute names + values, as DynamoDB bills reads), in bytes."""
    if isinstance(value, dict) and len(value) == 1:
        ((kind, inner),) = value.items()
        if kind == "S":
            return len(inner.encode())
        if kind == "N":
            return len(inner.lstrip("-").replace(".", "")) // 2 + 1
        if kind == "B":
            return len(base64.b64decode(inner))
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "SS":
            return sum(len(s.encode()) for s in inner)
        if kind == "L":
            return 3 + sum(ddb_size(v) + 1 for v in inner)
        if kind == "M":
            return 3 + sum(len(k.encode()) + ddb_size(v) + 1 for k, v in inner.items())
    return sum(len(k.encode()) + ddb_size(v) for k, v in value.items())


def fill_table(count: int, seed: int) -> tuple[int, int]:
    """Create the table over HTTP (bench client, uncounted), put items through moto's backend; (JSON, item) bytes."""
    create_keyed_table(bench_client("dynamodb"), TABLE, ("customer", "S"), ("order", "N"))
    backend = dynamodb_backends[ACCOUNT][REGION]
    rng = random.Random(seed)
    raw = size = 0
    for i in range(count):
        item = make_item(rng, i)
        backend.put_item(TABLE, item)
        raw += len(json.dumps(item, separators=(",", ":")))
        size += ddb_size(item)
    return raw, size


def table_payload(info: StackInfo) -> dict[str, Any]:
    return next(p for p in info.plans["bench"] if p["source"]["url"] == f"dynamodb://{TABLE}")


def run(args: argparse.Namespace, template: dict[str, Any]) -> None:
    with EmbeddedAws(PROJECT / "functions", quiet=True), ExitStack() as stack:
        instruments = Instruments.installed(stack)
        _, info = deploy(template)
        clock = time.monotonic()
        raw, size = fill_table(args.items, args.seed)
        log(
            f"filled dynamodb://{TABLE} through moto's backend: {args.items:,} items, {raw / MIB:.1f} MiB DynamoDB "
            f"JSON (~{size / MIB:.1f} MiB DynamoDB item size) in {time.monotonic() - clock:.1f} s; backing up ..."
        )
        before = vault_usage(info.vault_bucket).current.bytes
        phase = run_phase("table backup", instruments, info.backup_state_machine, table_payload(info))
        added = vault_usage(info.vault_bucket).current.bytes - before
    report(args.items, raw, size, added, phase)


def report(items: int, raw: int, size: int, added: int, phase: Phase) -> None:
    gib = raw / GIB
    stats = phase.output.get("committed", {}).get("stats", {})
    prepared = phase.output.get("prepared", {})

    def row(name: str, value: float, fmt: str = "{:,.0f}") -> list[str]:
        return [name, fmt.format(value), f"{value / gib:,.1f}"]

    log(
        f"\nBackup of {items:,} items ({prepared.get('mode', '?')} mode, {prepared.get('segments', '?')} segments): "
        f"{phase.seconds:.1f} s, {items / phase.seconds:,.0f} items/s, {raw / MIB / phase.seconds:.2f} MiB/s of "
        f"DynamoDB JSON; committed stats: objects {stats.get('objects')}, bytes {stats.get('bytes')}, "
        f"bytes_stored {stats.get('bytes_stored')}"
    )
    rows = [
        row("items", items),
        row("raw DynamoDB-JSON bytes", raw),
        row("DynamoDB item size (approx.)", size),
        row("vault bytes added", added),
        ["seconds", f"{phase.seconds:.1f}", f"{phase.seconds / gib:,.1f}"],
        ["items/s", f"{items / phase.seconds:,.0f}", "-"],
    ]
    invocations = sum(phase.invocations.values())
    rows.append(row("Lambda invocations", invocations))
    rows += [row(f"  {_short(f)}", n) for f, n in sorted(phase.invocations.items())]
    if phase.errors:
        rows.append(row("  Lambda errors (retried)", sum(phase.errors.values())))
    rows.append(row("state transitions", phase.transitions))
    rows += [row(f"  {s}", n) for s, n in phase.states.most_common()]
    s3 = phase.requests.by_service("s3")
    groups: Counter[str] = Counter()
    for operation, n in s3.items():
        groups[s3_group(operation)] += n
    rows.append(row("S3 requests", sum(s3.values())))
    rows += [row(f"  {g}", groups[g]) for g in S3_GROUPS if groups[g]]
    rows += [row(f"    {op}", n) for op, n in s3.most_common()]
    ddb = phase.requests.by_service("dynamodb")
    pages = ddb.get("Scan", 0)
    rows.append(row("DynamoDB requests", sum(ddb.values())))
    rows += [row(f"  {op}", n) for op, n in ddb.most_common()]
    moto_units = pages * 1.0
    estimate = size / RCU_BYTES / 2 + pages * 0.5  # eventually consistent; each page rounds up to 4 KB
    rows.append(row("read units, moto-reported", moto_units, "{:,.1f}"))
    rows.append(row("read units, estimated for AWS", estimate, "{:,.1f}"))
    others = {f"{s}:{o}": n for (s, o), n in phase.requests.counts.items() if s not in ("s3", "dynamodb")}
    rows += [row(f"other {k}", n) for k, n in sorted(others.items())]
    table(["", "count", "per GiB of DynamoDB JSON"], rows)
    log(
        "  read capacity: moto does not measure it; it answers ReturnConsumedCapacity=TOTAL with a fixed 1.0 unit per "
        "Scan call, whatever the page size, so the moto-reported figure is just the number of Scan pages. The "
        f"estimate is (item bytes / 4 KB) x 0.5 for eventually consistent reads plus half a unit of round-up per "
        f"page (pages stop at {SCAN_PAGE_BYTES // MIB} MB); item bytes are DynamoDB's size rule applied to the items "
        "(attribute names + values), approximated."
    )
    log(
        f"  state transitions: every state entered in the parent and the map's child executions "
        f"[parent history: {phase.parent_states} StateEntered]; Lambda invocations include retried attempts"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    clock = time.monotonic()
    log(f"Vaultline DynamoDB workflow bench: {args.items:,} items; synthesizing the CDK app ...")
    run(args, synthesized_template(clock))
    log(f"DynamoDB workflow bench finished in {time.monotonic() - clock:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
