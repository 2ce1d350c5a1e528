"""Object Lock settings of a vault: which objects get S3 retention on write, in which mode, for how long.

They live in the plaintext object ``object-lock`` at the vault root, not in ``config``: format version 1 readers
reject any unknown config field, and these settings concern only how objects are written, never how they are
read, so a version 1 reader that ignores the object still reads the vault correctly.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vaultline.errors import ObjectMissing, VaultError
from vaultline.repository.layout import OBJECT_LOCK_KEY
from vaultline.storage import Storage

# What a recovery point needs; locks/ and staging/ are working state that must stay deletable.


class ObjectLockSettings(BaseModel):
    """``mode`` GOVERNANCE (a privileged user may still delete) or COMPLIANCE (nobody may); ``days`` of
    retention from the moment each object is written (match it to the plans' retention)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int = Field(ge=1, le=36500)

    def retain_until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.days)


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
    # An S3 storage caches the settings it read; the next write must see the new ones.
    storage.__dict__.pop("_object_lock", None)


def create_object_lock(storage: Storage, settings: ObjectLockSettings) -> bool:
    """Write the settings of a new vault, unless it has some already (a conditional create, like ``config``)."""
    created = storage.create(OBJECT_LOCK_KEY, settings.model_dump_json(indent=2).encode() + b"\n")
    storage.__dict__.pop("_object_lock", None)
    return created
