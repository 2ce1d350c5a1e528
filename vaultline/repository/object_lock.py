"""Object Lock settings of a vault: which objects get S3 retention on write, in which mode, for how long.

They live in the plaintext object ``object-lock`` at the vault root, not in ``config``: format version 1 readers
reject any unknown config field, and these settings concern only how objects are written, never how they are
read, so a version 1 reader that ignores the object still reads the vault correctly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property, partial
from typing import Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from vaultline.errors import ObjectLockRefused, VaultError
from vaultline.model import VaultlineModel
from vaultline.repository.layout import LOCKED_PREFIXES, OBJECT_LOCK_KEY
from vaultline.storage import ObjectRetention, Storage

MODES = ("GOVERNANCE", "COMPLIANCE")  # weakest first
MAX_DAYS = 36500


class ObjectLockSettings(VaultlineModel):
    """``mode`` GOVERNANCE (a privileged user may still delete) or COMPLIANCE (nobody may); ``days`` of
    retention from the moment each object is written, and that maintenance keeps every object a live recovery
    point needs locked for (match it to the plans' retention).

    Version 2 adds ``min_days`` and ``max_days`` (AWS Backup Vault Lock's bounds): ``days`` stays within them, and
    no change may lower the mode, raise ``min_days``'s floor away or loosen ``max_days`` (:func:`check_change`).
    Version 1 (no bounds) stays readable and writable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1, 2] = 1
    mode: Literal["GOVERNANCE", "COMPLIANCE"]
    days: int = Field(ge=1, le=MAX_DAYS)
    min_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)
    max_days: int | None = Field(default=None, ge=1, le=MAX_DAYS)

    @model_validator(mode="after")
    def _bounded(self) -> ObjectLockSettings:
        if self.version == 1 and (self.min_days is not None or self.max_days is not None):
            raise ValueError("min_days and max_days need version 2")
        if self.version == 2:
            if self.min_days is None or self.max_days is None:
                raise ValueError("version 2 needs min_days and max_days")
            if not self.min_days <= self.days <= self.max_days:
                raise ValueError(f"days {self.days} is outside [min_days {self.min_days}, max_days {self.max_days}]")
        return self

    @classmethod
    def bounded(
        cls, mode: str, days: int, min_days: int | None = None, max_days: int | None = None
    ) -> ObjectLockSettings:
        """Version 2 settings: ``min_days`` defaults to ``days`` (nothing locks for less), ``max_days`` to the
        most S3 allows (``days`` may be raised later)."""
        return cls.model_validate(
            {
                "version": 2,
                "mode": mode,
                "days": days,
                "min_days": days if min_days is None else min_days,
                "max_days": MAX_DAYS if max_days is None else max_days,
            }
        )

    def retain_until(self, now: datetime) -> datetime:
        return now + timedelta(days=self.days)


def check_change(old: ObjectLockSettings | None, new: ObjectLockSettings | None) -> None:
    """Refuse (ObjectLockRefused) a change from ``old`` to ``new`` that lowers protection: COMPLIANCE to
    GOVERNANCE, ``days`` below the old ``min_days`` or above the old ``max_days``, a lower ``min_days``, a higher
    ``max_days``, or removing bounded (version 2) or COMPLIANCE settings. Version 1 GOVERNANCE settings have no
    bounds: anything may replace them."""
    if old is None or (old.version == 1 and old.mode == "GOVERNANCE"):
        return
    what = f"the vault's Object Lock ({_describe(old)})"
    if new is None:
        raise ObjectLockRefused(f"{what} cannot be removed")
    if MODES.index(new.mode) < MODES.index(old.mode):
        raise ObjectLockRefused(f"{what}: mode {old.mode} cannot be lowered to {new.mode}")
    if old.version == 1:
        return  # COMPLIANCE without bounds: only the mode is fixed
    assert old.min_days is not None and old.max_days is not None  # version 2
    if new.days < old.min_days:
        raise ObjectLockRefused(f"{what}: days {new.days} is below min_days {old.min_days}")
    if new.days > old.max_days:
        raise ObjectLockRefused(f"{what}: days {new.days} is above max_days {old.max_days}")
    if new.version == 1 or (new.min_days or 0) < old.min_days:
        raise ObjectLockRefused(f"{what}: min_days cannot be lowered below {old.min_days}")
    if (new.max_days or MAX_DAYS + 1) > old.max_days:
        raise ObjectLockRefused(f"{what}: max_days cannot be raised above {old.max_days}")


def _describe(settings: ObjectLockSettings) -> str:
    bounds = f", min {settings.min_days}, max {settings.max_days}" if settings.version == 2 else ""
    return f"{settings.mode}, {settings.days} days{bounds}"


