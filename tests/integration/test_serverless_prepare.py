"""A Prepare that fails on bad input leaves nothing behind: no lock that would block prune, no staged work."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from vaultline.errors import SourceError, VaultError
from vaultline.repository import locks
from vaultline.repository.layout import STAGING_PREFIX
from vaultline.repository.vault import Vault
from vaultline.runs import backup_steps
from vaultline.runs.models import PrepareEvent
from vaultline.runs.protocol import StagedRun
from vaultline.storage import S3Storage


def test_prepare_of_a_missing_bucket_fails_naming_it_and_releases_its_lock(s3: Any) -> None:
    s3.create_bucket(Bucket="vault-bucket")
    vault = Vault.init(S3Storage("vault-bucket", "v"))
    event = PrepareEvent(request={"source": {"type": "s3", "url": "s3://no-such-bucket"}}, execution="exec-1")

    with pytest.raises(SourceError, match="no-such-bucket does not exist"):
        backup_steps.prepare(vault, event)

    assert list(vault.storage.list(locks.LOCK_PREFIX)) == []
    assert list(vault.storage.list(STAGING_PREFIX)) == []
    # The lock really was taken and given back: an exclusive lock (what prune takes) is free at once.
    locks.release(vault.storage, locks.acquire(vault.storage, "prune", exclusive=True))


def _failing_after_staging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prepare fails after it staged its batches (writing the work list is its last step)."""

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("work list write failed")

    monkeypatch.setattr(StagedRun, "write_work_list", fail)


def test_a_failed_prepare_deletes_what_it_staged(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.create_bucket(Bucket="vault-bucket")
    s3.create_bucket(Bucket="source")
    s3.put_object(Bucket="source", Key="a", Body=b"a")
    vault = Vault.init(S3Storage("vault-bucket", "v"))
    _failing_after_staging(monkeypatch)
    with pytest.raises(RuntimeError, match="work list write failed"):
        backup_steps.prepare(vault, PrepareEvent(request={"source": {"type": "s3", "url": "s3://source"}}))
    assert list(vault.storage.list(STAGING_PREFIX)) == []
    assert list(vault.storage.list(locks.LOCK_PREFIX)) == []


def test_a_cleanup_that_fails_is_logged_with_its_key_and_the_original_error_is_raised(
    s3: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s3.create_bucket(Bucket="vault-bucket")
    s3.create_bucket(Bucket="source")
    s3.put_object(Bucket="source", Key="a", Body=b"a")
    vault = Vault.init(S3Storage("vault-bucket", "v"))
    _failing_after_staging(monkeypatch)
    deletes = S3Storage.delete

    def denied(self: S3Storage, key: str) -> None:
        if key.startswith(STAGING_PREFIX):  # a role that may delete only locks/*, as before issue 9
            raise VaultError(f"{self.url}: {key}: AccessDenied")
        deletes(self, key)

    monkeypatch.setattr(S3Storage, "delete", denied)
    request = PrepareEvent(request={"source": {"type": "s3", "url": "s3://source"}})
    with (
        caplog.at_level(logging.ERROR, logger="vaultline.runs.protocol"),
        pytest.raises(RuntimeError, match="work list write failed"),
    ):
        backup_steps.prepare(vault, request)
    (record,) = [r for r in caplog.records if "could not delete its staging" in r.getMessage()]
    staged = [o.key for o in vault.storage.list(STAGING_PREFIX)]
    assert staged and any(f"{key}: AccessDenied" in record.getMessage() for key in staged)
    # The lock is still released: a cleanup failure of one kind does not stop the other.
    assert list(vault.storage.list(locks.LOCK_PREFIX)) == []
