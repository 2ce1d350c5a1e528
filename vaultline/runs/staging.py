"""Opening the deployed vault from a step's environment; and the staging helpers the DynamoDB steps still use."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any, TypeVar

from pydantic import BaseModel

from vaultline.errors import VaultError, VaultExists, VaultNotFound
from vaultline.repository import locks
from vaultline.repository.object_lock import create_object_lock, object_lock_from_environment
from vaultline.repository.vault import Vault
from vaultline.runs.protocol import StagedRun, clean_map_results, s3_storage
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
        storage.use_object_lock(lock_settings)
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
        storage.use_object_lock(lock_settings)
    return vault


# What follows serves the DynamoDB steps (runs/table_steps.py, operations/table_backup.py) until they open their
# runs through the staged-run protocol (vaultline.runs.protocol), which the S3 backup and restore steps use.


def put_sealed(vault: Vault, key: str, value: BaseModel) -> None:
    """Stage a document sealed like everything else in the vault (it holds keys, metadata and tags)."""
    vault.storage.put(key, vault.cipher.seal(value.model_dump_json().encode(), key.encode()))


def get_sealed(vault: Vault, key: str, model: type[M]) -> M:
    return model.model_validate_json(vault.cipher.open(vault.storage.get(key), key.encode(), f"{vault.url}: {key}"))


def put_work_list(vault: Vault, key: str, items: list[dict[str, Any]]) -> None:
    """The Map state's ItemReader reads this one as plain JSON: it holds only batch numbers and staging keys."""
    vault.storage.put(key, json.dumps(items).encode())


def full_key(vault: Vault, key: str) -> str:
    """The bucket key of a vault key (what an ItemReader needs)."""
    return s3_storage(vault).prefix + key


def clean_run(vault: Vault, run_id: str) -> int:
    """Delete a run's staging objects; return how many (:meth:`StagedRun.clean`)."""
    return StagedRun(vault, run_id, BaseModel).clean()


def undone_on_failure(vault: Vault, run_id: str, lock: locks.Lock) -> contextlib.AbstractContextManager[None]:
    """:meth:`StagedRun.undone_on_failure` of the run ``run_id``."""
    return StagedRun(vault, run_id, BaseModel).undone_on_failure(lock)


__all__ = [
    "CREATE_ENV",
    "clean_map_results",
    "clean_run",
    "full_key",
    "get_sealed",
    "put_sealed",
    "put_work_list",
    "s3_storage",
    "undone_on_failure",
    "vault_from_environment",
]
