"""Objects a backup cannot read: archived ones (skipped and reported, or failing the run when the plan says so) and
ones deleted between the listing and the read (vanished). Both through the CLI and through the serverless steps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tests.integration.conftest import Run
from vaultline import aws
from vaultline.repository.layout import STAGING_PREFIX
from vaultline.repository.manifest import iter_entries, list_recovery_point_ids, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs import backup_steps
from vaultline.runs.models import AbortEvent, BackupWorkerEvent, CommitEvent, Prepared, PrepareEvent, WorkItem
from vaultline.sources.base import ObjectArchived
from vaultline.storage import S3Storage

VAULT = "s3://vaults/main"


@pytest.fixture
def archive_bucket(s3: Any) -> str:
    """One object of every storage class that matters: two need a restore first, the others are readable."""
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="vaults")
    s3.put_object(Bucket="src", Key="hot.txt", Body=b"hot")
    s3.put_object(Bucket="src", Key="cold/glacier.bin", Body=b"g", StorageClass="GLACIER")
    s3.put_object(Bucket="src", Key="cold/deep.bin", Body=b"d", StorageClass="DEEP_ARCHIVE")
    s3.put_object(Bucket="src", Key="instant.bin", Body=b"ir", StorageClass="GLACIER_IR")
    s3.put_object(Bucket="src", Key="thawed.bin", Body=b"thawed", StorageClass="GLACIER")
    # moto answers a restored object's HEAD with x-amz-restore: ongoing-request="false" and lets GetObject read it.
    s3.restore_object(Bucket="src", Key="thawed.bin", RestoreRequest={"Days": 1})
    assert 'ongoing-request="false"' in s3.head_object(Bucket="src", Key="thawed.bin")["Restore"]
    return "src"


READABLE = {"hot.txt": b"hot", "instant.bin": b"ir", "thawed.bin": b"thawed"}


def test_archived_objects_are_skipped_and_the_recovery_point_completes_with_issues(
    run: Run, archive_bucket: str
) -> None:
    run("--vault", VAULT, "init")

    code, out, _ = run("--vault", VAULT, "backup", "s3://src", "--json")

    assert code == 0
    result = json.loads(out)
    assert result["status"] == "completed_with_issues"
    assert result["errors"] == 2 and result["objects"] == 3
    assert result["issues"]["archived"] == 2 and result["issues"]["vanished"] == 0
    skipped = {i["key"]: i["storage_class"] for i in result["issues"]["objects"]}
    assert skipped == {"cold/deep.bin": "DEEP_ARCHIVE", "cold/glacier.bin": "GLACIER"}
    assert all("must be restored from the archive" in i["reason"] for i in result["issues"]["objects"])

    vault = Vault.open(S3Storage("vaults", "main"))
    rp = load_recovery_point(vault, result["recovery_point"])
    assert {e.key for e in iter_entries(vault, rp)} == set(READABLE)
    assert rp.extra["issues"]["archived"] == 2
    code, out, _ = run("--vault", VAULT, "restore", "latest", "--to", "s3://src/restored", "--json")
    assert code == 0 and json.loads(out)["objects"] == 3

    listed = json.loads(run("--vault", VAULT, "list", "--json")[1])
    assert listed[0]["status"] == "completed_with_issues"
    assert listed[0]["issues"] == {"archived": 2, "vanished": 0}
    assert "with issues: 2 archived objects skipped" in run("--vault", VAULT, "list")[1]


def test_a_clean_recovery_point_lists_as_completed(run: Run, s3: Any) -> None:
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="vaults")
    s3.put_object(Bucket="src", Key="a", Body=b"a")
    run("--vault", VAULT, "init")
    assert json.loads(run("--vault", VAULT, "backup", "s3://src", "--json")[1])["status"] == "completed"
    listed = json.loads(run("--vault", VAULT, "list", "--json")[1])
    assert listed[0]["status"] == "completed" and listed[0]["issues"] == {"archived": 0, "vanished": 0}


def test_archived_objects_fail_the_backup_when_the_plan_says_fail(run: Run, archive_bucket: str) -> None:
    run("--vault", VAULT, "init")

    code, _, err = run("--vault", VAULT, "backup", "s3://src", "--archived-objects", "fail")

    assert code == 1
    assert "s3://src/cold/deep.bin: storage class DEEP_ARCHIVE must be restored" in err
    assert "Traceback" not in err
    assert json.loads(run("--vault", VAULT, "list", "--json")[1]) == []


@pytest.fixture
def intelligent_tiering_archive(s3: Any) -> Iterator[str]:
    """An INTELLIGENT_TIERING object in its Archive Access tier. moto has no archive tiers for Intelligent-Tiering
    (its GetObject reads such an object), so the engine's client answers GetObject as S3 does: InvalidObjectState
    with the StorageClass and AccessTier elements S3 puts in the error. The listing is moto's."""
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="vaults")
    s3.put_object(Bucket="src", Key="tiered.bin", Body=b"t", StorageClass="INTELLIGENT_TIERING")
    s3.put_object(Bucket="src", Key="plain.bin", Body=b"p")

    def archived(params: dict[str, Any], **_: Any) -> Any:
        if params["url_path"].endswith("/tiered.bin"):
            error = {
                "Code": "InvalidObjectState",
                "Message": "The operation is not valid for the object's access tier",
                "StorageClass": "INTELLIGENT_TIERING",
                "AccessTier": "ARCHIVE_ACCESS",
            }
            return SimpleNamespace(status_code=403), {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}
        return None

    engine_s3 = aws.client("s3")
    engine_s3.meta.events.register("before-call.s3.GetObject", archived)
    yield "src"
    engine_s3.meta.events.unregister("before-call.s3.GetObject", archived)


