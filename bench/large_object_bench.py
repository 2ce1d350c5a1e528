"""One large object through the `vaultline` CLI: backup and restore peak RSS and throughput, and the multipart restore.

The object is deterministic (8 MiB blocks, half random, half log-like text). Each `vaultline` command runs as its own
child process, measured for wall time and peak RSS (VmHWM, bench/measure.py), against a local-directory vault:

1. a ``--gib`` GiB file (default 5): ``backup DIR`` then ``restore RP --to DIR``;
2. an ``--s3-gib`` GiB object (default 1) in the embedded AWS (moto's server on 127.0.0.1, in this process):
   ``backup s3://...`` then ``restore RP --to s3://...``, whose ETag (``"...-N"``) shows the multipart upload.

Restored bytes are compared by SHA-256 with the original. Single-core zstd-3 on one block is the reference speed.

    .venv/bin/python bench/large_object_bench.py [--gib 5] [--s3-gib 1] [--quick]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

import boto3
import zstandard
from measure import run_measured

from vaultline_dev.embedded import EmbeddedAws

BLOCK = 8 * 1024 * 1024
MIB = 1024 * 1024
BUCKET, RESTORED, KEY = "vaultline-big-source", "vaultline-big-restored", "exports/big.bin"
CLI = [sys.executable, "-m", "vaultline"]


def _text_pool() -> bytes:
    rng = random.Random(0)
    lines = (
        b"2026-11-28T04:%02d:%02d GET /api/v1/items/%d 200 %d ms\n" % (i % 60, i % 59, rng.randrange(10**6), i % 997)
        for i in range(400_000)
    )
    return b"".join(lines)


TEXT_POOL = _text_pool()


def block(n: int) -> bytes:
    """Block ``n`` of the object: 4 MiB of random bytes then 4 MiB of log-like text (deterministic)."""
    rng = random.Random(n)
    start = rng.randrange(len(TEXT_POOL) - BLOCK // 2)
    return rng.randbytes(BLOCK // 2) + TEXT_POOL[start : start + BLOCK // 2]


class BlockStream:
    """A readable file of ``blocks`` generated blocks that hashes what it hands out (boto3 streams it up)."""

    def __init__(self, blocks: int) -> None:
        self.blocks = iter(range(blocks))
        self.buffer = b""
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            n = next(self.blocks, None)
            if n is None:
                break
            self.buffer += block(n)
        out, self.buffer = (self.buffer, b"") if size < 0 else (self.buffer[:size], self.buffer[size:])
        self.sha.update(out)
        return out


def chunks_of(body: object) -> Iterator[bytes]:
    while piece := body.read(BLOCK):  # type: ignore[attr-defined]
        yield piece


def write_file(path: Path, blocks: int) -> str:
    """Write the object to ``path``; return its SHA-256."""
    sha = hashlib.sha256()
    with path.open("wb") as out:
        for n in range(blocks):
            data = block(n)
            sha.update(data)
            out.write(data)
    return sha.hexdigest()


def file_sha(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while piece := f.read(BLOCK):
            sha.update(piece)
    return sha.hexdigest()


def report(title: str, rows: list[tuple[str, str]]) -> None:
    print(title)
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")


def through_directories(work: Path, blocks: int, zstd_mb_s: float) -> bool:
    """The object as a file: directory source -> local vault -> directory target."""
    size = blocks * BLOCK
    source, target, vault = work / "src", work / "restored", str(work / "vault-dir")
    source.mkdir()
    print(f"writing {size / 1024**3:.2f} GiB to {source} ...", flush=True)
    sha = write_file(source / "big.bin", blocks)
    run_measured([*CLI, "--vault", vault, "init"])
    backup = run_measured([*CLI, "--vault", vault, "backup", str(source), "--json"])
    rp = json.loads(backup.stdout)["recovery_point"]  # the CLI's --json is one indented document
    (source / "big.bin").unlink()  # the disk holds one copy at a time
    restore = run_measured([*CLI, "--vault", vault, "restore", rp, "--to", str(target), "--json"])
    equal = file_sha(target / "big.bin") == sha
    stored = sum(f.stat().st_size for f in (work / "vault-dir").rglob("*") if f.is_file())
    mb = size / 1e6
    report(
        f"file of {size / 1024**3:.2f} GiB: directory -> local vault -> directory",
        [
            (
                "backup",
                f"{backup.seconds:.1f} s, {mb / backup.seconds:.0f} MB/s, peak RSS {backup.peak_rss_mib:.0f} MiB",
            ),
            ("backup / zstd-3 1 core", f"{mb / backup.seconds / zstd_mb_s:.2f}"),
            ("vault size / object", f"{stored / size:.3f}"),
            (
                "restore",
                f"{restore.seconds:.1f} s, {mb / restore.seconds:.0f} MB/s, peak RSS {restore.peak_rss_mib:.0f} MiB",
            ),
            ("restored file equals the original (SHA-256)", str(equal)),
        ],
    )
    shutil.rmtree(target, ignore_errors=True)
    return equal


def through_s3(work: Path, blocks: int, zstd_mb_s: float) -> bool:
    """The object in S3 (the embedded AWS): bucket -> local vault -> another bucket by multipart upload.

    moto keeps every object and multipart part in this process's memory (several copies while a multipart upload
    completes), so this leg defaults to 1 GiB: past that the bench measures moto, not Vaultline.
    """
    size = blocks * BLOCK
    with EmbeddedAws(Path(__file__).resolve().parents[1] / "functions", quiet=True):
        s3 = boto3.client("s3")
        for bucket in (BUCKET, RESTORED):
            s3.create_bucket(Bucket=bucket)
        print(f"uploading s3://{BUCKET}/{KEY}: {size / 1024**3:.2f} GiB ...", flush=True)
        stream = BlockStream(blocks)
        s3.upload_fileobj(cast(BinaryIO, stream), BUCKET, KEY)  # file-like: read(n) is all boto3 calls
        vault = str(work / "vault-s3")
        run_measured([*CLI, "--vault", vault, "init"])
        backup = run_measured([*CLI, "--vault", vault, "backup", f"s3://{BUCKET}", "--json"])
        rp = json.loads(backup.stdout)["recovery_point"]
        s3.delete_object(Bucket=BUCKET, Key=KEY)  # one copy in moto's memory at a time
        restore = run_measured([*CLI, "--vault", vault, "restore", rp, "--to", f"s3://{RESTORED}", "--json"])
        head = s3.head_object(Bucket=RESTORED, Key=KEY)
        sha = hashlib.sha256()
        for piece in chunks_of(s3.get_object(Bucket=RESTORED, Key=KEY)["Body"]):
            sha.update(piece)
    equal = sha.hexdigest() == stream.sha.hexdigest() and head["ContentLength"] == size
    etag = head["ETag"].strip('"')
    mb = size / 1e6
    report(
        f"S3 object of {size / 1024**3:.2f} GiB: bucket -> local vault -> bucket (embedded AWS)",
        [
            (
                "backup",
                f"{backup.seconds:.1f} s, {mb / backup.seconds:.0f} MB/s, peak RSS {backup.peak_rss_mib:.0f} MiB",
            ),
            ("backup / zstd-3 1 core", f"{mb / backup.seconds / zstd_mb_s:.2f}"),
            (
                "restore",
                f"{restore.seconds:.1f} s, {mb / restore.seconds:.0f} MB/s, peak RSS {restore.peak_rss_mib:.0f} MiB",
            ),
            ("restored by multipart upload", f"{etag.split('-')[1]} parts" if "-" in etag else "no (single PUT)"),
            ("restored object equals the upload (SHA-256)", str(equal)),
        ],
    )
    return equal


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=5.0, help="file size in GiB (default %(default)s)")
    parser.add_argument("--s3-gib", type=float, default=1.0, help="S3 object size in GiB (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="0.5 GiB each: checks the script end to end")
    args = parser.parse_args()
    file_blocks = max(1, int((0.5 if args.quick else args.gib) * 1024**3 // BLOCK))
    s3_blocks = max(1, int((0.5 if args.quick else args.s3_gib) * 1024**3 // BLOCK))

    sample = block(0)
    started = time.perf_counter()
    compressed = zstandard.ZstdCompressor(level=3).compress(sample)
    zstd_mb_s = len(sample) / (time.perf_counter() - started) / 1e6
    print(
        f"zstd-3 on one core, one 8 MiB block of the object: {zstd_mb_s:.0f} MB/s, ratio {len(compressed) / BLOCK:.3f}"
    )

    work = Path(tempfile.mkdtemp(prefix="vaultline-big-"))
    try:
        ok = through_directories(work, file_blocks, zstd_mb_s)
        ok = through_s3(work, s3_blocks, zstd_mb_s) and ok
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
