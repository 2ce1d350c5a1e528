"""The S3 backup worker step behind request latency, against raw zstd on the same bytes, in one process.

Runs the backup Worker step (:func:`vaultline.runs.backup_steps.work`, what functions/backup_worker.py calls) in this
process against moto's in-memory S3, with a latency shim in front of it: every S3 request of this process's clients
(GETs of the source, PUTs of packs and results) first sleeps ``--latency-ms`` (30 ms, about S3's first-byte latency
in-region). Each run backs up one batch of a seeded corpus sample (bench/corpus.py: text and JSON logs, some gzip and
random binary) into a fresh vault, with the objects read ahead (the worker as shipped) and one by one (the serial
path, for reference); the reference is zstd-3 on one thread over the same objects, in the same process, measured
between the runs so that the box's load weighs on both. Figures are medians of ``--runs`` runs.

A Lambda function's CPU share grows with its memory (1,769 MB = 1 vCPU): ``--threads 1`` measures the worker with
one seal thread, what a function of at most 1,769 MB can use; the default two is what the bench box (and a function
of 3,538 MB or more) has. docs/performance.md turns both figures into a cost per GB at each memory size.

In-process moto answers each request on the worker's own CPU and under its GIL (about 0.15 s of CPU per 16 MiB
pack PUT: 0.45 s of a 0.5 s Worker step over 48 MiB, by cProfile), which S3 never costs a function. Two ways out:
``--server`` runs moto's server in its own process, over HTTP on 127.0.0.1 (with ``--cpus N``, on the CPUs the
worker is not pinned to), though on a small box its CPU is still the worker's wait; ``--pack-sink MB/S`` stores
packs nowhere, each PUT taking the latency plus its size at that bandwidth (S3's per-connection rate from Lambda
is of the order of 100 MB/s) on no CPU, as S3 does, while the source's GETs and everything else still go to moto.

Each batch's worker opens the vault afresh (its config, index and Object Lock settings), as the handler does for
each event. Where a small batch's time went (cProfile and a request trace, 48 MiB, 30 ms, packs sunk): about half
of a ~1 s step was fixed, a dozen requests one after another and the last pack's upload, which nothing overlaps.
The step now makes its independent requests together and uploads its last pack in pieces side by side
(docs/performance.md, "The step's fixed cost"): about 4 round trips in series and a quarter of that upload
(48 MiB, packs sunk: 1.0 s -> 0.7 s, 0.12x -> 0.19x; 512 MiB: 0.53x -> 0.64x at load 1). What does not grow with
the batch still weighs on 48 MiB (worker 71 MB/s, packs sunk) against 192 MiB (165) and 512 (268): 0.5-0.7 s per
batch, which is why Prepare cuts batches of up to 2,000 objects.

    .venv/bin/python bench/lambda_worker_bench.py [--mib 48] [--runs 5] [--latency-ms 30] [--threads 2]
        [--cpus N] [--server] [--pack-sink MB/S] [--no-serial] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import corpus
import zstandard
from moto import mock_aws

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from vaultline import aws  # noqa: E402
from vaultline.repository import blob_writer  # noqa: E402
from vaultline.repository.vault import Vault  # noqa: E402
from vaultline.runs import backup_steps  # noqa: E402
from vaultline.runs.models import BackupWorkerEvent, PrepareEvent, WorkItem  # noqa: E402
from vaultline.storage import S3Storage  # noqa: E402

SOURCE = "bench-source"
VAULTS = "bench-vaults"


@contextmanager
def latency(seconds: float) -> Iterator[list[int]]:
    """Every request of the shared S3 client waits ``seconds`` before it is sent (moto answers it in-process)."""
    s3 = aws.client("s3")
    count = [0]

    def wait(**_: Any) -> None:
        count[0] += 1
        time.sleep(seconds)

    # First: moto's own before-send handler answers the request, and handlers after an answer are not called.
    s3.meta.events.register_first("before-send.s3", wait)
    try:
        yield count
    finally:
        s3.meta.events.unregister("before-send.s3", wait)


def fill(total: int, seed: int) -> list[bytes]:
    """Put a corpus sample of about ``total`` bytes in the source bucket; return the objects' bytes."""
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=VAULTS)
    bodies = []
    for spec in corpus.plan_corpus(total, seed):
        body = corpus.file_bytes(spec)
        s3.put_object(Bucket=SOURCE, Key=spec.rel, Body=body)
        bodies.append(body)
    return bodies


def raw_zstd(bodies: list[bytes]) -> float:
    """Seconds zstd-3 takes over every object on one thread: the reference."""
    compressor = zstandard.ZstdCompressor(level=3)
    clock = time.perf_counter()
    for body in bodies:
        compressor.compress(body)
    return time.perf_counter() - clock


@contextmanager
def pack_sink(latency_s: float, mb_per_s: float) -> Iterator[None]:
    """Pack PUTs (``data/``) cost what S3 costs a function, wall time and no CPU: the latency plus the bytes at
    ``mb_per_s``; the bytes go nowhere (nothing in the bench reads a pack back)."""
    create = S3Storage.create

    def sunk(self: S3Storage, key: str, data: bytes) -> bool:
        if not key.startswith("data/"):
            return create(self, key, data)
        time.sleep(latency_s + len(data) / (mb_per_s * 1e6))
        return True

    S3Storage.create = sunk  # type: ignore[method-assign]
    try:
        yield
    finally:
        S3Storage.create = create  # type: ignore[method-assign]


