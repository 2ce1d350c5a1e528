"""Object Lock settings of a vault: which objects get S3 retention on write, in which mode, for how long.

They live in the plaintext object ``object-lock`` at the vault root, not in ``config``: format version 1 readers
reject any unknown config field, and these settings concern only how objects are written, never how they are
read, so a version 1 reader that ignores the object still reads the vault correctly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vaultline.errors import ObjectMissing, VaultError
from vaultline.repository.layout import LOCKED_PREFIXES, OBJECT_LOCK_KEY
from vaultline.storage import ObjectRetention, Storage


class ObjectLockSettings(BaseModel):
    """``mode`` GOVERNANCE (a privileged user may still delete) or COMPLIANCE (nobody may); ``days`` of
    retention from the moment each object is written (match it to the plans' retention)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int = Field(ge=1, le=36500)

    def retain_until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.days)


class VaultObjectLock:
    """The vault's answer to its storage's question "lock this write?" (a storage LockPolicy): what a recovery
    point needs (layout.LOCKED_PREFIXES) gets retention by the settings; locks/ and staging/ are working state
    that must stay deletable. The settings are read once, and only when a lockable object is first written."""

    def __init__(self, load: Callable[[], ObjectLockSettings | None]) -> None:
        self._load = load

    @classmethod
    def of_vault(cls, storage: Storage) -> VaultObjectLock:
        """Lock by the vault's own ``object-lock`` object."""
        return cls(partial(load_object_lock, storage))

    @classmethod
    def fixed(cls, settings: ObjectLockSettings | None) -> VaultObjectLock:
        """Lock by ``settings`` (None: no retention) whatever the vault records: a deployed stack's functions
        lock by the stack's configuration."""
        return cls(lambda: settings)

    @cached_property
    def settings(self) -> ObjectLockSettings | None:
        return self._load()

    def retention_for(self, key: str) -> ObjectRetention | None:
        """Retention for a write of ``key`` from now, or None when the key is not locked or nothing is."""
        if not key.startswith(LOCKED_PREFIXES) or self.settings is None:
            return None
        return ObjectRetention(mode=self.settings.mode, retain_until=self.settings.retain_until(datetime.now(UTC)))


def load_object_lock(storage: Storage) -> ObjectLockSettings | None:
    """The vault's settings, or None when it has none (the default: objects are written without retention)."""
    try:
        raw = storage.get(OBJECT_LOCK_KEY)
    except ObjectMissing:
        return None
    try:
        return ObjectLockSettings.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise VaultError(f"{storage.url}: invalid {OBJECT_LOCK_KEY} object ({exc})") from None


def save_object_lock(storage: Storage, settings: ObjectLockSettings | None) -> None:
    """Set (or, with None, remove) the vault's settings; they apply to objects written afterwards."""
    if settings is None:
        storage.delete(OBJECT_LOCK_KEY)
    else:
        storage.put(OBJECT_LOCK_KEY, settings.model_dump_json(indent=2).encode() + b"\n")
    # The next write must see the new settings, not those read before.
    storage.lock_policy = VaultObjectLock.of_vault(storage)


def create_object_lock(storage: Storage, settings: ObjectLockSettings) -> bool:
    """Write the settings of a new vault, unless it has some already (a conditional create, like ``config``)."""
    created = storage.create(OBJECT_LOCK_KEY, settings.model_dump_json(indent=2).encode() + b"\n")
    storage.lock_policy = VaultObjectLock.of_vault(storage)
    return created
