"""The backup Worker step makes its own requests together (its inputs at the start, the index object and the
result at the end), yet writes in the safe order and fails with the errors it failed with one request at a time."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import random_bytes, set_pack_size
from vaultline.errors import IntegrityError, ObjectMissing, VaultError
from vaultline.repository import locks
from vaultline.repository import vault as vault_module
from vaultline.repository.layout import DATA_PREFIX, INDEX_PREFIX, RESULTS
from vaultline.repository.vault import Vault
from vaultline.runs import backup_steps
from vaultline.runs.models import BackupWorkerEvent, Prepared, PrepareEvent, WorkItem
from vaultline.runs.protocol import StagedRun
from vaultline.storage import S3Storage

OBJECTS = 12
REQUEST = {"source": {"type": "s3", "url": "s3://src"}, "tags_refresh": "never", "worker_concurrency": 1}


@pytest.fixture
def vault(s3: Any) -> Vault:
    s3.create_bucket(Bucket="src")
    s3.create_bucket(Bucket="vaults")
    for number in range(OBJECTS):
        s3.put_object(Bucket="src", Key=f"object-{number:03d}", Body=random_bytes(40_000, number))
    # Packs of about three objects: the batch makes several, the last one stored just before the flush.
    return set_pack_size(Vault.init(S3Storage("vaults", "v")), 100_000)


def _prepared(vault: Vault) -> Prepared:
    prepared = backup_steps.prepare(vault, PrepareEvent(request=REQUEST, execution="exec-1"))
    assert prepared.batches == 1
    return prepared


def _work(vault: Vault, prepared: Prepared) -> Any:
    """Run the one batch's worker on the vault opened afresh, as the handler opens it for each event."""
    opened = Vault.open(S3Storage("vaults", "v"))
    item = WorkItem(batch=0, key=StagedRun(opened, prepared.recovery_point, backup_steps.BackupRun).batch_key(0))
    return backup_steps.work(opened, BackupWorkerEvent(recovery_point=prepared.recovery_point, item=item))


def _record(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """Every storage write of the process as ("start" | "end", method, key), in the order they happened (the
    step's threads append to one list)."""
    events: list[tuple[str, str, str]] = []

    def recorded(name: str) -> Callable[..., Any]:
        method = getattr(S3Storage, name)

        def call(self: S3Storage, key: str, *args: Any) -> Any:
            events.append(("start", name, key))
            try:
                return method(self, key, *args)
            finally:
                events.append(("end", name, key))

        return call

    for name in ("put", "create"):
        monkeypatch.setattr(S3Storage, name, recorded(name))
    return events


def test_a_worker_writes_its_result_and_index_object_only_once_every_pack_and_the_lock_refresh_are_done(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = _prepared(vault)
    events = _record(monkeypatch)
    _work(vault, prepared)

    def when(kind: str, test: Callable[[str], bool]) -> list[int]:
        return [i for i, (event, _, key) in enumerate(events) if event == kind and test(key)]

    packs_stored = when("end", lambda key: key.startswith(DATA_PREFIX))
    index_written = when("start", lambda key: key.startswith(INDEX_PREFIX))
    result_written = when("start", lambda key: RESULTS in key)
    lock_refreshed = when("end", lambda key: key.startswith(locks.LOCK_PREFIX))
    assert len(packs_stored) >= 3 and len(index_written) == 1 and len(result_written) == 1
    assert len(lock_refreshed) == 1
    assert max(packs_stored) < index_written[0]
    assert max(packs_stored) < result_written[0]
    assert lock_refreshed[0] < result_written[0]


def test_a_worker_that_lost_its_lock_fails_naming_it_and_writes_no_result(vault: Vault) -> None:
    prepared = _prepared(vault)
    document = StagedRun(vault, prepared.recovery_point, backup_steps.BackupRun).read()
    assert document.lock_id
    vault.storage.delete(locks.lock_key(document.lock_id))

    with pytest.raises(VaultError, match="lost its lock"):
        _work(vault, prepared)
    assert not list(vault.storage.list(StagedRun(vault, prepared.recovery_point, backup_steps.BackupRun).key(RESULTS)))


def test_a_worker_whose_run_document_is_missing_fails_naming_it(vault: Vault) -> None:
    prepared = _prepared(vault)
    run = StagedRun(vault, prepared.recovery_point, backup_steps.BackupRun)
    # Its batch is gone too: the run document's error is the one raised, as when it was read first and alone.
    vault.storage.delete(run.batch_key(0))
    vault.storage.delete(run.key("run.json"))

    with pytest.raises(ObjectMissing, match=r"run\.json does not exist"):
        _work(vault, prepared)


def test_a_worker_whose_batch_is_missing_fails_naming_it_unless_its_lock_is_lost_too(vault: Vault) -> None:
    prepared = _prepared(vault)
    run = StagedRun(vault, prepared.recovery_point, backup_steps.BackupRun)
    vault.storage.delete(run.batch_key(0))

    with pytest.raises(ObjectMissing, match=f"{run.batch_key(0)} does not exist"):
        _work(vault, prepared)

    # A lost lock was found before the batch was read: it is still the error raised when both fail.
    lock_id = run.read().lock_id
    assert lock_id
    vault.storage.delete(locks.lock_key(lock_id))
    with pytest.raises(VaultError, match="lost its lock"):
        _work(vault, prepared)


def test_a_worker_whose_index_cannot_be_read_fails_with_that_error_and_writes_no_result(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = _prepared(vault)

    def damaged(*args: Any, **kwargs: Any) -> Any:
        raise IntegrityError("index/abc does not hash to its name (corrupt index); run check")

    monkeypatch.setattr(vault_module, "open_dedup_index", damaged)
    with pytest.raises(IntegrityError, match="corrupt index"):
        _work(vault, prepared)
    assert not list(vault.storage.list(StagedRun(vault, prepared.recovery_point, backup_steps.BackupRun).key(RESULTS)))


def test_a_worker_whose_index_object_write_fails_fails_with_that_error(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = _prepared(vault)
    create = S3Storage.create

    def refused(self: S3Storage, key: str, data: bytes) -> bool:
        if key.startswith(INDEX_PREFIX):
            raise VaultError(f"{self.url}: {key}: AccessDenied")
        return create(self, key, data)

    monkeypatch.setattr(S3Storage, "create", refused)
    # The result may be staged beside it: the step fails, so Step Functions runs it again (replacing the result)
    # or aborts the run, and Commit never reads it.
    with pytest.raises(VaultError, match="AccessDenied"):
        _work(vault, prepared)


def test_a_worker_run_again_after_a_failed_index_write_stages_a_result_whose_packs_are_indexed(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = _prepared(vault)
    create = S3Storage.create
    refusing = [True]

    def refused_once(self: S3Storage, key: str, data: bytes) -> bool:
        if key.startswith(INDEX_PREFIX) and refusing[0]:
            refusing[0] = False
            raise VaultError(f"{self.url}: {key}: SlowDown")
        return create(self, key, data)

    monkeypatch.setattr(S3Storage, "create", refused_once)
    with pytest.raises(VaultError, match="SlowDown"):
        _work(vault, prepared)
    summary = _work(vault, prepared)

    result = json.loads(
        vault.cipher.open(
            vault.storage.get(summary.result_key[len("v/") :]), summary.result_key[len("v/") :].encode(), "result"
        )
    )
    indexed = Vault.open(S3Storage("vaults", "v")).lookup
    chunks = [bytes.fromhex(chunk) for entry in result["entries"] for chunk in entry["chunks"]]
    assert len(chunks) >= OBJECTS and all(chunk in indexed for chunk in chunks)
