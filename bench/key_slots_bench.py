"""What opening a vault costs by each kind of key slot: the config's KMS key, a KMS slot after the config's key
failed (one listing of keys/ and one more Decrypt), and a passphrase slot at the production scrypt cost.

Usage: ``python bench/key_slots_bench.py [RUNS]``. Runs against an in-process moto (KMS and S3 calls are local, so
the KMS figures are this process's overhead, not AWS latency); prints the median seconds of each way in.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

import boto3
from moto import mock_aws

from vaultline.aws import reset_clients
from vaultline.operations.keys import add_kms_slot, add_passphrase_slot
from vaultline.repository.keys import DEFAULT_SCRYPT_COST
from vaultline.repository.vault import Vault
from vaultline.storage import S3Storage
from vaultline_dev.embedded import service_gaps


def median_seconds(runs: int, step: Callable[[], object]) -> float:
    """Median wall time of ``runs`` calls of ``step``."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(runs: int) -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    service_gaps.install_kms_key_states()
    reset_clients()
    with mock_aws():
        kms = boto3.client("kms")
        boto3.client("s3").create_bucket(Bucket="bench-vault")
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        vault = Vault.init(S3Storage("bench-vault"), encryption="kms", kms_key_id=key)
        add_kms_slot(vault, kms.create_key()["KeyMetadata"]["Arn"])
        add_passphrase_slot(vault, b"bench passphrase")
        by_config = median_seconds(runs, lambda: Vault.open("s3://bench-vault"))
        by_phrase = median_seconds(runs, lambda: Vault.open("s3://bench-vault", passphrase=b"bench passphrase"))
        kms.disable_key(KeyId=key)
        by_slot = median_seconds(runs, lambda: Vault.open("s3://bench-vault"))
    cost = DEFAULT_SCRYPT_COST
    scrypt = f"scrypt N=2^{cost.n.bit_length() - 1} r={cost.r} p={cost.p}"
    print(f"open by the config's KMS key:             {by_config * 1000:7.1f} ms (median of {runs})")
    print(f"open by a KMS slot (config key disabled): {by_slot * 1000:7.1f} ms")
    print(f"open by passphrase ({scrypt}):  {by_phrase * 1000:7.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
