"""The copy's bounded steps (what a Copy state machine runs): Prepare stages batches in the source, items copy
them in any order (a retried one is harmless), Commit writes the manifest last; a failed run leaves nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

import vaultline.operations.copy as copy_module
from tests.integration.conftest import Run
from vaultline.aws import role_client
from vaultline.errors import IntegrityError, RecoveryPointNotFound, UsageError, VaultError
from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.copy import copied_from
from vaultline.repository.layout import STAGING_PREFIX
from vaultline.repository.manifest import list_recovery_point_ids, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs import copy_steps
from vaultline.runs.copy_models import (
    CopyCommitEvent,
    CopyItemEvent,
    CopyPrepareEvent,
    CopyRequest,
    CopyTarget,
    CopyWorkItem,
)
from vaultline.sources import S3Source
from vaultline.storage import S3Storage

KiB = 1024


@pytest.fixture
def objects(s3: Any, rand: Callable[[int, int], bytes]) -> dict[str, bytes]:
    s3.create_bucket(Bucket="data")
    made = {f"obj-{i:02d}.bin": rand(64 * KiB * (i + 1), i) for i in range(10)}
    for key, body in made.items():
        s3.put_object(Bucket="data", Key=key, Body=body)
    return made


@pytest.fixture
def vaults(s3: Any, kms: Any, small_packs: Callable[[Vault, int], Vault]) -> tuple[Vault, Vault]:
    s3.create_bucket(Bucket="vault-src")
    boto3.client("s3", region_name="eu-west-1").create_bucket(
        Bucket="vault-dst", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
    )
    here = kms.create_key()["KeyMetadata"]["Arn"]
    there = boto3.client("kms", region_name="eu-west-1").create_key()["KeyMetadata"]["Arn"]
    source = small_packs(Vault.init(S3Storage("vault-src", "v"), encryption="kms", kms_key_id=here), 256 * KiB)
    target = Vault.init(S3Storage("vault-dst", "v"), encryption="kms", kms_key_id=there)
    return source, target


def work_items(source: Vault, planned: Any) -> list[CopyWorkItem]:
    raw = source.storage.get(planned.work_list_key[len("v/") :])
    return [CopyWorkItem.model_validate(item) for item in json.loads(raw)]


def test_staged_batches_copied_in_any_order_and_retried_commit_a_copy_that_restores_bit_exact(
    run: Run,
    vaults: tuple[Vault, Vault],
    objects: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    read_tree: Callable[[Path], dict[str, bytes]],
) -> None:
    source, target = vaults
    rp = run_backup(source, S3Source("s3://data"))
    monkeypatch.setattr(copy_module, "BATCH_ENTRIES", 3)  # several map items from ten objects
    planned = copy_steps.prepare(source, target, CopyPrepareEvent(recovery_point=rp.id))
    work = work_items(source, planned)
    assert planned.items == len(work) == 4 and not planned.skipped
    assert list(target.storage.list("locks/")) and not list(target.storage.list(STAGING_PREFIX))

    results = [copy_steps.item(source, target, CopyItemEvent(run_id=planned.run_id, item=w)) for w in work[::-1]]
    again = copy_steps.item(source, target, CopyItemEvent(run_id=planned.run_id, item=work[0]))
    assert again.chunks_copied == 0 and again.chunks_present == results[-1].chunks_copied
    assert list_recovery_point_ids(Vault.open(target.storage)) == []  # nothing is there before the commit

    done = copy_steps.commit(source, target, CopyCommitEvent(copying=planned))
    assert done.copied and done.entries == len(objects)
    assert list(target.storage.list("locks/")) == [] and list(source.storage.list(STAGING_PREFIX)) == []
    copy = Vault.open(target.storage)
    record = copied_from(load_recovery_point(copy, rp.id))
    assert record and record.vault_id == source.config.vault_id
    assert check_vault(copy, read_data=True).ok
    code, _, err = run("--vault", "s3://vault-dst/v", "restore", rp.id, "--to", str(tmp_path / "out"))
    assert code == 0, err
    assert read_tree(tmp_path / "out") == objects

    skipped = copy_steps.prepare(source, target, CopyPrepareEvent(recovery_point=rp.id))
    assert skipped.skipped and skipped.run_id is None
    assert not copy_steps.commit(source, target, CopyCommitEvent(copying=skipped)).copied


def test_a_commit_missing_an_items_result_fails_and_abort_leaves_no_lock_no_staging_no_point(
    vaults: tuple[Vault, Vault], objects: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = vaults
    rp = run_backup(source, S3Source("s3://data"))
    monkeypatch.setattr(copy_module, "BATCH_ENTRIES", 4)
    planned = copy_steps.prepare(source, target, CopyPrepareEvent(recovery_point=rp.id))
    work = work_items(source, planned)
    copy_steps.item(source, target, CopyItemEvent(run_id=planned.run_id, item=work[0]))
    with pytest.raises(IntegrityError, match="missing"):
        copy_steps.commit(source, target, CopyCommitEvent(copying=planned))
    assert planned.run_id
    copy_steps.abort(source, target, planned.run_id)
    assert list(target.storage.list("locks/")) == [] and list(source.storage.list(STAGING_PREFIX)) == []
    assert list_recovery_point_ids(Vault.open(target.storage)) == []


def test_an_item_of_a_run_into_another_vault_is_refused(
    s3: Any, vaults: tuple[Vault, Vault], objects: dict[str, bytes]
) -> None:
    source, target = vaults
    rp = run_backup(source, S3Source("s3://data"))
    planned = copy_steps.prepare(source, target, CopyPrepareEvent(recovery_point=rp.id))
    s3.create_bucket(Bucket="elsewhere")
    other = Vault.init(S3Storage("elsewhere"))
    item = CopyItemEvent(run_id=planned.run_id, item=work_items(source, planned)[0])
    with pytest.raises(VaultError, match="not into s3://elsewhere"):
        copy_steps.item(source, other, item)


def test_a_scheduled_request_copies_the_newest_of_its_source_and_the_target_keeps_by_copy_to_keep(
    run: Run, vaults: tuple[Vault, Vault], objects: dict[str, bytes], s3: Any
) -> None:
    source, target = vaults
    first = run_backup(source, S3Source("s3://data"))
    copy_target = CopyTarget(vault=target.url)
    request = CopyRequest(target=copy_target, source="s3://data", keep={"keep_last": 1})
    planned = copy_steps.prepare_request(source, target, request)
    assert planned.recovery_point == first.id
    for w in work_items(source, planned):
        copy_steps.item(source, target, CopyItemEvent(run_id=planned.run_id, item=w))
    assert copy_steps.commit(source, target, CopyCommitEvent(copying=planned, keep=request.keep)).forgotten == []

    s3.put_object(Bucket="data", Key="obj-new.bin", Body=b"changed")
    second = run_backup(source, S3Source("s3://data"))
    planned = copy_steps.prepare_request(source, target, request)
    assert planned.recovery_point == second.id
    for w in work_items(source, planned):
        copy_steps.item(source, target, CopyItemEvent(run_id=planned.run_id, item=w))
    done = copy_steps.commit(source, target, CopyCommitEvent(copying=planned, keep=request.keep))

    assert done.copied and done.forgotten == [first.id] and done.forgotten_count == 1
    assert list_recovery_point_ids(Vault.open(target.storage)) == [second.id]
    assert sorted(list_recovery_point_ids(source)) == sorted([first.id, second.id])  # the source keeps its own


def test_a_request_names_exactly_one_of_recovery_point_and_source(vaults: tuple[Vault, Vault]) -> None:
    source, target = vaults
    with pytest.raises(UsageError, match="exactly one"):
        copy_steps.prepare_request(source, target, CopyRequest(target=CopyTarget(vault=target.url)))
    with pytest.raises(RecoveryPointNotFound, match="no recovery points of source s3://nothing"):
        copy_steps.prepare_request(
            source, target, CopyRequest(target=CopyTarget(vault=target.url), source="s3://nothing")
        )


def test_the_target_is_unlocked_with_the_kms_clients_it_is_opened_with(vaults: tuple[Vault, Vault]) -> None:
    asked: list[str | None] = []

    def recording(region: str | None) -> Any:
        asked.append(region)
        return boto3.client("kms", region_name=region)

    Vault.open(S3Storage("vault-dst", "v"), kms=recording)
    assert asked == ["eu-west-1"]  # the target key's own region, through the caller's client


def test_a_target_named_with_a_role_is_opened_as_that_role(vaults: tuple[Vault, Vault]) -> None:
    _, target = vaults
    role = "arn:aws:iam::123456789012:role/dr-copy"
    opened = copy_steps.open_copy_target(CopyTarget(vault="s3://vault-dst/v", role_arn=role, region="eu-west-1"))
    assert opened.config.vault_id == target.config.vault_id
    assert isinstance(opened.storage, S3Storage)
    assert opened.storage.s3 is role_client("s3", role, "eu-west-1")
