"""`restore --overwrite never|if-changed|always` into S3 and directory targets that already hold some keys, through
the CLI and through the restore state machine's steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Run
from vaultline.repository.vault import Vault
from vaultline.runs import restore_steps
from vaultline.runs.models import PrepareEvent, RestoreFinishEvent, RestoreWorkerEvent, WorkItem
from vaultline.storage import S3Storage

VAULT = "s3://vaults/main"
# same.txt: the target holds it as backed up; changed.txt: the target holds other bytes; new.txt: not there.
BACKED_UP = {"same.txt": b"same", "changed.txt": b"from the backup", "new.txt": b"new"}
EXPECTED = {
    # mode: (objects written, skipped_existing, skipped_unchanged, target's changed.txt afterwards)
    "never": (1, 2, 0, b"edited at the target"),
    "if-changed": (2, 0, 1, b"from the backup"),
    "always": (3, 0, 0, b"from the backup"),
}


@pytest.fixture
def backed_up(run: Run, s3: Any) -> Any:
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="vaults")
    for key, body in BACKED_UP.items():
        s3.put_object(Bucket="src", Key=key, Body=body)
    run("--vault", VAULT, "init")
    assert run("--vault", VAULT, "backup", "s3://src")[0] == 0
    return s3


def _seed_bucket(s3: Any) -> None:
    s3.create_bucket(Bucket="dst")
    s3.put_object(Bucket="dst", Key="same.txt", Body=b"same")
    s3.put_object(Bucket="dst", Key="changed.txt", Body=b"edited at the target")


def _assert_counts(out: str, mode: str) -> bytes:
    """Check the restore's ``--json`` counts against EXPECTED[mode]; return the content ``changed.txt`` should have."""
    result = json.loads(out)
    written, existing, unchanged, changed = EXPECTED[mode]
    assert (result["objects"], result["skipped_existing"], result["skipped_unchanged"]) == (
        written,
        existing,
        unchanged,
    )
    return changed


@pytest.mark.parametrize("mode", ["never", "if-changed", "always"])
def test_restore_into_a_bucket_that_holds_some_keys(run: Run, backed_up: Any, mode: str) -> None:
    s3 = backed_up
    _seed_bucket(s3)

    code, out, err = run("--vault", VAULT, "restore", "latest", "--to", "s3://dst", "--overwrite", mode, "--json")

    assert code == 0, err
    changed = _assert_counts(out, mode)
    assert s3.get_object(Bucket="dst", Key="changed.txt")["Body"].read() == changed
    assert s3.get_object(Bucket="dst", Key="new.txt")["Body"].read() == b"new"


def test_restore_keeps_existing_objects_by_default(run: Run, backed_up: Any) -> None:
    _seed_bucket(backed_up)
    code, _, err = run("--vault", VAULT, "restore", "latest", "--to", "s3://dst")
    assert code == 0
    assert "kept 2 objects already at the target" in err
    assert backed_up.get_object(Bucket="dst", Key="changed.txt")["Body"].read() == b"edited at the target"


@pytest.mark.parametrize("mode", ["never", "if-changed", "always"])
def test_restore_into_a_directory_that_holds_some_files(run: Run, backed_up: Any, tmp_path: Path, mode: str) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "same.txt").write_bytes(b"same")
    # Same size as the backed-up bytes, other content: only the chunk hashes tell them apart.
    (out_dir / "changed.txt").write_bytes(b"FROM THE BACKUP")

    code, out, err = run("--vault", VAULT, "restore", "latest", "--to", str(out_dir), "--overwrite", mode, "--json")

    assert code == 0, err
    _assert_counts(out, mode)
    kept = mode == "never"
    assert (out_dir / "changed.txt").read_bytes() == (b"FROM THE BACKUP" if kept else b"from the backup")
    assert (out_dir / "new.txt").read_bytes() == b"new"


def test_overwrite_is_refused_for_a_table_target(run: Run, backed_up: Any) -> None:
    code, _, err = run("--vault", VAULT, "restore", "latest", "--to", "dynamodb://t", "--overwrite", "always")
    assert code == 2 and "--overwrite applies to s3:// and directory targets" in err


@pytest.mark.parametrize("mode", ["never", "if-changed", "always", None])
def test_restore_steps_take_the_overwrite_mode_from_the_request(backed_up: Any, mode: str | None) -> None:
    s3 = backed_up
    _seed_bucket(s3)
    vault = Vault.open(S3Storage("vaults", "main"))
    request: dict[str, Any] = {"recovery_point": "latest", "target": "s3://dst"}
    if mode:
        request["overwrite"] = mode

    prepared = restore_steps.prepare(vault, PrepareEvent(request=request))
    work_list = json.loads(s3.get_object(Bucket="vaults", Key=prepared.work_list_key)["Body"].read())
    for item in work_list:
        event = RestoreWorkerEvent(restore_id=prepared.restore_id, target="s3://dst", item=WorkItem(**item))
        restore_steps.work(vault, event)
    finished = restore_steps.finish(vault, RestoreFinishEvent(prepared=prepared, target="s3://dst"))

    written, existing, unchanged, changed = EXPECTED[mode or "never"]
    assert (finished.objects, finished.skipped_existing, finished.skipped_unchanged) == (written, existing, unchanged)
    assert s3.get_object(Bucket="dst", Key="changed.txt")["Body"].read() == changed


def test_restore_request_refuses_an_unknown_overwrite_mode() -> None:
    from pydantic import ValidationError

    from vaultline.runs.models import RestoreRequest

    with pytest.raises(ValidationError, match="overwrite"):
        RestoreRequest.model_validate({"recovery_point": "latest", "target": "s3://dst", "overwrite": "sometimes"})


def test_a_target_that_refuses_head_object_fails_naming_the_key_and_the_grant(
    run: Run, backed_up: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    from vaultline import aws

    backed_up.create_bucket(Bucket="dst")

    def denied(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadObject")

    # What S3 answers a role without s3:GetObject on the target (moto does not enforce IAM in this process).
    monkeypatch.setattr(aws.client("s3"), "head_object", denied)
    code, _, err = run("--vault", VAULT, "restore", "latest", "--to", "s3://dst")
    assert code == 1
    assert "s3://dst/changed.txt: cannot tell whether it exists (403)" in err and "s3:GetObject" in err
    assert run("--vault", VAULT, "restore", "latest", "--to", "s3://dst", "--overwrite", "always")[0] == 0
