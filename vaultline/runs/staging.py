"""Opening the deployed vault from a step's environment."""

from __future__ import annotations

import os
from typing import TypeVar

from pydantic import BaseModel

from vaultline.errors import VaultError, VaultExists, VaultNotFound
from vaultline.repository.object_lock import VaultObjectLock, create_object_lock, object_lock_from_environment
from vaultline.repository.vault import Vault
from vaultline.storage import S3Storage

M = TypeVar("M", bound=BaseModel)
# Whether this step may create the vault (infra sets it true only for the Prepare steps of a backup).
CREATE_ENV = "VAULT_CREATE"


def vault_from_environment() -> Vault:
    """Open (or on first use create) the vault the deployed stack points at.

    ``VAULT_URL`` names it; ``VAULT_ENCRYPTION`` and ``VAULT_KMS_KEY_ID`` say how a new one is created, and only a
    step with ``VAULT_CREATE`` true (or unset) creates one: the others find VaultNotFound. ``VAULT_OBJECT_LOCK_*``
    say what the writes lock (vaultline/repository/object_lock.py); a new vault records them in its ``object-lock``
    object.
    """
    url = os.environ.get("VAULT_URL")
    if not url or not url.startswith("s3://"):
        raise VaultError("VAULT_URL must be set to the vault's s3://bucket[/prefix]")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    storage = S3Storage(bucket, prefix)
    overridden, lock_settings = object_lock_from_environment()
    if overridden:
        storage.lock_policy = VaultObjectLock.fixed(lock_settings)
    try:
        return Vault.open(storage)
    except VaultNotFound:
        if os.environ.get(CREATE_ENV, "true").lower() != "true":
            raise
    encryption = os.environ.get("VAULT_ENCRYPTION", "kms")
    try:
        vault = Vault.init(storage, "kms" if encryption == "kms" else "none", os.environ.get("VAULT_KMS_KEY_ID"))
    except VaultExists:
        # Another first run created it between our read and our write (the create is conditional): use theirs.
        return Vault.open(storage)
    if lock_settings is not None:
        create_object_lock(storage, lock_settings)
        storage.lock_policy = VaultObjectLock.fixed(lock_settings)
    return vault


# What follows serves the DynamoDB steps (runs/table_steps.py, operations/table_backup.py) until they open their
# runs through the staged-run protocol (vaultline.runs.protocol), which the S3 backup and restore steps use.
