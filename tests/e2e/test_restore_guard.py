"""A restore can never write into the vault or its access-log bucket, though `vaultline-*` (the default restore
target pattern) matches both: the restore's Prepare refuses before anything is written, and IAM would deny the
worker's writes anyway."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline.cli.stack import ExecutionFailed, follow, start
from vaultline_dev.embedded.identity import role_credentials

pytestmark = pytest.mark.e2e


def _bucket_of(d: Deployment, logical_part: str) -> str:
    (logical,) = [k for k, r in d.deployed.resources.items() if r["Type"] == "AWS::S3::Bucket" and logical_part in k]
    return d.deployed.physical[logical]


def _objects(bucket: str, prefix: str) -> int:
    return int(client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0))


def test_a_restore_into_the_vault_or_its_log_bucket_is_refused_before_anything_is_written(
    deployment: Deployment,
) -> None:
    source = str(deployment.stack.plans["demo"][0]["source"]["url"]).removeprefix("s3://")
    client("s3").create_bucket(Bucket=source)
    client("s3").put_object(Bucket=source, Key="a.txt", Body=b"a")
    committed = follow(
        start(deployment.stack.backup_state_machine, deployment.plan_input(f"s3://{source}")), poll_seconds=0.05
    )["committed"]
    vault, logs = deployment.stack.vault_bucket, _bucket_of(deployment, "AccessLogs")
    assert vault.startswith("vaultline-") and logs.startswith("vaultline-")  # both match the default target pattern

    for bucket, says in ((vault, "vault's own bucket"), (logs, "access-log bucket")):
        request = {"recovery_point": committed["recovery_point"], "target": f"s3://{bucket}/restored"}
        with pytest.raises(ExecutionFailed, match=says):
            follow(start(deployment.stack.restore_state_machine, request), poll_seconds=0.05)
        assert _objects(bucket, "restored/") == 0


def test_the_restore_worker_may_not_write_the_vault_whatever_its_target_pattern_allows(
    deployment: Deployment,
) -> None:
    (role,) = [
        k
        for k, r in deployment.deployed.resources.items()
        if r["Type"] == "AWS::IAM::Role" and k.startswith("FunctionsRestoreWorkerServiceRole")
    ]
    s3 = role_credentials(deployment.deployed.arns[role], "guard-test").session("us-east-1").client("s3")
    for bucket in (deployment.stack.vault_bucket, _bucket_of(deployment, "AccessLogs")):
        with pytest.raises(ClientError) as denied:
            s3.put_object(Bucket=bucket, Key="recovery-points/forged", Body=b"x")
        assert denied.value.response["Error"]["Code"] == "AccessDenied", bucket
        assert "explicit deny" in denied.value.response["Error"]["Message"], denied.value.response["Error"]
