"""What `vaultline copy` costs: throughput and requests per GiB copied, a first copy and a day-2 copy.

Usage: ``python bench/copy_bench.py [MIB] [RUNS]`` (default 128 MiB, 3 runs). In-process moto: a source vault in
us-east-1 under one KMS key, each run a fresh target vault in eu-west-1 under another, both with the default 16 MiB
packs. The data is incompressible (random) files of 1 MiB to 8 MiB; day 2 rewrites 1% of them. Prints the median
of RUNS of: seconds, MiB/s of recovery point data, and API requests per GiB (counted at botocore's
``before-parameter-build``: one per operation, retries not included) by service, operation and key prefix. moto
answers in-process, so the seconds are this process's CPU (reading, verifying, hashing, sealing) and moto's rather
than S3 latency; the request counts are exact.
Last, the peak traced memory of copying 25 and then 100 small recovery points (it must not grow with their number).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from vaultline.aws import client, reset_clients
from vaultline.operations.backup import run_backup
from vaultline.operations.copy import CopyReport, run_copy
from vaultline.repository.manifest import list_recovery_point_ids
from vaultline.repository.vault import Vault
from vaultline.sources import LocalSource
from vaultline.storage import LocalStorage, S3Storage

MiB = 1024 * 1024


REGIONS = (None, "us-east-1", "eu-west-1")  # every region the engine makes clients for here


class Requests:
    """Counts every API call of the engine's shared clients by service, operation and (S3) the key's first path
    component, while installed."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def hook(self, model: Any = None, params: Any = None, **_: Any) -> None:
        key = str((params or {}).get("Key") or (params or {}).get("Prefix") or "")
        where = f" {key.split('/')[0]}/" if key else ""
        self.counts[f"{model.service_model.service_name}:{model.name}{where}"] += 1

    def __enter__(self) -> Requests:
        for region in REGIONS:
            for service in ("s3", "kms"):
                client(service, region).meta.events.register("before-parameter-build", self.hook)
        return self

    def __exit__(self, *_: object) -> None:
        for region in REGIONS:
            for service in ("s3", "kms"):
                client(service, region).meta.events.unregister("before-parameter-build", self.hook)


def make_tree(root: Path, total: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    files: list[Path] = []
    made = 0
    while made < total:
        size = rng.randint(1, 8) * MiB
        path = root / f"f{len(files):04d}.bin"
        path.write_bytes(rng.randbytes(size))
        files.append(path)
        made += size
    return files


def fresh_target(n: int) -> Vault:
    name = f"bench-dst-{n}"
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket=name, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    key = boto3.client("kms", region_name="eu-west-1").create_key()["KeyMetadata"]["Arn"]
    return Vault.init(S3Storage(name), encryption="kms", kms_key_id=key)


def timed_copy(source: Vault, target: Vault, ids: list[str]) -> tuple[float, CopyReport, Counter[str]]:
    with Requests() as requests:
        started, cpu = time.perf_counter(), time.process_time()
        report = run_copy(Vault.open(source.storage), Vault.open(target.storage), ids)
    requests.counts["cpu-ms"] = round((time.process_time() - cpu) * 1000)  # not a request: shown apart
    return time.perf_counter() - started, report, requests.counts


def summary(label: str, gib: float, runs: list[tuple[float, CopyReport, Counter[str]]]) -> None:
    seconds = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[2]["cpu-ms"] for r in runs) / 1000
    total = statistics.median(_requests(r[2]) for r in runs)
    print(f"{label}: {gib * 1024:.0f} MiB of recovery point data in {seconds:.2f} s = {gib * 1024 / seconds:.1f} MiB/s")
    print(f"  CPU: {cpu:.2f} s = {gib * 1024 / cpu:.1f} MiB per CPU-second (all threads)")
    print(f"  requests: {total:.0f} total = {total / gib:.0f} per GiB of recovery point data")
    by_op = runs[len(runs) // 2][2]
    print("  by operation: " + ", ".join(f"{op} {n}" for op, n in sorted(by_op.items()) if op != "cpu-ms"))
    report = runs[len(runs) // 2][1]
    print(
        f"  copied {report.chunks_copied} chunks ({report.bytes_transferred / MiB:.1f} MiB sealed), "
        f"{report.chunks_mapped} mapped unread, {report.range_reads} ranged GETs of {report.bytes_read / MiB:.1f} MiB"
    )


def memory_by_points(root: Path, counts: tuple[int, ...] = (25, 100)) -> None:
    """Peak traced memory of one `copy --all` of N small recovery points into a fresh target: flat in N (the ids
    and the report's lists aside) if nothing is held per recovery point."""
    (root / "small").mkdir()
    source = Vault.init(S3Storage("bench-src", "points"))
    made = 0
    for n in counts:
        while made < n:
            (root / "small" / f"f{made % 7}.txt").write_text(f"version {made}\n" * 50)
            run_backup(source, LocalSource(str(root / "small")))
            made += 1
        target = Vault.init(LocalStorage(root / f"points-{n}"))
        tracemalloc.start()
        report = run_copy(Vault.open(source.storage), target, list_recovery_point_ids(source))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"copy --all of {len(report.copied)} recovery points: peak traced memory {peak / MiB:.1f} MiB")


def _requests(counts: Counter[str]) -> int:
    return sum(n for op, n in counts.items() if op != "cpu-ms")


def main(mib: int, runs: int) -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    reset_clients()
    with mock_aws(), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        files = make_tree(root, mib * MiB, 1)
        boto3.client("s3").create_bucket(Bucket="bench-src")
        key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
        source = Vault.init(S3Storage("bench-src"), encryption="kms", kms_key_id=key)
        day1 = run_backup(source, LocalSource(str(root)))
        rng = random.Random(2)
        for path in rng.sample(files, max(1, len(files) // 100)):
            path.write_bytes(rng.randbytes(path.stat().st_size))
        day2 = run_backup(source, LocalSource(str(root)))
        first, second = [], []
        for n in range(runs):
            target = fresh_target(n)
            first.append(timed_copy(source, target, [day1.id]))
            second.append(timed_copy(source, target, [day2.id]))
        summary("first copy", day1.stats.bytes / 1024**3, first)
        summary("day-2 copy (1% of files rewritten)", day2.stats.bytes / 1024**3, second)
        changed = day2.stats.bytes_read / 1024**3
        total = statistics.median(_requests(r[2]) for r in second)
        print(f"  = {total / changed:.0f} requests per GiB of changed data ({day2.stats.bytes_read / MiB:.0f} MiB)")
        memory_by_points(Path(tmp))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 128, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
