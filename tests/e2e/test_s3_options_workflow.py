"""The backup and restore state machines with the S3 options: an archived object makes the run complete with issues,
and the restore input's `overwrite` mode reaches the workers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline.cli.stack import follow, start

pytestmark = pytest.mark.e2e


def _restore(d: Deployment, rp: str, target: str, **extra: Any) -> dict[str, Any]:
    payload = {"recovery_point": rp, "target": target, "worker_concurrency": 2, **extra}
    finished: dict[str, Any] = follow(start(d.stack.restore_state_machine, payload), poll_seconds=0.05)["finished"]
    return finished


def test_archived_object_completes_with_issues_and_restore_keeps_or_rewrites_as_overwrite_says(
    deployment: Deployment,
) -> None:
    source = deployment.stack.plans["demo"][0]["source"]["url"][len("s3://") :]
    s3 = client("s3")
    s3.create_bucket(Bucket=source)
    s3.put_object(Bucket=source, Key="a.txt", Body=b"a as backed up")
    s3.put_object(Bucket=source, Key="b.txt", Body=b"b")
    s3.put_object(Bucket=source, Key="cold.bin", Body=b"c", StorageClass="GLACIER")
    execution = start(deployment.stack.backup_state_machine, deployment.plan_input(f"s3://{source}"))

    committed = follow(execution, poll_seconds=0.05)["committed"]

    assert committed["status"] == "completed_with_issues"
    assert committed["issues"]["archived"] == 1 and committed["issues"]["objects"][0]["key"] == "cold.bin"
    assert committed["stats"]["objects"] == 2
    s3.put_object(Bucket=source, Key="a.txt", Body=b"a edited after the backup")

    kept = _restore(deployment, committed["recovery_point"], f"s3://{source}")  # default: never
    assert (kept["objects"], kept["skipped_existing"]) == (0, 2)
    assert s3.get_object(Bucket=source, Key="a.txt")["Body"].read() == b"a edited after the backup"

    rewritten = _restore(deployment, committed["recovery_point"], f"s3://{source}", overwrite="if-changed")
    assert (rewritten["objects"], rewritten["skipped_unchanged"]) == (1, 1)
    assert s3.get_object(Bucket=source, Key="a.txt")["Body"].read() == b"a as backed up"
