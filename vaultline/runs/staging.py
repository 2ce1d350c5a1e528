"""The vault's staging area: work lists, batches and partial results of running workflows."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel

from vaultline.errors import VaultError, VaultExists, VaultNotFound
from vaultline.repository import locks
from vaultline.repository.layout import MAP_RESULTS_PREFIX, run_prefix
from vaultline.repository.object_lock import create_object_lock
from vaultline.repository.vault import Vault
from vaultline.runs.settings import FunctionSettings
from vaultline.storage import S3Storage

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


def vault_from_environment(settings: FunctionSettings | None = None) -> Vault:
    """Open (or on first use create) the vault the deployed stack points at (``settings``, or this process's).

    ``VAULT_URL`` names it; ``VAULT_ENCRYPTION`` and ``VAULT_KMS_KEY_ID`` say how a new one is created, and only a
    step with ``VAULT_CREATE`` true (or unset) creates one: the others find VaultNotFound. ``VAULT_OBJECT_LOCK_*``
    say what the writes lock (vaultline/repository/object_lock.py); a new vault records them in its ``object-lock``
    object.
    """
    settings = settings or FunctionSettings.from_environment()
    url = settings.require_vault_url()
    bucket, _, prefix = url[len("s3://") :].partition("/")
    storage = S3Storage(bucket, prefix)
    overridden, lock_settings = settings.object_lock()
    if overridden:
        storage.use_object_lock(lock_settings)
    try:
        return Vault.open(storage)
    except VaultNotFound:
        if not settings.vault_create:
            raise
    try:
        vault = Vault.init(storage, settings.vault_encryption, settings.vault_kms_key_id)
    except VaultExists:
        # Another first run created it between our read and our write (the create is conditional): use theirs.
        return Vault.open(storage)
    if lock_settings is not None:
        create_object_lock(storage, lock_settings)
        storage.use_object_lock(lock_settings)
    return vault


def s3_storage(vault: Vault) -> S3Storage:
    if not isinstance(vault.storage, S3Storage):
        raise VaultError(f"{vault.url}: the serverless workflows need an S3 vault")
    return vault.storage


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
    """Delete a run's staging objects; return how many."""
    keys = [o.key for o in vault.storage.list(run_prefix(run_id))]
    for key in keys:
        vault.storage.delete(key)
    return len(keys)


@contextlib.contextmanager
def undone_on_failure(vault: Vault, run_id: str, lock: locks.Lock) -> Iterator[None]:
    """Wrap a Prepare step after it took the run's lock: on any failure, delete what it staged and release the lock.

    Abort cannot do this for Prepare: a Prepare that fails returns no ``$.prepared``, so Abort does not know the
    run. Without it, a Prepare failing on bad input (a missing bucket, a table without PITR in export mode) would
    leave a shared lock that blocks prune until it goes stale, and a staged work list behind.
    """
    try:
        yield
    except BaseException:
        # The original error is the one raised; a failed cleanup is logged with what it left behind (the
        # staging lifecycle rule and lock staleness end it), never dropped silently.
        try:
            clean_run(vault, run_id)
        except Exception as exc:
            log.error("failed Prepare of %s: could not delete its staging %s: %s", run_id, run_prefix(run_id), exc)
        try:
            locks.release(vault.storage, lock.id)
        except Exception as exc:
            log.error("failed Prepare of %s: could not release its lock %s: %s", run_id, lock.key, exc)
        raise


def clean_map_results(vault: Vault, map_output: dict[str, Any] | None) -> None:
    """Delete the ResultWriter's files of a run's map (``$.map`` in the state): workers already left their
    results in staging, so these are an operator's aid that would otherwise wait for the lifecycle rule."""
    key = ((map_output or {}).get("ResultWriterDetails") or {}).get("Key", "")
    storage = s3_storage(vault)
    prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    if prefix.startswith(storage.prefix + MAP_RESULTS_PREFIX):
        for obj in vault.storage.list(prefix[len(storage.prefix) :]):
            vault.storage.delete(obj.key)
