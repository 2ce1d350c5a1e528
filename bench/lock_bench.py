"""Lock extension benchmark: the S3 requests that keeping Object Lock on what recovery points need costs, per month
and per TB, measured on the embedded AWS (moto) over simulated days of daily maintenance.

    .venv/bin/python bench/lock_bench.py [--packs 100] [--points 10] [--days 40] [--margin-hours 24] [--runs 3]

A vault in a locked bucket gets ``points`` recovery points (one a day, each adding a few new packs to the ones every
recovery point shares), then ``lock extend`` runs once a simulated day for ``days`` days (the clock the run is given
moves; S3's own clock does not, which only makes every date later than in life). Each request the runs make is
counted by its S3 operation. The cycle settles within a few days: the figures are the last 30 days'.

Per TB: 1 TiB of packs is 65,536 packs of 16 MiB. HeadObject (one per referenced object per run) and
PutObjectRetention (one per object about every ``period + margin`` days) are per object; the listings, the
staging objects and the manifests' own requests are per vault and per recovery point and reported apart.
Prices (us-east-1, S3 Standard): PUT-class $0.005 per 1,000 requests (PutObjectRetention, PutObject, List*),
GET-class $0.0004 per 1,000 (HeadObject, GetObject).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from moto import mock_aws

from vaultline.aws import reset_clients
from vaultline.operations.backup import run_backup
from vaultline.operations.lock_extension import LockExtendOptions, extend_locks
from vaultline.repository.layout import CONFIG_KEY
from vaultline.repository.object_lock import ObjectLockSettings, save_object_lock
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import S3Storage
from vaultline_dev.embedded import object_lock_rules

PACKS_PER_TIB = (1 << 40) // (16 << 20)
PUT_PRICE, GET_PRICE = 0.005 / 1000, 0.0004 / 1000
PUT_CLASS = {"PutObjectRetention", "PutObject", "ListObjectsV2", "ListObjectVersions", "DeleteObject"}


def _build(root: Path, packs: int, points: int) -> Vault:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bench-vault", ObjectLockEnabledForBucket=True)
    storage = S3Storage("bench-vault", "", s3)
    vault = Vault.init(storage)
    # Small packs, so that a few MiB of data make the number of packs asked for.
    storage.put(CONFIG_KEY, vault.config.model_copy(update={"pack_size": 64 * 1024}).to_bytes())
    save_object_lock(storage, ObjectLockSettings.bounded("GOVERNANCE", 30))
    vault = Vault.open(S3Storage("bench-vault", "", s3))
    source = root / "src"
    source.mkdir()
    shared = packs - 2 * points
    for i in range(max(shared, 1)):
        (source / f"shared-{i}").write_bytes(os.urandom(60 * 1024))
    for day in range(points):
        for j in range(2):
            (source / f"day-{day}-{j}").write_bytes(os.urandom(60 * 1024))
        run_backup(vault, open_source(str(source)))
    return Vault.open(S3Storage("bench-vault", "", s3))


def _one_run(packs: int, points: int, days: int, margin_hours: float) -> dict[str, float]:
    calls: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp, mock_aws():
        reset_clients()
        object_lock_rules.install()
        try:
            vault = _build(Path(tmp), packs, points)
            s3 = vault.storage.s3  # type: ignore[attr-defined]
            s3.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
            start = datetime.now(UTC)
            month: Counter[str] = Counter()
            extended: list[int] = []
            for day in range(days):
                before = Counter(calls)
                options = LockExtendOptions(period_hours=24, margin_hours=margin_hours)
                report = extend_locks(vault, options, now=start + timedelta(days=day))
                if day >= days - 30:
                    month.update(calls - before)
                    extended.append(report.objects_extended)
            objects = len(list_pack_ids(vault.storage)) + points
        finally:
            object_lock_rules.uninstall()
            reset_clients()
    per_object = {op: n / objects for op, n in month.items()}
    heads, puts = per_object.get("HeadObject", 0.0), per_object.get("PutObjectRetention", 0.0)
    per_tib = (heads + puts) * PACKS_PER_TIB
    cost = (heads * GET_PRICE + puts * PUT_PRICE) * PACKS_PER_TIB
    other = sum(n for op, n in month.items() if op not in ("HeadObject", "PutObjectRetention"))
    return {
        "objects": objects,
        "heads_per_object_month": heads,
        "puts_per_object_month": puts,
        "requests_per_tib_month": per_tib,
        "usd_per_tib_month": cost,
        "other_requests_per_run": other / 30,
        "extended_per_run": statistics.mean(extended),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packs", type=int, default=100)
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--margin-hours", type=float, default=24.0)
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    results = [_one_run(args.packs, args.points, args.days, args.margin_hours) for _ in range(args.runs)]
    print(
        f"lock extension, daily, lock_days 30, period 24 h + margin {args.margin_hours:g} h; {args.points} points, "
        f"median of {args.runs} runs of {args.days} simulated days (last 30 counted)"
    )
    for name in results[0]:
        print(f"  {name:28} {statistics.median(r[name] for r in results):14.3f}")


if __name__ == "__main__":
    main()
