"""A tag-only change (PutObjectTagging: same ETag, same version) reaches the next recovery point: the tags of
unchanged objects are read again on the plan's cadence, their chunks reused."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import pytest

from tests.integration.conftest import Run
from vaultline.operations import backup
from vaultline.repository.manifest import ObjectEntry, iter_entries, load_recovery_point, resolve_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs import backup_steps, protocol
from vaultline.runs.models import BackupWorkerEvent, CommitEvent, PrepareEvent, WorkItem
from vaultline.sources import S3Source
from vaultline.storage import S3Storage

VAULT = "s3://vaults/main"


@pytest.fixture(autouse=True)
def one_second_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ids order recovery points by their second, and these backups run within one: each gets the next second."""
    seconds = itertools.count()

    def next_id(now: Any = None) -> str:
        return f"20260101T0000{next(seconds):02d}Z-{os.urandom(4).hex()}"

    monkeypatch.setattr(backup, "new_recovery_point_id", next_id)
    monkeypatch.setattr(protocol, "new_recovery_point_id", next_id)


@pytest.fixture
def tagged_bucket(make_bucket: Any, s3: Any) -> Any:
    make_bucket("src", versioned=True)
    make_bucket("vaults")
    s3.put_object(Bucket="src", Key="doc.txt", Body=b"report", Tagging="class=draft")
    s3.put_object(Bucket="src", Key="other.txt", Body=b"other")
    return s3


def _retag(s3: Any) -> None:
    before = s3.head_object(Bucket="src", Key="doc.txt")
    s3.put_object_tagging(Bucket="src", Key="doc.txt", Tagging={"TagSet": [{"Key": "class", "Value": "final"}]})
    after = s3.head_object(Bucket="src", Key="doc.txt")
    assert (before["ETag"], before["VersionId"]) == (after["ETag"], after["VersionId"])  # invisible to the listing


def _tags(vault: Vault, ref: str = "latest") -> dict[str, dict[str, str]]:
    return {e.key: e.tags for e in iter_entries(vault, resolve_recovery_point(vault, ref))}


def test_a_tag_only_change_is_backed_up_and_restored(run: Run, tagged_bucket: Any) -> None:
    s3 = tagged_bucket
    run("--vault", VAULT, "init")
    run("--vault", VAULT, "backup", "s3://src")
    _retag(s3)

    second = json.loads(run("--vault", VAULT, "backup", "s3://src", "--json")[1])

    assert second["objects_unchanged"] == 2 and second["objects_read"] == 0  # no object body read again
    vault = Vault.open(S3Storage("vaults", "main"))
    assert _tags(vault)["doc.txt"] == {"class": "final"}
    assert load_recovery_point(vault, second["recovery_point"]).extra["tags_age"] == 0
    assert run("--vault", VAULT, "restore", "latest", "--to", "s3://restored-bucket")[0] == 1  # no such bucket
    s3.create_bucket(Bucket="restored-bucket")
    assert run("--vault", VAULT, "restore", "latest", "--to", "s3://restored-bucket")[0] == 0
    tag_set = s3.get_object_tagging(Bucket="restored-bucket", Key="doc.txt")["TagSet"]
    assert tag_set == [{"Key": "class", "Value": "final"}]


def test_tags_refresh_never_keeps_the_parents_tags(run: Run, tagged_bucket: Any) -> None:
    run("--vault", VAULT, "init")
    run("--vault", VAULT, "backup", "s3://src")
    _retag(tagged_bucket)
    run("--vault", VAULT, "backup", "s3://src", "--tags-refresh", "never")
    assert _tags(Vault.open(S3Storage("vaults", "main")))["doc.txt"] == {"class": "draft"}


def test_tags_refresh_every_third_backup_reads_tags_on_the_third(run: Run, tagged_bucket: Any) -> None:
    run("--vault", VAULT, "init")
    run("--vault", VAULT, "backup", "s3://src", "--tags-refresh", "3")  # first backup: everything read, age 0
    _retag(tagged_bucket)
    ages = []
    for _ in range(3):
        result = json.loads(run("--vault", VAULT, "backup", "s3://src", "--tags-refresh", "3", "--json")[1])
        vault = Vault.open(S3Storage("vaults", "main"))
        rp = load_recovery_point(vault, result["recovery_point"])
        ages.append((rp.tags_age, _tags(vault, rp.id)["doc.txt"]["class"]))
    assert ages == [(1, "draft"), (2, "draft"), (0, "final")]


