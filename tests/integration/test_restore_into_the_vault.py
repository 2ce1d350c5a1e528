"""A restore never writes into the vault it reads or into the vault's access-log bucket: the restore target
patterns (``vaultline-*``) match both, so the restore Prepare and the CLI refuse them before writing anything."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Run
from vaultline.errors import TargetError
from vaultline.operations.backup import run_backup
from vaultline.repository.layout import STAGING_PREFIX
from vaultline.repository.vault import Vault
from vaultline.runs import restore_steps
from vaultline.runs.models import PrepareEvent
from vaultline.sources import open_source
from vaultline.storage import S3Storage

VAULT = "vaultline-vaultbucket0925c477-abc"
LOGS = "vaultline-vaultaccesslogs5c9c-def"


@pytest.fixture
def vault(s3: Any) -> Vault:
    for name in (VAULT, LOGS, "source", "vaultline-restored"):
        s3.create_bucket(Bucket=name)
    s3.put_object(Bucket="source", Key="config", Body=b"would overwrite the vault's config")
    vault = Vault.init(S3Storage(VAULT))
    run_backup(vault, open_source("s3://source"))
    return vault


def _objects(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (f"s3://{VAULT}", "is in the vault's own bucket"),
        (f"s3://{VAULT}/restored/", "is in the vault's own bucket"),
        (f"s3://{LOGS}/x", "is the vault's access-log bucket"),
    ],
)
def test_restore_prepare_refuses_the_vault_and_its_log_bucket_before_writing(
    vault: Vault, s3: Any, target: str, message: str
) -> None:
    before = {bucket: _objects(s3, bucket) for bucket in (VAULT, LOGS)}
    event = PrepareEvent(request={"recovery_point": "latest", "target": target})
    with pytest.raises(TargetError, match=f"^restore target {target} {message}"):
        restore_steps.prepare(vault, event, access_log_bucket=LOGS)
    assert {bucket: _objects(s3, bucket) for bucket in (VAULT, LOGS)} == before
    assert not any(key.startswith(STAGING_PREFIX) for key in _objects(s3, VAULT))


def test_restore_prepare_still_accepts_another_bucket_the_patterns_match(vault: Vault, s3: Any) -> None:
    prepared = restore_steps.prepare(
        vault, PrepareEvent(request={"recovery_point": "latest", "target": "s3://vaultline-restored"}), LOGS
    )
    assert prepared.objects == 1


def test_the_cli_refuses_to_restore_into_the_vault(
    vault: Vault, s3: Any, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ACCESS_LOG_BUCKET", LOGS)  # what the stack sets on its functions
    config = s3.get_object(Bucket=VAULT, Key="config")["Body"].read()
    code, _, err = run("--vault", f"s3://{VAULT}", "restore", "latest", "--to", f"s3://{VAULT}")
    assert code != 0 and f"restore target s3://{VAULT} is in the vault's own bucket" in err
    assert s3.get_object(Bucket=VAULT, Key="config")["Body"].read() == config
    code, _, err = run("--vault", f"s3://{VAULT}", "restore", "latest", "--to", f"s3://{LOGS}")
    assert code != 0 and "is the vault's access-log bucket" in err
    assert _objects(s3, LOGS) == []
