"""A Prepare that fails on bad input leaves nothing behind: no lock that would block prune, no staged work."""

from __future__ import annotations

from typing import Any

import pytest

from vaultline import locks
from vaultline.errors import SourceError
from vaultline.serverless import backup_steps
from vaultline.serverless.models import PrepareEvent
from vaultline.storage import S3Storage
from vaultline.vault import STAGING_PREFIX, Vault


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
