"""`make demo`: the real stack on the embedded AWS, end to end, with a short report.

Synthesizes the CDK app, deploys the template into moto's server on 127.0.0.1, fills a sample bucket, fires the
plan's schedule as EventBridge Scheduler would, follows the backup state machine, restores through the restore
state machine into a new bucket, verifies every object bit for bit with its metadata, then changes a few objects
and runs the plan again to show the incremental backup. The plan's second source, a DynamoDB table, is backed up by
its own schedule through the backup state machine's segment map and restored through the restore state machine into
a new table, compared item for item.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from vaultline.aws import client
from vaultline.cli.stack import find_stack, follow, start
from vaultline.operations.check import check_vault
from vaultline.repository.vault import Vault
from vaultline.sources.s3 import parse_s3_url
from vaultline_dev.embedded import EmbeddedAws, deploy_template
from vaultline_dev.embedded.deploy import fire_schedule, register_stack
from vaultline_dev.embedded.synth import synthesize
from vaultline_dev.sample_tables import create_keyed_table, put_items

PROJECT = Path(__file__).resolve().parent.parent
STACK = "Vaultline"
PLAN = "demo"
RESTORE_BUCKET = "vaultline-demo-restore"
RESTORE_TABLE = "vaultline-demo-table-restored"
# `make demo` is often piped or logged: rich would fold the report into 80 columns there; give it room instead.
console = Console(width=None if sys.stdout.isatty() else 160)


def _mib(n: float) -> str:
    return f"{n / 1024 / 1024:.1f} MiB"


def sample_objects(seed: int = 7) -> dict[str, tuple[bytes, dict[str, Any]]]:
    """A few hundred objects: logs, JSON, CSV, gzip, random binary, and one object over 64 MiB."""
    rng = random.Random(seed)
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]
    objects: dict[str, tuple[bytes, dict[str, Any]]] = {}
    for i in range(120):
        lines = [
            f"2026-11-{1 + i % 28:02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z INFO "
            f"{rng.choice(words)} request_id={rng.getrandbits(64):016x} latency_ms={rng.randrange(900)}"
            for _ in range(rng.randrange(50, 400))
        ]
        objects[f"logs/app-{i:03d}.log"] = ("\n".join(lines).encode(), {"ContentType": "text/plain"})
    for i in range(100):
        items = [
            {"Item": {"pk": {"S": f"user#{rng.randrange(10**6)}"}, "score": {"N": str(rng.random())}}}
            for _ in range(rng.randrange(20, 200))
        ]
        body = "\n".join(json.dumps(item) for item in items).encode()
        objects[f"exports/table/part-{i:03d}.json"] = (
            body,
            {"ContentType": "application/json", "Metadata": {"source": "ddb-export", "part": str(i)}},
        )
    for i in range(40):
        rows = "\n".join(f"{rng.randrange(10**9)},{rng.choice(words)},{rng.random():.6f}" for _ in range(500))
        objects[f"reports/2026/report-{i:02d}.csv"] = (rows.encode(), {"ContentType": "text/csv"})
    for i in range(20):
        objects[f"archive/bundle-{i:02d}.gz"] = (
            gzip.compress(rng.randbytes(20_000) * 3),
            {"ContentType": "application/gzip", "ContentEncoding": "gzip", "Tagging": "tier=cold&team=data"},
        )
        objects[f"media/blob-{i:02d}.bin"] = (rng.randbytes(rng.randrange(1, 300_000)), {})
    objects["media/empty.dat"] = (b"", {"CacheControl": "no-cache"})
    # Over 64 MiB, so it is cut into content-defined chunks and restored by multipart upload.
    block = rng.randbytes(1 << 20)
    objects["big/disk-image.raw"] = (b"".join(block[i % 7 * 4096 :] + block[: i % 7 * 4096] for i in range(66)), {})
    return objects


def sample_items(n: int = 400, seed: int = 11) -> list[dict[str, Any]]:
    """Table items of mixed types in DynamoDB JSON: strings, exact decimals, binary, sets, lists, maps, nulls."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        item: dict[str, Any] = {
            "customer": {"S": f"customer#{i % 50:03d}"},
            "order": {"N": str(1000 + i)},
            "total": {"N": f"{rng.randrange(10**6)}.{rng.randrange(10**12):012d}"},
            "paid": {"BOOL": rng.random() < 0.8},
            "receipt": {"B": rng.randbytes(rng.randrange(1, 64))},
            "lines": {"L": [{"M": {"sku": {"S": f"sku-{rng.randrange(999)}"}, "qty": {"N": "2"}}}]},
        }
        if i % 3 == 0:
            item["labels"] = {"SS": sorted({f"l{rng.randrange(9)}", "all"})}
            item["weights"] = {"NS": sorted({str(rng.randrange(100)), "0.5"})}
        if i % 7 == 0:
            item["note"] = {"NULL": True}
        items.append(item)
    return items


