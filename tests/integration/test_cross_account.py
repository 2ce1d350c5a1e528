"""Sources in another account, read through a role there: the CLI, the serverless steps and a refused role.

moto keeps one world per account and maps AssumeRole credentials to the role's account, so a bucket or table made
with the role's credentials is invisible to ours: a backup that ignored the role would fail, not pass by accident.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import Run
from vaultline import aws
from vaultline.repository.manifest import iter_entries, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs import backup_steps
from vaultline.runs.models import BackupWorkerEvent, CommitEvent, PrepareEvent, WorkItem
from vaultline.sources import s3 as s3_source
from vaultline.storage import S3Storage

OTHER_ACCOUNT = "222222222222"
ROLE = f"arn:aws:iam::{OTHER_ACCOUNT}:role/vaultline-reader"


@pytest.fixture
def other_account(aws: None) -> Iterator[boto3.session.Session]:
    """A session acting in the other account, as the role our backups will assume."""
    creds = boto3.client("sts", region_name="us-east-1").assume_role(RoleArn=ROLE, RoleSessionName="fixture")[
        "Credentials"
    ]
    yield boto3.session.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name="us-east-1",
    )


@pytest.fixture
def foreign_bucket(other_account: boto3.session.Session) -> dict[str, bytes]:
    s3 = other_account.client("s3")
    s3.create_bucket(Bucket="their-data")
    objects = {f"logs/{n:03d}.txt": f"line {n}\n".encode() * (n + 1) for n in range(12)}
    for key, body in objects.items():
        s3.put_object(Bucket="their-data", Key=key, Body=body, Metadata={"owner": "them"})
    return objects


def _account_of(client: Any) -> str:
    """The account whose credentials sign this client's requests."""
    creds = client._request_signer._credentials.get_frozen_credentials()
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
    )
    return str(sts.get_caller_identity()["Account"])


@pytest.fixture
def s3_signers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The accounts whose credentials sign S3 sources' role clients, in order of creation.

    Bucket names are global and moto enforces no bucket policy, so the proof that a bucket is read through the
    role is the account whose credentials signed the reads.
    """
    signers: list[str] = []
    real_role_client = s3_source.role_client

    def recording_role_client(service: str, role_arn: str, region: str | None = None) -> Any:
        made = real_role_client(service, role_arn, region)
        signers.append(_account_of(made))
        return made

    monkeypatch.setattr(s3_source, "role_client", recording_role_client)
    return signers


def test_cli_backs_up_a_bucket_in_another_account_through_its_role(
    s3: Any, foreign_bucket: dict[str, bytes], run: Run, s3_signers: list[str]
) -> None:
    s3.create_bucket(Bucket="vaults")
    vault = ("--vault", "s3://vaults/main")
    assert run(*vault, "init")[0] == 0

    code, out, err = run(*vault, "backup", "s3://their-data", "--role-arn", ROLE, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["source"] == "s3://their-data" and doc["objects"] == len(foreign_bucket)
    assert s3_signers == [OTHER_ACCOUNT]

    s3.create_bucket(Bucket="restored")
    code, _, err = run(*vault, "restore", doc["recovery_point"], "--to", "s3://restored")
    assert code == 0, err
    for key, body in foreign_bucket.items():
        got = s3.get_object(Bucket="restored", Key=key)
        assert got["Body"].read() == body and got["Metadata"] == {"owner": "them"}

    # The role is how the bucket is read, not what it is: the next backup is incremental against the first.
    code, out, err = run(*vault, "backup", "s3://their-data", "--role-arn", ROLE, "--json")
    assert code == 0, err
    assert json.loads(out)["objects_unchanged"] == len(foreign_bucket)


def test_cli_backs_up_a_table_in_another_account_through_its_role(
    s3: Any, other_account: boto3.session.Session, run: Run
) -> None:
    ddb = other_account.client("dynamodb")
    ddb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(20):
        ddb.put_item(TableName="orders", Item={"pk": {"S": f"o{n}"}, "total": {"N": str(n * 10)}})
    s3.create_bucket(Bucket="vaults")
    vault = ("--vault", "s3://vaults/main")
    run(*vault, "init")

    code, _, err = run(*vault, "backup", "dynamodb://orders", "--json")
    assert code == 1 and "orders does not exist" in err

    code, out, err = run(*vault, "backup", "dynamodb://orders", "--role-arn", ROLE, "--json")
    assert code == 0, err
    rp = json.loads(out)["recovery_point"]
    assert json.loads(out)["items"] == 20

    # Restored into our own account: the table is ours now, read with our own credentials.
    code, out, err = run(*vault, "restore", rp, "--to", "dynamodb://orders-copy", "--json")
    assert code == 0, err
    mine = boto3.client("dynamodb", region_name="us-east-1")
    assert mine.scan(TableName="orders-copy", Select="COUNT")["Count"] == 20


def test_disagreeing_role_options_are_a_usage_error(s3: Any, run: Run) -> None:
    s3.create_bucket(Bucket="vaults")
    run("--vault", "s3://vaults/main", "init")
    other = f"arn:aws:iam::{OTHER_ACCOUNT}:role/other"
    code, _, err = run("--vault", "s3://vaults/main", "backup", f"dynamodb://t?role={ROLE}", "--role-arn", other)
    assert code == 2 and "disagree" in err


def test_serverless_steps_read_the_bucket_through_the_plans_role(
    s3: Any, foreign_bucket: dict[str, bytes], s3_signers: list[str]
) -> None:
    s3.create_bucket(Bucket="vault-bucket")
    vault = Vault.init(S3Storage("vault-bucket", "v"))
    request = {"source": {"type": "s3", "url": "s3://their-data", "role_arn": ROLE}, "worker_concurrency": 2}

    prepared = backup_steps.prepare(vault, PrepareEvent(request=request))
    work_list = json.loads(s3.get_object(Bucket="vault-bucket", Key=prepared.work_list_key)["Body"].read())
    for item in work_list:
        backup_steps.work(vault, BackupWorkerEvent(recovery_point=prepared.recovery_point, item=WorkItem(**item)))
    committed = backup_steps.commit(vault, CommitEvent(prepared=prepared))

    rp = load_recovery_point(vault, committed.recovery_point)
    assert rp.source == "s3://their-data"
    # Prepare lists and each worker reads through the role; Commit, which needs no read, never asks for it.
    assert s3_signers == [OTHER_ACCOUNT] * (1 + len(work_list))
    assert {e.key: e.size for e in iter_entries(vault, rp)} == {k: len(b) for k, b in foreign_bucket.items()}


def test_a_role_that_cannot_be_assumed_names_the_role_and_the_bucket(
    s3: Any, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.create_bucket(Bucket="vaults")
    run("--vault", "s3://vaults/main", "init")

    def refuse(*_: Any, **__: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not trusted"}}, "AssumeRole")

    # moto trusts every AssumeRole; real STS refuses a role whose trust policy does not name our account.
    monkeypatch.setattr(aws.client("sts"), "assume_role", refuse)
    code, _, err = run("--vault", "s3://vaults/main", "backup", "s3://their-data", "--role-arn", ROLE)
    assert code == 1
    assert f"cannot assume role {ROLE} (AccessDenied)" in err and "their-data" in err
    assert run("--vault", "s3://vaults/main", "list", "--json")[1].strip() == "[]"