def test_bad_tags_refresh_is_a_usage_error(run: Run, tagged_bucket: Any) -> None:
    run("--vault", VAULT, "init")
    code, _, err = run("--vault", VAULT, "backup", "s3://src", "--tags-refresh", "0")
    assert code == 2 and "--tags-refresh '0'" in err


def _serverless_backup(vault: Vault, request: dict[str, Any]) -> Any:
    prepared = backup_steps.prepare(vault, PrepareEvent(request=request))
    storage = vault.storage
    assert isinstance(storage, S3Storage)
    work_list = json.loads(storage.s3.get_object(Bucket=storage.bucket, Key=prepared.work_list_key)["Body"].read())
    for item in work_list:
        backup_steps.work(vault, BackupWorkerEvent(recovery_point=prepared.recovery_point, item=WorkItem(**item)))
    return backup_steps.commit(vault, CommitEvent(prepared=prepared)), len(work_list)


def test_serverless_backup_sees_a_tag_only_change_and_reuses_the_chunks(tagged_bucket: Any) -> None:
    vault = Vault.init(S3Storage("vaults", "v"))
    request = {"source": {"type": "s3", "url": "s3://src"}}
    first, _ = _serverless_backup(vault, request)
    _retag(tagged_bucket)

    second, batches = _serverless_backup(vault, request)

    assert batches == 1  # the unchanged objects' tags are read by a worker, not by Prepare
    assert second.stats.objects_unchanged == 2 and second.stats.bytes_read == 0
    assert _tags(vault, second.recovery_point)["doc.txt"] == {"class": "final"}
    old = {e.key: e.chunks for e in iter_entries(vault, load_recovery_point(vault, first.recovery_point))}
    new = {e.key: e.chunks for e in iter_entries(vault, load_recovery_point(vault, second.recovery_point))}
    assert new == old


def test_serverless_backup_with_tags_refresh_never_carries_unchanged_objects_in_prepare(tagged_bucket: Any) -> None:
    vault = Vault.init(S3Storage("vaults", "v"))
    request = {"source": {"type": "s3", "url": "s3://src"}, "tags_refresh": "never"}
    _serverless_backup(vault, request)
    _retag(tagged_bucket)
    second, batches = _serverless_backup(vault, request)
    assert batches == 0
    assert _tags(vault, second.recovery_point)["doc.txt"] == {"class": "draft"}


def test_an_unchanged_object_deleted_before_its_tags_are_read_is_recorded_as_vanished(tagged_bucket: Any) -> None:
    s3 = tagged_bucket
    vault = Vault.init(S3Storage("vaults", "v"))
    request = {"source": {"type": "s3", "url": "s3://src"}}
    _serverless_backup(vault, request)
    prepared = backup_steps.prepare(vault, PrepareEvent(request=request))
    for version in s3.list_object_versions(Bucket="src", Prefix="other.txt")["Versions"]:
        s3.delete_object(Bucket="src", Key="other.txt", VersionId=version["VersionId"])
    work_list = json.loads(s3.get_object(Bucket="vaults", Key=prepared.work_list_key)["Body"].read())
    for item in work_list:
        backup_steps.work(vault, BackupWorkerEvent(recovery_point=prepared.recovery_point, item=WorkItem(**item)))

    committed = backup_steps.commit(vault, CommitEvent(prepared=prepared))

    assert [(i.key, i.kind) for i in committed.issues.objects] == [("other.txt", "vanished")]
    assert set(_tags(vault, committed.recovery_point)) == {"doc.txt"}


def test_a_lambda_worker_batch_does_not_read_an_unchanged_object_again(
    tagged_bucket: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3 = tagged_bucket
    vault = Vault.init(S3Storage("vaults", "v"))
    request = {"source": {"type": "s3", "url": "s3://src"}}
    _serverless_backup(vault, request)
    s3.put_object(Bucket="src", Key="other.txt", Body=b"other, edited")
    opened: list[str] = []
    opens = S3Source.open

    def spy(self: S3Source, entry: ObjectEntry) -> Any:
        opened.append(entry.key)
        return opens(self, entry)

    monkeypatch.setattr(S3Source, "open", spy)

    second, batches = _serverless_backup(vault, request)

    # Both objects went to a worker (the unchanged one for its tags), in one batch, and only the edited one was read.
    assert batches == 1
    assert opened == ["other.txt"]
    assert second.stats.objects_unchanged == 1 and second.stats.objects_read == 1