def fill_table(name: str, items: list[dict[str, Any]]) -> None:
    ddb = client("dynamodb")
    create_keyed_table(ddb, name, ("customer", "S"), ("order", "N"), tags={"owner": "platform"})
    put_items(ddb, name, items)


def table_items(name: str) -> dict[str, Any]:
    """Every item of a table by its key, sets in a stable order, for comparison."""
    ddb = client("dynamodb")
    found: dict[str, Any] = {}
    args: dict[str, Any] = {"TableName": name}
    while True:
        page = ddb.scan(**args)
        for item in page["Items"]:
            normal = {
                k: ({t: sorted(v) for t, v in value.items()} if "SS" in value or "NS" in value else value)
                for k, value in item.items()
            }
            found[json.dumps([item["customer"], item["order"]], sort_keys=True)] = normal
        if "LastEvaluatedKey" not in page:
            return found
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def schedule_for(schedules: list[str], url: str) -> str:
    """The schedule (one per plan source) whose input backs up ``url``."""
    for name in schedules:
        target = client("scheduler").get_schedule(Name=name)["Target"]
        if json.loads(target.get("Input", "{}")).get("source", {}).get("url") == url:
            return name
    raise LookupError(f"no schedule backs up {url}")


def fill_bucket(bucket: str, objects: dict[str, tuple[bytes, dict[str, Any]]]) -> None:
    s3 = client("s3")
    for key, (body, extra) in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)


def verify_restore(source: str, target: str, keys: list[str]) -> list[str]:
    """Compare every object's bytes, content headers, user metadata and tags; return the differences."""
    s3 = client("s3")
    problems = []
    for key in keys:
        a = s3.get_object(Bucket=source, Key=key)
        b = s3.get_object(Bucket=target, Key=key)
        if hashlib.sha256(a["Body"].read()).digest() != hashlib.sha256(b["Body"].read()).digest():
            problems.append(f"{key}: bytes differ")
        for field in ("ContentType", "ContentEncoding", "CacheControl", "Metadata"):
            if a.get(field) != b.get(field):
                problems.append(f"{key}: {field} {a.get(field)!r} != {b.get(field)!r}")
        tags_a = s3.get_object_tagging(Bucket=source, Key=key)["TagSet"]
        tags_b = s3.get_object_tagging(Bucket=target, Key=key)["TagSet"]
        if sorted(map(str, tags_a)) != sorted(map(str, tags_b)):
            problems.append(f"{key}: tags differ")
    return problems


class ExecutionRow(BaseModel):
    """One state-machine execution as the Step Functions console lists it."""

    name: str
    state_machine: str
    status: str
    map_items_succeeded: int | None
    map_items_failed: int | None
    seconds: float | None