def worker(run: int, read_ahead: bool, latency_s: float) -> tuple[float, int]:
    """Prepare a backup of the source into a fresh vault, then time the Worker step over its one batch; return
    (seconds, S3 requests the step made)."""
    prefix = f"v{run}-{int(read_ahead)}"
    vault = Vault.init(S3Storage(VAULTS, prefix))
    request = {"source": {"type": "s3", "url": f"s3://{SOURCE}"}, "tags_refresh": "never", "worker_concurrency": 1}
    prepared = backup_steps.prepare(vault, PrepareEvent(request=request))
    original = backup_steps.ReadAhead
    if not read_ahead:
        backup_steps.ReadAhead = lambda source, planned: nullcontext(source)  # type: ignore[assignment,misc]
    try:
        with latency(latency_s) as requests:
            clock = time.perf_counter()
            for number in range(prepared.batches):
                # Opened afresh, as the handler opens it for each event: its config, its index, its Object Lock
                # settings are the step's to read, not Prepare's left in memory.
                opened = Vault.open(S3Storage(VAULTS, prefix))
                item = WorkItem(batch=number, key=backup_steps._run(opened, prepared.recovery_point).batch_key(number))
                backup_steps.work(opened, BackupWorkerEvent(recovery_point=prepared.recovery_point, item=item))
            seconds = time.perf_counter() - clock
    finally:
        backup_steps.ReadAhead = original  # type: ignore[misc]
    # moto keeps every vault in memory: drop this run's before the next.
    s3 = aws.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=VAULTS):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=VAULTS, Delete={"Objects": keys})
    return seconds, requests[0]


@contextmanager
def moto_server(cpus: set[int] | None) -> Iterator[None]:
    """moto's server in a process of its own on a free port (pinned to ``cpus`` when given); this process's clients
    send to it (``AWS_ENDPOINT_URL``)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if cpus:
            os.sched_setaffinity(server.pid, cpus)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto's server did not start") from None
                time.sleep(0.1)
        os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
        yield
    finally:
        os.environ.pop("AWS_ENDPOINT_URL", None)
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=48)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cpus", type=int, default=0, help="run on this many CPUs only (a Lambda's vCPU share)")
    parser.add_argument("--server", action="store_true", help="moto's server in its own process, not in this one")
    parser.add_argument(
        "--pack-sink", type=float, default=0.0, metavar="MB/S", help="pack PUTs take latency + size at MB/S, no CPU"
    )
    parser.add_argument("--no-serial", action="store_true", help="skip the one-by-one runs (the reference path)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # moto's in-process AWS: any credentials, one region (never a real account's).
    for name, value in (
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
    ):
        os.environ.setdefault(name, value)
    every = sorted(os.sched_getaffinity(0))
    if args.cpus:
        os.sched_setaffinity(0, set(every[: args.cpus]))
    blob_writer.default_threads = lambda: args.threads
    elsewhere = set(every[args.cpus :]) if args.cpus and args.cpus < len(every) else None
    sink = pack_sink(args.latency_ms / 1000, args.pack_sink) if args.pack_sink else nullcontext()
    with moto_server(elsewhere) if args.server else mock_aws(), sink:
        bodies = fill(args.mib * 1024 * 1024, args.seed)
        size = sum(len(b) for b in bodies)
        figures: dict[str, list[float]] = {"zstd": [], "ahead": [], "serial": []}
        requests = {}
        for run in range(args.runs):
            figures["zstd"].append(raw_zstd(bodies))
            seconds, requests["ahead"] = worker(run, True, args.latency_ms / 1000)
            figures["ahead"].append(seconds)
            if not args.no_serial:
                seconds, requests["serial"] = worker(run, False, args.latency_ms / 1000)
                figures["serial"].append(seconds)
            figures["zstd"].append(raw_zstd(bodies))
    median = {name: statistics.median(values) for name, values in figures.items() if values}
    rate = {name: size / seconds / 1e6 for name, seconds in median.items()}
    report = {
        "s3": ("moto server, own process" if args.server else "moto in process")
        + (f", packs sunk at {args.pack_sink:.0f} MB/s" if args.pack_sink else ""),
        "objects": len(bodies),
        "mb": size / 1e6,
        "latency_ms": args.latency_ms,
        "threads": args.threads,
        "cpus": len(os.sched_getaffinity(0)),
        "load": os.getloadavg()[0],
        "runs": args.runs,
        "raw_zstd_mb_s": rate["zstd"],
        "worker_mb_s": rate["ahead"],
        "serial_mb_s": rate.get("serial"),
        "ratio": rate["ahead"] / rate["zstd"],
        "serial_ratio": rate["serial"] / rate["zstd"] if "serial" in rate else None,
        "requests": requests["ahead"],
    }
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"S3 backup worker, {len(bodies)} objects, {size / 1e6:.1f} MB, {args.latency_ms:.0f} ms per S3 request, "
        f"{args.threads} seal thread(s) on {report['cpus']} CPU(s), {report['s3']}, median of {args.runs} runs, "
        f"load average {report['load']:.1f}"
    )
    print(f"  raw zstd-3, one thread, same bytes: {rate['zstd']:7.1f} MB/s   (reference)")
    print(
        f"  worker, objects read ahead:         {rate['ahead']:7.1f} MB/s = {report['ratio']:.2f}x raw zstd"
        "  (target 0.8x)"
    )
    if "serial" in rate:
        serial = rate["serial"] / rate["zstd"]
        print(f"  worker, objects read one by one:    {rate['serial']:7.1f} MB/s = {serial:.2f}x raw zstd")
    print(f"  S3 requests per worker run: {requests['ahead']}")


if __name__ == "__main__":
    main()
