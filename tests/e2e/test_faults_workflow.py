"""Backups and restores through the real state machines while the embedded AWS throttles and fails a few percent of
the requests the functions and state machines make, as AWS does on a bad day: every object and item arrives exactly
once, and the retries the run needed are counted."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.e2e.conftest import Deployment
from tests.e2e.test_dynamodb_workflow import _create_table, _items, _table_input, _table_items
from vaultline.aws import client
from vaultline.cli.stack import follow, start
from vaultline.repository.manifest import iter_entries, list_recovery_points
from vaultline.repository.vault import Vault
from vaultline_dev.embedded.lambdas import KillSandbox, invocations

pytestmark = pytest.mark.e2e

A_FEW_PERCENT = {
    "s3-slowdown": 0.03,
    "s3-internal-error": 0.03,
    "dynamodb-throughput": 0.03,
    "dynamodb-throttling": 0.03,
    "kms-throttling": 0.05,
    "lambda-too-many-requests": 0.1,
}


def _objects(n: int) -> dict[str, bytes]:
    objects = {f"docs/{i:03d}.txt": (f"line {i}\n" * (i * 40 + 1)).encode() for i in range(n)}
    objects["big/blob.bin"] = bytes(range(256)) * (8 * 4096)  # 8 MiB: several chunks and a multipart restore
    return objects


def _assert_each_blob_stored_once(d: Deployment) -> None:
    vault = Vault.open(d.stack.vault_url)
    stored = [entry.id for entries in vault.index.packs.values() for entry in entries]
    duplicates = [blob for blob, n in Counter(stored).items() if n > 1]
    assert not duplicates, f"{len(duplicates)} blobs stored twice by retried steps"


def test_s3_backup_and_restore_complete_exactly_once_under_faults(deployment: Deployment) -> None:
    objects = _objects(30)
    s3 = client("s3")
    s3.create_bucket(Bucket="stormy")
    for key, body in objects.items():
        s3.put_object(Bucket="stormy", Key=key, Body=body)
    s3.create_bucket(Bucket="vaultline-stormy-restored")
    killed = {"left": 1}

    def kill_first_worker_mid_batch(function: str, event: dict[str, Any]) -> None:
        if "BackupWorker" in function and killed["left"]:
            killed["left"] -= 1
            raise KillSandbox(after_seconds=0.3)

    invocations.interceptors.append(kill_first_worker_mid_batch)
    faults = deployment.aws.faults
    faults.set_rates(A_FEW_PERCENT, seed=11)
    try:
        committed = follow(
            start(deployment.stack.backup_state_machine, deployment.plan_input("s3://stormy")), poll_seconds=0.05
        )["committed"]
        finished = follow(
            start(
                deployment.stack.restore_state_machine,
                {
                    "recovery_point": committed["recovery_point"],
                    "target": "s3://vaultline-stormy-restored",
                    "worker_concurrency": 4,
                },
            ),
            poll_seconds=0.05,
        )["finished"]
    finally:
        faults.clear()
    injected = dict(faults.injected)
    print(f"\nfaults injected (each one retried by the SDK or the state machine): {injected}")

    assert injected.get("s3-slowdown", 0) + injected.get("s3-internal-error", 0) > 0, injected
    assert killed["left"] == 0 and invocations.errors, "no worker was killed mid-batch"
    assert committed["stats"]["objects"] == len(objects) and finished["objects"] == len(objects)
    vault = Vault.open(deployment.stack.vault_url)
    (point,) = list_recovery_points(vault)
    keys = [entry.key for entry in iter_entries(vault, point)]
    assert sorted(keys) == sorted(objects), "an object is missing from, or twice in, the manifest"
    restored = s3.list_objects_v2(Bucket="vaultline-stormy-restored")["Contents"]
    assert len(restored) == len(objects)
    for key, body in objects.items():
        assert s3.get_object(Bucket="vaultline-stormy-restored", Key=key)["Body"].read() == body, key
    _assert_each_blob_stored_once(deployment)


def test_table_backup_and_restore_complete_exactly_once_under_faults(deployment: Deployment) -> None:
    items = _items(200)
    _create_table("squall", items)
    faults = deployment.aws.faults
    faults.set_rates(A_FEW_PERCENT, seed=5)
    try:
        committed = follow(
            start(deployment.stack.backup_state_machine, _table_input(deployment, "squall", segments=2)),
            poll_seconds=0.05,
        )["committed"]
        restore: dict[str, Any] = {
            "recovery_point": committed["recovery_point"],
            "target": "dynamodb://vaultline-squall-restored",
            "worker_concurrency": 4,
        }
        finished = follow(start(deployment.stack.restore_state_machine, restore), poll_seconds=0.05)["finished"]
    finally:
        faults.clear()
    injected = dict(faults.injected)
    print(f"\nfaults injected (each one retried by the SDK or the state machine): {injected}")

    assert injected.get("dynamodb-throughput", 0) + injected.get("dynamodb-throttling", 0) > 0, injected
    assert finished["items"] == len(items)
    assert _table_items("vaultline-squall-restored") == _table_items("squall")
    _assert_each_blob_stored_once(deployment)
