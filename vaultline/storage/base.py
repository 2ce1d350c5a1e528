"""The storage interface a vault lives on. Objects are written once and never modified; only prune deletes."""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from vaultline.errors import ObjectMissing, VaultError


@dataclass(frozen=True)
class StoredObject:
    """One object in a storage listing; ``key`` is relative to the vault root."""

    key: str
    size: int


@dataclass(frozen=True)
class ObjectRetention:
    """S3 Object Lock state of one object (read back, or asked for on a write): it cannot be deleted before
    ``retain_until`` or while on legal hold."""

    mode: str | None
    retain_until: datetime | None
    legal_hold: bool = False
    # The object version it was read from: a locked bucket is versioned, and a retention is set on one version.
    version_id: str | None = None

    def holds(self, now: datetime) -> bool:
        return self.legal_hold or (self.retain_until is not None and self.retain_until > now)


class LockPolicy(Protocol):
    """What the owner of a storage wants locked: the storage asks it once per write, and knows nothing else of
    which keys are locked or why (the vault decides: vaultline.repository.object_lock)."""

    def retention_for(self, key: str) -> ObjectRetention | None:
        """The retention to write ``key`` with, or None to write it without."""
        ...


class Storage(ABC):
    """A flat key space holding one vault (an S3 bucket and prefix, or a local directory).

    ``lock_policy``, when set, says which writes carry Object Lock retention; a storage without Object Lock
    (a directory) writes every object without it.
    """

    url: str
    lock_policy: LockPolicy | None = None
    # Large PUTs (packs) worth having in flight at once: two hide an S3 request's latency behind the next pack.
    put_concurrency: int = 2

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: readers see all of it or nothing."""

    def create(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` only if nothing is there; return whether this call created it (False: the
        key existed, and is left as it was). S3 and local storage do it atomically against concurrent creators;
        this fallback, for storages wrapping another (test doubles, counters), checks first and is not atomic."""
        if self.exists(key):
            return False
        self.put(key, data)
        return True

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the whole object; raise ObjectMissing naming the key if it does not exist."""

    @abstractmethod
    def get_range(self, key: str, start: int, length: int) -> bytes:
        """Return ``length`` bytes from ``start``."""

    @abstractmethod
    def get_tail(self, key: str, length: int) -> bytes:
        """Return the last ``length`` bytes (fewer if the object is shorter)."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[StoredObject]:
        """List the objects whose keys start with ``prefix``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; deleting a missing key is not an error."""

    def delete_many(self, keys: Sequence[str]) -> None:
        """Delete up to 1,000 keys (S3's DeleteObjects limit), in one request where the backend can; missing keys
        are not an error, a key the backend refuses is (after the others were tried)."""
        for key in keys:
            self.delete(key)

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""

    def describe(self) -> str:
        return self.url

    def retention(self, key: str) -> ObjectRetention | None:
        """The object's lock state (mode and date None when it has none), or None where storage has no object
        lock (directories, unlocked buckets) or the object does not exist."""
        return None

    @property
    def object_lock_enabled(self) -> bool:
        """Whether this storage has S3 Object Lock (directories never do)."""
        return False

    def versions(self, key: str) -> builtins.list[bytes | None]:
        """Every stored version of ``key``, oldest first, and a last None when the key is deleted now (its
        latest version is a delete marker); [] when it never existed. A storage without versions has at most
        the current one."""
        try:
            return [self.get(key)]
        except ObjectMissing:
            return []

    def retentions(self, key: str) -> builtins.list[ObjectRetention]:
        """The lock state of every stored version of ``key``, newest first ([] where storage has no lock)."""
        return []

    def extend_retention(self, key: str, retention: ObjectRetention) -> None:
        """Set ``retention`` (mode, a later retain-until) on the version ``retention.version_id`` of ``key``. The
        caller never asks for an earlier date; S3 refuses one anyway. Needs Object Lock."""
        self.require_object_lock("extend a retention")

    def require_object_lock(self, doing: str) -> None:
        """Raise VaultError naming ``doing`` unless this storage has S3 Object Lock (directories never do)."""
        raise VaultError(f"{self.url}: cannot {doing}: only an S3 bucket with Object Lock enabled has legal holds")

    def legal_hold(self, key: str) -> bool:
        """Whether ``key`` is on legal hold (never, where storage has no object lock)."""
        retention = self.retention(key)
        return retention is not None and retention.legal_hold

    def set_legal_hold(self, key: str, on: bool) -> bool:
        """Place (``on``) or lift the legal hold of ``key``; return whether it changed. Needs Object Lock."""
        self.require_object_lock("change a legal hold")
        raise NotImplementedError  # pragma: no cover - require_object_lock raised