def execution_rows(state_machine_arns: list[str]) -> list[ExecutionRow]:
    """The executions of these state machines, oldest first, with their Distributed Map item counts.

    Read as the console reads them: ListExecutions, DescribeExecution, ListMapRuns and DescribeMapRun.
    """
    sfn = client("stepfunctions")
    rows: list[tuple[Any, ExecutionRow]] = []
    for machine in state_machine_arns:
        machine_name = machine.rsplit(":", 1)[-1]
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
            for listed in page["executions"]:
                execution = sfn.describe_execution(executionArn=listed["executionArn"])
                runs = sfn.list_map_runs(executionArn=listed["executionArn"])["mapRuns"]
                counts = [sfn.describe_map_run(mapRunArn=r["mapRunArn"])["itemCounts"] for r in runs]
                stopped = execution.get("stopDate")
                rows.append(
                    (
                        execution["startDate"],
                        ExecutionRow(
                            name=execution["name"],
                            state_machine=machine_name,
                            status=execution["status"],
                            map_items_succeeded=sum(c["succeeded"] for c in counts) if counts else None,
                            map_items_failed=sum(c["failed"] + c["timedOut"] + c["aborted"] for c in counts)
                            if counts
                            else None,
                            seconds=(stopped - execution["startDate"]).total_seconds() if stopped else None,
                        ),
                    )
                )
    return [row for _, row in sorted(rows, key=lambda pair: pair[0])]


def executions_table(rows: list[ExecutionRow]) -> Table:
    """The executions as a table: name, state machine, status, map items succeeded and failed, duration."""
    table = Table(title="executions")
    # Execution and state-machine names are long (a schedule name and a UUID): fold them rather than cut them.
    table.add_column("execution", overflow="fold")
    table.add_column("state machine", overflow="fold")
    for column in ("status", "map items succeeded", "map items failed", "duration"):
        table.add_column(column, no_wrap=True)
    for row in rows:
        status = {"SUCCEEDED": "[green]SUCCEEDED[/]", "FAILED": "[red]FAILED[/]"}.get(row.status, row.status)
        table.add_row(
            row.name,
            row.state_machine,
            status,
            "-" if row.map_items_succeeded is None else str(row.map_items_succeeded),
            "-" if row.map_items_failed is None else str(row.map_items_failed),
            "-" if row.seconds is None else f"{row.seconds:.1f} s",
        )
    return table


def run_plan(backup_state_machine: str, payload: dict[str, Any] | None, schedule: str | None) -> dict[str, Any]:
    execution = fire_schedule(schedule) if schedule else start(backup_state_machine, payload or {})
    output = follow(execution, poll_seconds=0.2)
    committed: dict[str, Any] = output["committed"]
    return committed


