"""Opening the deployed vault from a step's environment (:class:`~vaultline.runs.settings.FunctionSettings`)."""

from __future__ import annotations

from vaultline.errors import VaultExists, VaultNotFound
from vaultline.repository.object_lock import VaultObjectLock, create_object_lock
from vaultline.repository.vault import Vault
from vaultline.runs.settings import FunctionSettings
from vaultline.storage import S3Storage, open_storage


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
        storage.lock_policy = VaultObjectLock.fixed(lock_settings)
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
        storage.lock_policy = VaultObjectLock.fixed(lock_settings)
    return vault


def open_deployed_vault(settings: FunctionSettings | None = None) -> Vault:
    """Open the deployed vault by its URL alone: for the maintenance steps, which never create a vault and whose
    writes lock what the vault's own ``object-lock`` object says.

    A vault that records no settings (created by ``vaultline init`` without ``--object-lock``) while the stack
    locks its backups is locked by the stack's settings instead: else maintenance would never extend what the
    backups locked, and a repack would write unlocked packs holding live data."""
    settings = settings or FunctionSettings.from_environment()
    storage = open_storage(settings.require_vault_url())
    _, lock_settings = settings.object_lock()
    if lock_settings is not None:
        storage.lock_policy = VaultObjectLock.recorded_or(storage, lock_settings)
    return Vault.open(storage)
