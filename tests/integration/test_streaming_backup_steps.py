"""The serverless S3 backup in parts: Prepare stages bounded parts as the listing streams by, Commit merges them as
streams and refuses to commit a recovery point that lacks one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from vaultline.errors import IntegrityError
from vaultline.repository import locks
from vaultline.repository.layout import RESULTS, STAGING_PREFIX
from vaultline.repository.manifest import (
    ObjectEntry,
    iter_entries,
    list_recovery_point_ids,
    load_recovery_point,
)
from vaultline.repository.vault import Vault
from vaultline.runs import backup_parts, backup_steps
from vaultline.runs.models import BackupBatch, BackupWorkerEvent, CommitEvent, Prepared, PrepareEvent, WorkItem
from vaultline.runs.protocol import StagedRun
from vaultline.sources import S3Source
from vaultline.storage import S3Storage

OBJECTS = 300
CARRIED_PART = 25
REQUEST = {"source": {"type": "s3", "url": "s3://src"}, "tags_refresh": "never"}


@pytest.fixture
def bucket(s3: Any) -> Any:
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="vaults")
    for number in range(OBJECTS):
        s3.put_object(Bucket="src", Key=f"data/{number % 7}/object-{number:05d}", Body=b"%d" % number)
    return s3


@pytest.fixture
def vault(bucket: Any, monkeypatch: pytest.MonkeyPatch) -> Vault:
    monkeypatch.setattr(backup_parts, "CARRIED_PART_OBJECTS", CARRIED_PART)
    return Vault.init(S3Storage("vaults", "v"))


def _work(vault: Vault, prepared: Prepared) -> None:
    storage = vault.storage
    assert isinstance(storage, S3Storage)
    work_list = json.loads(storage.s3.get_object(Bucket=storage.bucket, Key=prepared.work_list_key)["Body"].read())
    for item in work_list:
        backup_steps.work(vault, BackupWorkerEvent(recovery_point=prepared.recovery_point, item=WorkItem(**item)))


def _backup(vault: Vault) -> str:
    prepared = backup_steps.prepare(vault, PrepareEvent(request=REQUEST))
    _work(vault, prepared)
    return backup_steps.commit(vault, CommitEvent(prepared=prepared)).recovery_point


def _staged_entries(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every document Prepare stages, by name, with the number of entries it holds."""
    staged: list[tuple[str, int]] = []
    puts = StagedRun.put

    def spy(self: StagedRun[Any], name: str, value: Any) -> None:
        held = [getattr(value, field, []) for field in ("entries", "read", "retag")]
        staged.append((name, sum(len(entries) for entries in held)))
        puts(self, name, value)

    monkeypatch.setattr(StagedRun, "put", spy)
    return staged


def test_an_incremental_backup_of_many_objects_is_staged_in_bounded_parts_and_committed_whole(
    bucket: Any, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backup(vault)
    for number in (3, 200, 250):
        bucket.put_object(Bucket="src", Key=f"data/{number % 7}/object-{number:05d}", Body=b"edited")
    staged = _staged_entries(monkeypatch)

    second = _backup(vault)

    carried = [held for name, held in staged if name.startswith(f"{RESULTS}carried-")]
    batches = [held for name, held in staged if name.startswith("batches/")]
    assert len(carried) == -(-(OBJECTS - 3) // CARRIED_PART) and max(carried) <= CARRIED_PART
    assert batches == [3]
    old = {e.key: e for e in iter_entries(vault, load_recovery_point(vault, first))}
    rp = load_recovery_point(vault, second)
    new = list(iter_entries(vault, rp))
    assert [e.key for e in new] == sorted(old) and rp.entry_count == OBJECTS
    changed = {e.key for e in new if e.chunks != old[e.key].chunks}
    assert changed == {"data/3/object-00003", "data/4/object-00200", "data/5/object-00250"}
    assert rp.stats.objects == OBJECTS and rp.stats.objects_unchanged == OBJECTS - 3 and rp.stats.objects_read == 3
    assert list(vault.storage.list(STAGING_PREFIX)) == []


def test_a_listing_out_of_key_order_is_refused_and_nothing_is_left_staged(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = S3Source.list

    def shuffled(self: S3Source) -> Iterator[ObjectEntry]:
        listed = list(lists(self))
        yield from [listed[1], listed[0], *listed[2:]]

    monkeypatch.setattr(S3Source, "list", shuffled)
    with pytest.raises(IntegrityError, match=r"listing of s3://src: entries out of key order"):
        backup_steps.prepare(vault, PrepareEvent(request=REQUEST))
    assert list(vault.storage.list(STAGING_PREFIX)) == []
    assert list(vault.storage.list(locks.LOCK_PREFIX)) == []


@pytest.mark.parametrize("lost", ["000000", "carried-000004"])
def test_commit_of_a_run_that_lost_a_part_fails_naming_it_and_writes_no_manifest(
    bucket: Any, vault: Vault, lost: str
) -> None:
    _backup(vault)
    before = list_recovery_point_ids(vault)
    bucket.put_object(Bucket="src", Key="data/0/object-00000", Body=b"edited")  # one batch, and carried parts
    prepared = backup_steps.prepare(vault, PrepareEvent(request=REQUEST))
    _work(vault, prepared)
    run = StagedRun(vault, prepared.recovery_point, Prepared)
    vault.storage.delete(run.result_key(lost))

    with pytest.raises(IntegrityError, match=rf"results of 1 work items \['{lost}'\] are missing"):
        backup_steps.commit(vault, CommitEvent(prepared=prepared))

    assert list_recovery_point_ids(vault) == before


def test_a_batch_carries_its_changed_objects_parent_chunks_and_the_worker_dedups_against_them(
    bucket: Any, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _backup(vault)
    old = {e.key: e for e in iter_entries(vault, load_recovery_point(vault, first))}
    # Written again with the same bytes: changed (a new mtime), so read, and its chunk is its parent entry's.
    bucket.put_object(Bucket="src", Key="data/3/object-00003", Body=b"3")
    staged: list[BackupBatch] = []
    puts = StagedRun.put

    def spy(self: StagedRun[Any], name: str, value: Any) -> None:
        if isinstance(value, BackupBatch):
            staged.append(value)
        puts(self, name, value)

    monkeypatch.setattr(StagedRun, "put", spy)
    asked: list[bytes] = []
    lookup = type(vault.lookup)
    contains = lookup.__contains__
    monkeypatch.setattr(lookup, "__contains__", lambda self, blob_id: asked.append(blob_id) or contains(self, blob_id))

    second = load_recovery_point(vault, _backup(vault))

    [batch] = staged
    parent_chunks = old["data/3/object-00003"].chunks
    assert batch.parent_chunk_keys() == {bytes.fromhex(c)[:16] for c in parent_chunks} != set()
    assert asked and not batch.parent_chunk_keys() & {a[:16] for a in asked}  # deduped without asking the index
    assert second.stats.objects_read == 1 and second.stats.duplicate_chunks >= 1
    assert second.stats.new_chunks == 1  # the entry stream only