def test_an_intelligent_tiering_object_in_an_archive_tier_is_skipped_naming_its_tier(
    run: Run, intelligent_tiering_archive: str
) -> None:
    run("--vault", VAULT, "init")
    result = json.loads(run("--vault", VAULT, "backup", "s3://src", "--json")[1])
    assert result["objects"] == 1
    [issue] = result["issues"]["objects"]
    assert issue["key"] == "tiered.bin" and issue["storage_class"] == "INTELLIGENT_TIERING (ARCHIVE_ACCESS)"


def _prepare(vault: Vault, request: dict[str, Any]) -> tuple[Prepared, list[dict[str, Any]]]:
    prepared = backup_steps.prepare(vault, PrepareEvent(request=request))
    storage = vault.storage
    assert isinstance(storage, S3Storage)
    body = storage.s3.get_object(Bucket=storage.bucket, Key=prepared.work_list_key)["Body"].read()
    return prepared, json.loads(body)


def _work(vault: Vault, prepared: Prepared, work_list: list[dict[str, Any]]) -> list[Any]:
    event = BackupWorkerEvent
    return [
        backup_steps.work(vault, event(recovery_point=prepared.recovery_point, item=WorkItem(**i))) for i in work_list
    ]


def test_serverless_steps_skip_archived_objects_and_report_them_in_the_commit_result(archive_bucket: str) -> None:
    vault = Vault.init(S3Storage("vaults", "v"))
    prepared, work_list = _prepare(vault, {"source": {"type": "s3", "url": "s3://src"}})

    summaries = _work(vault, prepared, work_list)
    committed = backup_steps.commit(vault, CommitEvent(prepared=prepared))

    assert sum(s.archived for s in summaries) == 2
    assert committed.status == "completed_with_issues"
    assert committed.issues.archived == 2 and committed.stats.objects == 3
    assert [i.key for i in committed.issues.objects] == ["cold/deep.bin", "cold/glacier.bin"]
    rp = load_recovery_point(vault, committed.recovery_point)
    assert rp.status == "completed_with_issues"
    assert {e.key for e in iter_entries(vault, rp)} == set(READABLE)


def test_serverless_worker_fails_on_an_archived_object_when_the_plan_says_fail(archive_bucket: str) -> None:
    vault = Vault.init(S3Storage("vaults", "v"))
    request = {"source": {"type": "s3", "url": "s3://src"}, "archived_objects": "fail"}
    prepared, work_list = _prepare(vault, request)

    with pytest.raises(ObjectArchived, match=r"s3://src/cold/deep\.bin: storage class DEEP_ARCHIVE"):
        _work(vault, prepared, work_list)
    backup_steps.abort(vault, _abort_event(prepared))
    assert list_recovery_point_ids(vault) == []
    assert list(vault.storage.list(STAGING_PREFIX)) == []


def _abort_event(prepared: Prepared) -> AbortEvent:
    return AbortEvent(prepared=prepared.model_dump(), error={"Error": "ObjectArchived"})


@pytest.mark.parametrize("versioned", [False, True])
def test_serverless_worker_records_a_key_deleted_after_prepare_as_vanished(
    s3: Any, make_bucket: Any, versioned: bool
) -> None:
    make_bucket("src", versioned=versioned)
    make_bucket("vaults")
    for key in ("a", "b", "c"):
        s3.put_object(Bucket="src", Key=key, Body=key.encode())
    vault = Vault.init(S3Storage("vaults", "v"))
    prepared, work_list = _prepare(vault, {"source": {"type": "s3", "url": "s3://src"}})
    if versioned:
        # The listed version itself is gone (not just hidden by a delete marker): GetObject answers NoSuchVersion.
        version = s3.head_object(Bucket="src", Key="b")["VersionId"]
        s3.delete_object(Bucket="src", Key="b", VersionId=version)
    else:
        s3.delete_object(Bucket="src", Key="b")

    summaries = _work(vault, prepared, work_list)
    committed = backup_steps.commit(vault, CommitEvent(prepared=prepared))

    assert sum(s.vanished for s in summaries) == 1
    assert committed.status == "completed_with_issues" and committed.issues.vanished == 1
    [issue] = committed.issues.objects
    assert issue.key == "b" and issue.kind == "vanished"
    assert ("NoSuchVersion" if versioned else "NoSuchKey") in issue.reason
    rp = load_recovery_point(vault, committed.recovery_point)
    assert {e.key for e in iter_entries(vault, rp)} == {"a", "c"}
    assert rp.stats.objects == 2


def test_cli_backup_records_a_key_deleted_between_listing_and_reading_as_vanished(
    run: Run, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="vaults")
    for key in ("a", "b", "c"):
        s3.put_object(Bucket="src", Key=key, Body=key.encode())
    run("--vault", VAULT, "init")
    from vaultline.sources.s3 import S3Source

    listing = S3Source.list

    def list_then_delete(self: S3Source) -> Iterator[Any]:
        items = list(listing(self))
        s3.delete_object(Bucket="src", Key="b")  # after the listing, before any read
        yield from items

    monkeypatch.setattr(S3Source, "list", list_then_delete)
    code, out, err = run("--vault", VAULT, "backup", "s3://src", "--json")

    assert code == 0, err
    result = json.loads(out)
    assert result["objects"] == 2 and result["status"] == "completed_with_issues"
    assert result["issues"]["vanished"] == 1 and result["issues"]["objects"][0]["key"] == "b"
