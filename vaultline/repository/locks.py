"""Vault locks: backups hold shared locks, prune holds an exclusive one (restic's protocol).

A lock is a small plaintext JSON object ``locks/<32 hex>``. Taking one is "write mine, then list the others":
a shared lock conflicts with any fresh exclusive lock, an exclusive lock with any fresh lock at all. Because S3
lists are strongly consistent after a put, two parties racing for conflicting locks both see each other and both
back off (and retry later), so they can never both proceed. A lock whose ``refreshed`` time is older than
``STALE_AFTER`` belongs to a process that died; it is ignored, and prune removes it. Long holders refresh theirs.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from vaultline.errors import ObjectMissing, VaultlineError, VaultlineRetryable
from vaultline.model import VaultlineModel
from vaultline.repository.layout import LOCK_PREFIX, lock_key
from vaultline.storage import Storage

# Longer than anything a holder does between two refreshes (a Lambda runs at most 15 minutes).
STALE_AFTER = timedelta(minutes=30)
REFRESH_EVERY = timedelta(minutes=5)


class VaultLocked(VaultlineRetryable):
    """Another party holds a conflicting lock; retry later (a state machine retries this error by name)."""


class LockInfo(VaultlineModel):
    """Contents of a lock object."""

    version: int = 1
    kind: str
    exclusive: bool
    created: datetime
    refreshed: datetime
    owner: str

    def stale(self, now: datetime, stale_after: timedelta = STALE_AFTER) -> bool:
        return now - self.refreshed > stale_after


class Lock(VaultlineModel):
    """A lock this process holds."""

    id: str
    info: LockInfo

    @property
    def key(self) -> str:
        return lock_key(self.id)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def list_locks(storage: Storage) -> list[tuple[str, LockInfo | None]]:
    """Every lock object (id, info); ``None`` for one that cannot be parsed (treated as fresh and exclusive)."""
    found: list[tuple[str, LockInfo | None]] = []
    for obj in storage.list(LOCK_PREFIX):
        lock_id = obj.key[len(LOCK_PREFIX) :]
        try:
            found.append((lock_id, LockInfo.model_validate_json(storage.get(obj.key))))
        except ObjectMissing:
            continue  # released between list and get
        except ValidationError:
            found.append((lock_id, None))
    return found


def acquire(
    storage: Storage,
    kind: str,
    exclusive: bool,
    now: datetime | None = None,
    owner: str | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> Lock:
    """Take a lock or raise VaultLocked naming the holder. Write first, then look: see the module docstring."""
    moment = _now(now)
    info = LockInfo(
        kind=kind,
        exclusive=exclusive,
        created=moment,
        refreshed=moment,
        owner=owner or f"{socket.gethostname()}:{os.getpid()}",
    )
    lock = Lock(id=os.urandom(16).hex(), info=info)
    storage.put(lock.key, info.model_dump_json().encode())
    for other_id, other in list_locks(storage):
        if other_id == lock.id:
            continue
        if other is not None and other.stale(moment, stale_after):
            continue
        if exclusive or other is None or other.exclusive:
            storage.delete(lock.key)
            holder = (
                f"{other.kind} lock held by {other.owner} since {other.created:%Y-%m-%d %H:%M:%S}Z" if other else ""
            )
            raise VaultLocked(
                f"{storage.url}: vault is locked ({holder or 'unreadable lock'}, {lock_key(other_id)}); "
                "retry later, or remove the lock if its holder is known to be dead"
            )
    return lock


def refresh(storage: Storage, lock: Lock, now: datetime | None = None) -> Lock:
    """Rewrite a held lock with a new ``refreshed`` time so that it does not go stale."""
    info = lock.info.model_copy(update={"refreshed": _now(now)})
    storage.put(lock.key, info.model_dump_json().encode())
    return Lock(id=lock.id, info=info)


def release(storage: Storage, lock: Lock | str) -> None:
    """Delete a lock (by object or id); releasing twice is harmless."""
    storage.delete(lock.key if isinstance(lock, Lock) else lock_key(lock))


def remove_stale(storage: Storage, now: datetime | None = None, stale_after: timedelta = STALE_AFTER) -> list[str]:
    """Delete locks whose holders stopped refreshing them; return their ids."""
    moment = _now(now)
    removed = []
    for lock_id, info in list_locks(storage):
        if info is not None and info.stale(moment, stale_after):
            storage.delete(lock_key(lock_id))
            removed.append(lock_id)
    return removed


@contextmanager
def vault_lock(
    storage: Storage,
    kind: str,
    exclusive: bool,
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> Iterator[Lock]:
    """Hold a lock for the ``with`` block, refreshed in the background every ``REFRESH_EVERY`` so a long backup's
    lock never looks stale; it is released even when the block raises."""
    lock = acquire(storage, kind, exclusive, now=now, stale_after=stale_after)
    done = threading.Event()

    def keep_fresh() -> None:
        held = lock
        while not done.wait(REFRESH_EVERY.total_seconds()):
            with contextlib.suppress(VaultlineError):  # a missed refresh is retried; staleness takes 30 minutes
                held = refresh(storage, held)

    refresher = threading.Thread(target=keep_fresh, name="vaultline-lock-refresh", daemon=True)
    refresher.start()
    try:
        yield lock
    finally:
        done.set()
        refresher.join()
        release(storage, lock)
