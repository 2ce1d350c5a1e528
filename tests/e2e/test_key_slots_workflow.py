"""Key slots on a deployed vault: its steps keep opening it by the stack's key, may not touch a slot, and a copy of
the vault restores with the passphrase alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import Deployment
from vaultline.aws import client, reset_clients
from vaultline.cli.main import main as cli
from vaultline.cli.stack import follow, start
from vaultline_dev.embedded.identity import role_credentials

pytestmark = pytest.mark.e2e


def _backup(d: Deployment, bucket: str) -> str:
    output = follow(start(d.stack.backup_state_machine, d.plan_input(f"s3://{bucket}")), poll_seconds=0.05)
    recovery_point: str = output["committed"]["recovery_point"]
    return recovery_point


def _worker_s3(d: Deployment) -> Any:
    (role,) = [
        k
        for k, r in d.deployed.resources.items()
        if k.startswith("FunctionsBackupWorkerServiceRole") and r["Type"] == "AWS::IAM::Role"
    ]
    return role_credentials(d.deployed.arns[role], "key-slots").session("us-east-1").client("s3")


def test_deployed_vault_takes_a_passphrase_slot_that_its_steps_ignore_and_may_not_touch(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s3 = client("s3")
    source, vault = "incremental", deployment.stack.vault_bucket  # a bucket the e2e plans grant
    s3.create_bucket(Bucket=source)
    s3.put_object(Bucket=source, Key="a.bin", Body=b"first " * 5000)
    _backup(deployment, source)
    passphrase = tmp_path / "passphrase"
    passphrase.write_text("offline passphrase\n")

    capsys.readouterr()
    assert cli(["--vault", f"s3://{vault}", "key", "add", "--passphrase-file", str(passphrase), "--json"]) == 0
    slot_id = json.loads(capsys.readouterr().out)["id"]

    # The steps open the vault by the stack's key as before: a second backup commits.
    s3.put_object(Bucket=source, Key="b.bin", Body=b"second " * 5000)
    _backup(deployment, source)

    worker = _worker_s3(deployment)
    for attempt in (
        lambda: worker.put_object(Bucket=vault, Key="keys/0123456789abcdef", Body=b"{}"),
        lambda: worker.delete_object(Bucket=vault, Key=f"keys/{slot_id}"),
    ):
        with pytest.raises(ClientError) as denied:
            attempt()
        assert denied.value.response["Error"]["Code"] == "AccessDenied"

    # A copy of the vault (section 14) restores with the passphrase alone: no KMS client is ever made.
    copy = tmp_path / "vault-copy"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=vault):
        for obj in page.get("Contents", []):
            if not obj["Key"].startswith("staging/"):
                target = copy / obj["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=vault, Key=obj["Key"])["Body"].read())
    reset_clients()
    original: Any = boto3.session.Session.client

    def no_kms(self: boto3.session.Session, service: str, *args: Any, **kwargs: Any) -> Any:
        assert service != "kms", "KMS was called"
        return original(self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", no_kms)
    out = tmp_path / "restored"
    code = cli(["--vault", str(copy), "--passphrase-file", str(passphrase), "restore", "latest", "--to", str(out)])
    reset_clients()
    assert code == 0, capsys.readouterr().err
    assert (out / "a.bin").read_bytes() == b"first " * 5000
    assert (out / "b.bin").read_bytes() == b"second " * 5000