def effective(versions: Sequence[ObjectLockSettings | None]) -> ObjectLockSettings | None:
    """The settings in force given every stored version of ``object-lock`` (oldest first; the last is current,
    None when it is a delete marker).

    Without a version 2 record it is the current one (version 1: whoever may write the object may change it).
    Once one exists, the bounds are the strictest any version 2 record ever set (the highest mode and
    ``min_days``, the lowest ``max_days``), and ``days`` is the current record's clamped into them: a plain
    overwrite or a delete marker (an attacker's, with nothing but s3:PutObject or s3:DeleteObject) lowers
    nothing, and the versions themselves are locked."""
    bounded = [v for v in versions if v is not None and v.version == 2]
    if not bounded:
        return versions[-1] if versions else None
    current = next(v for v in reversed(versions) if v is not None)
    mode = max((v.mode for v in (*bounded, current)), key=MODES.index)
    low = max(v.min_days or 1 for v in bounded)
    high = min(v.max_days or MAX_DAYS for v in bounded)
    days = min(max(current.days, low), max(high, low))
    return ObjectLockSettings(version=2, mode=mode, days=days, min_days=low, max_days=max(high, low))


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
    def recorded_or(cls, storage: Storage, settings: ObjectLockSettings) -> VaultObjectLock:
        """Lock by the vault's own ``object-lock`` object, or by ``settings`` when the vault records none: a
        deployed stack's maintenance on a vault created without a record (``vaultline init`` without
        ``--object-lock``) whose backups lock by the stack's configuration."""
        return cls(lambda: load_object_lock(storage) or settings)

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


class _SettingsWrite:
    """The lock policy while ``object-lock`` itself is written: bounded (version 2) settings lock their own
    record, in their mode, for their days (maintenance extends it like a recovery point's objects), so that the
    version that sets the bounds cannot be deleted."""

    def __init__(self, settings: ObjectLockSettings) -> None:
        self.settings = settings

    def retention_for(self, key: str) -> ObjectRetention | None:
        if key != OBJECT_LOCK_KEY or self.settings.version != 2:
            return None
        return ObjectRetention(mode=self.settings.mode, retain_until=self.settings.retain_until(datetime.now(UTC)))


def load_object_lock(storage: Storage) -> ObjectLockSettings | None:
    """The vault's settings in force (:func:`effective` over every stored version of ``object-lock``), or None
    when it has none (the default: objects are written without retention)."""
    return effective([None if raw is None else _parse(storage, raw) for raw in storage.versions(OBJECT_LOCK_KEY)])


def _parse(storage: Storage, raw: bytes) -> ObjectLockSettings:
    try:
        return ObjectLockSettings.model_validate(json.loads(raw))
    except (ValueError, ValidationError) as exc:
        raise VaultError(f"{storage.url}: invalid {OBJECT_LOCK_KEY} object ({exc})") from None


def _encode(settings: ObjectLockSettings) -> bytes:
    return settings.model_dump_json(indent=2, exclude_none=True).encode() + b"\n"


def save_object_lock(storage: Storage, settings: ObjectLockSettings | None) -> None:
    """Set (or, with None, remove) the vault's settings unchecked; they apply to objects written afterwards.
    Commands change them through :func:`change_object_lock`, which refuses to lower them."""
    if settings is None:
        storage.delete(OBJECT_LOCK_KEY)
    else:
        if settings.version == 2:
            storage.require_object_lock("keep bounded Object Lock settings")
        policy = storage.lock_policy
        storage.lock_policy = _SettingsWrite(settings)
        try:
            storage.put(OBJECT_LOCK_KEY, _encode(settings))
        finally:
            storage.lock_policy = policy
    # The next write must see the new settings, not those read before.
    storage.lock_policy = VaultObjectLock.of_vault(storage)


def change_object_lock(storage: Storage, settings: ObjectLockSettings | None) -> ObjectLockSettings | None:
    """Replace the vault's settings with ``settings`` unless that lowers them (ObjectLockRefused, nothing
    written); return the settings now in force."""
    check_change(load_object_lock(storage), settings)
    save_object_lock(storage, settings)
    return load_object_lock(storage)


def create_object_lock(storage: Storage, settings: ObjectLockSettings) -> bool:
    """Write the settings of a new vault, unless it has some already (a conditional create, like ``config``)."""
    if settings.version == 2:
        storage.require_object_lock("keep bounded Object Lock settings")
    policy = storage.lock_policy
    storage.lock_policy = _SettingsWrite(settings)
    try:
        created = storage.create(OBJECT_LOCK_KEY, _encode(settings))
    finally:
        storage.lock_policy = policy
    storage.lock_policy = VaultObjectLock.of_vault(storage)
    return created
