"""The Copy state machine on the embedded AWS (IAM enforced from the template): a plan's backup is copied into a
second vault bucket after the plan's backup, started by its success event, and restored from the copy bit-exact."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline.cli.main import main
from vaultline.cli.stack import follow, start
from vaultline.repository.manifest import list_recovery_point_ids
from vaultline.repository.vault import Vault
from vaultline.storage import S3Storage

pytestmark = pytest.mark.e2e

SOURCE, TARGET = "vaultline-copy-source", "vaultline-copy-target"


def test_a_backup_copied_by_the_copy_machine_restores_bit_exact_from_the_copy(
    deployment: Deployment, tmp_path: Path
) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket=SOURCE)
    s3.create_bucket(Bucket=TARGET)
    objects = {f"docs/{i}.bin": (f"object {i} ".encode() * (3000 + 500 * i)) for i in range(6)}
    for key, body in objects.items():
        s3.put_object(Bucket=SOURCE, Key=key, Body=body)
    # The target must exist; it shares the stack's vault key (a copy in this account without a role).
    Vault.init(S3Storage(TARGET, "copy"), encryption="kms", kms_key_id=deployment.deployed.outputs["VaultKeyArn"])

    # The `copies` plan's backup, as its schedule starts it: its success event starts the Copy machine (the
    # EventBridge rule of its copy_to, the target's role assumed as events.amazonaws.com).
    request = {**deployment.stack.plans["copies"][0], "worker_concurrency": 2}
    backup: dict[str, Any] = follow(start(deployment.stack.backup_state_machine, request), poll_seconds=0.05)
    rp = backup["committed"]["recovery_point"]
    copy_arn = deployment.deployed.outputs["CopyStateMachineArn"]
    output: dict[str, Any] = follow(_the_started_copy(copy_arn), poll_seconds=0.05)
    committed = output["committed"]
    assert committed["recovery_point"] == rp and committed["copied"] is True
    assert committed["target"] == f"s3://{TARGET}/copy" and committed["bytes_transferred"] > 0
    target = Vault.open(S3Storage(TARGET, "copy"))
    assert list_recovery_point_ids(target) == [rp]
    assert list(target.storage.list("locks/")) == []
    code = main(["--vault", f"s3://{TARGET}/copy", "restore", rp, "--to", str(tmp_path / "out")])
    assert code == 0
    restored = {
        str(p.relative_to(tmp_path / "out")): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()
    }
    assert restored == objects


def _the_started_copy(copy_arn: str) -> str:
    """The one execution the backup's success event started (EventBridge delivers just after PutEvents answers)."""
    sfn = client("stepfunctions")
    for _ in range(400):
        started = sfn.list_executions(stateMachineArn=copy_arn)["executions"]
        if started:
            assert len(started) == 1, "the backup's success event starts exactly one copy"
            return str(started[0]["executionArn"])
        threading.Event().wait(0.05)
    raise AssertionError("the backup's success event started no copy")