def main() -> int:
    clock = time.monotonic()
    console.print("[bold]Vaultline demo[/]: synthesizing the CDK app ...")
    template = synthesize(PROJECT, STACK)
    with EmbeddedAws(PROJECT / "functions", quiet=True) as aws:
        console.print(f"embedded AWS on {aws.endpoint}; deploying the synthesized stack ...")
        deployed = deploy_template(template)
        register_stack(STACK, deployed.outputs)
        stack = find_stack(STACK)
        payload = stack.plans[PLAN][0]
        source_bucket, _ = parse_s3_url(payload["source"]["url"])
        schedule = schedule_for(deployed.schedules, payload["source"]["url"])
        table_url = next(p["source"]["url"] for p in stack.plans[PLAN] if p["source"]["type"] == "dynamodb")
        table = table_url[len("dynamodb://") :]
        table_schedule = schedule_for(deployed.schedules, table_url)

        objects = sample_objects()
        client("s3").create_bucket(Bucket=source_bucket)
        fill_bucket(source_bucket, objects)
        total = sum(len(body) for body, _ in objects.values())
        console.print(f"filled s3://{source_bucket} with {len(objects)} objects ({_mib(total)})")

        console.print(f"firing schedule {schedule} (as EventBridge Scheduler would) ...")
        first = run_plan(stack.backup_state_machine, None, schedule)
        rp = first["recovery_point"]

        console.print(f"restoring {rp} through the restore state machine into s3://{RESTORE_BUCKET} ...")
        client("s3").create_bucket(Bucket=RESTORE_BUCKET)
        restore_clock = time.monotonic()
        restored = follow(
            start(
                stack.restore_state_machine,
                {"recovery_point": rp, "target": f"s3://{RESTORE_BUCKET}", "worker_concurrency": 8},
            ),
            poll_seconds=0.2,
        )["finished"]
        restore_seconds = time.monotonic() - restore_clock
        keys = [k for k in objects if not any(k.endswith(x.strip("*")) for x in payload["source"].get("exclude", []))]
        problems = verify_restore(source_bucket, RESTORE_BUCKET, keys)

        s3 = client("s3")
        s3.put_object(Bucket=source_bucket, Key="logs/app-000.log", Body=objects["logs/app-000.log"][0] + b"\nnew line")
        s3.put_object(Bucket=source_bucket, Key="reports/2026/report-41.csv", Body=b"id,name\n1,new\n")
        s3.delete_object(Bucket=source_bucket, Key="media/blob-00.bin")
        big = bytearray(objects["big/disk-image.raw"][0])
        big[30_000_000:30_000_100] = b"x" * 100
        s3.put_object(Bucket=source_bucket, Key="big/disk-image.raw", Body=bytes(big))
        console.print("changed 2 objects (one is the 66 MiB image), added 1, deleted 1; running the plan again ...")
        second = run_plan(stack.backup_state_machine, payload, None)

        items = sample_items()
        fill_table(table, items)
        console.print(
            f"filled {table_url} with {len(items)} items of mixed types; firing schedule {table_schedule} ..."
        )
        table_clock = time.monotonic()
        table_backup = run_plan(stack.backup_state_machine, None, table_schedule)
        table_backup_seconds = time.monotonic() - table_clock
        console.print(f"restoring {table_backup['recovery_point']} into dynamodb://{RESTORE_TABLE} ...")
        table_clock = time.monotonic()
        table_restored = follow(
            start(
                stack.restore_state_machine,
                {
                    "recovery_point": table_backup["recovery_point"],
                    "target": f"dynamodb://{RESTORE_TABLE}",
                    "worker_concurrency": 8,
                },
            ),
            poll_seconds=0.2,
        )["finished"]
        table_restore_seconds = time.monotonic() - table_clock
        original, copy = table_items(table), table_items(RESTORE_TABLE)
        table_equal = len(original) == len(items) and original == copy

        report = check_vault(Vault.open(stack.vault_url), read_data=True)
        executions = execution_rows([stack.backup_state_machine, stack.restore_state_machine])

    s1, s2 = first["stats"], second["stats"]
    table = Table("", "first backup", "incremental")
    table.add_row("recovery point", rp, second["recovery_point"])
    table.add_row("objects", str(s1["objects"]), str(s2["objects"]))
    table.add_row("objects read", str(s1["objects_read"]), str(s2["objects_read"]))
    table.add_row("source bytes", _mib(s1["bytes"]), _mib(s2["bytes"]))
    table.add_row("stored bytes", _mib(s1["bytes_stored"]), _mib(s2["bytes_stored"]))
    table.add_row("new chunks", str(s1["new_chunks"]), str(s2["new_chunks"]))
    table.add_row("seconds", f"{s1['seconds']:.1f}", f"{s2['seconds']:.1f}")
    console.print(table)
    ratio = s1["bytes"] / max(1, s1["bytes_stored"])
    console.print(
        f"restore: {restored['objects']} objects, {_mib(restored['bytes'])} in {restore_seconds:.1f} s; "
        f"verified {len(keys)} objects bit for bit with metadata and tags: "
        + ("[green]all equal[/]" if not problems else f"[red]{len(problems)} differences[/]")
    )
    console.print(
        f"space: source / stored = {ratio:.2f}x (dedup + zstd); "
        f"check --read-data: {report.packs_read} packs, {'no errors' if report.ok else report.errors[:3]}"
    )
    console.print(
        f"table: {table_url} -> {table_backup['recovery_point']} "
        f"({table_backup['stats']['objects']} items, {_mib(table_backup['stats']['bytes'])} as DynamoDB JSON, "
        f"{table_backup_seconds:.1f} s); restored {table_restored['items']} items into "
        f"dynamodb://{RESTORE_TABLE} in {table_restore_seconds:.1f} s: "
        + ("[green]equal item for item[/]" if table_equal else f"[red]{len(copy)} of {len(original)} items, differ[/]")
    )
    console.print(executions_table(executions))
    console.print(f"demo finished in {time.monotonic() - clock:.0f} s")
    for problem in problems[:10]:
        console.print(f"[red]{problem}[/]")
    ok = not problems and report.ok and s2["objects_read"] < s2["objects"] and table_equal
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
