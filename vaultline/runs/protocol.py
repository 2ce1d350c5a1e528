"""The staged-run protocol every workflow follows: a run document, its work list, one result per work item.

A run lives under ``staging/<run id>/`` in the vault (`vaultline.repository.layout`):

- ``run.json``: the run document, sealed (it holds keys, metadata and tags), written by Prepare;
- ``work-list.json``: the work items, plain JSON, read by the Map state's ItemReader (it holds only numbers and
  staging keys);
- ``results/<name>.json``: one sealed result per work item (or per part of one), written by the workers;
- whatever else a workflow stages under the run (batches, export files).

The last step reads every result and proves that none is missing before it commits anything: a run that lost a
worker's result fails instead of committing a recovery point or a restore that silently lacks part of its data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from vaultline.errors import IntegrityError, ObjectMissing, VaultError, VaultlineError
from vaultline.repository import layout, locks
from vaultline.repository.manifest import new_recovery_point_id
from vaultline.repository.vault import Vault
from vaultline.runs.models import StepModel
from vaultline.storage import S3Storage

M = TypeVar("M", bound=BaseModel)
D = TypeVar("D", bound=BaseModel)
log = logging.getLogger(__name__)


BATCHES = "batches/"  # the staged input of each work item, inside a run's prefix
MISSING_NAMED = 10  # missing results an error names
READ_AHEAD = 8  # results a step reads in parallel ahead of the one it merges


class RunLock(StepModel):
    """The part of every run document that the protocol itself reads: the run's shared vault lock, if any."""

    lock_id: str | None = None


# Work items a run may have: six digits keep names in item order. The largest runs stay far below it: at 10,000,000
# objects (10 TB) a backup or a restore has at most about 10,000,000 / 2,000 + 2 * 10 TB / 2 GiB = 14,313 batches and
# 5,000 carried parts; a table restore one item per segment (at most 16,384).
MAX_ITEMS = 1_000_000


def item_name(number: int) -> str:
    """The name of work item ``number``'s batch and result: zero-padded, so names list in item order. A run past
    :data:`MAX_ITEMS` items is refused (its names would list out of order) rather than mis-merged."""
    if not 0 <= number < MAX_ITEMS:
        raise VaultError(f"work item {number}: a run holds at most {MAX_ITEMS:,} work items")
    return f"{number:06d}"


def new_restore_id(recovery_point: str) -> str:
    """The id of a restore run of ``recovery_point``: unique, and it names what it restores."""
    return f"restore-{recovery_point}-{os.urandom(4).hex()}"


class StagedRun(Generic[D]):
    """One run of a workflow in the vault's staging area. Steps open it by id; every method is one request or a
    listing of the run's own prefix, so a step's cost does not grow with the vault."""

    def __init__(self, vault: Vault, run_id: str, document: type[D]) -> None:
        self.vault = vault
        self.id = run_id
        self.document_model = document
        self.prefix = layout.run_prefix(run_id)

    # -- opening ----------------------------------------------------------------------------------------------
    @classmethod
    def new_backup(cls, vault: Vault, document: type[D], started: datetime | None = None) -> StagedRun[D]:
        """A run that commits a new recovery point: the run id is the recovery point's id."""
        return cls(vault, new_recovery_point_id(started), document)

    @classmethod
    def new_restore(cls, vault: Vault, document: type[D], recovery_point: str) -> StagedRun[D]:
        return cls(vault, new_restore_id(recovery_point), document)

    # -- the run document -------------------------------------------------------------------------------------
    def key(self, name: str) -> str:
        """The vault key of ``name`` inside this run."""
        return self.prefix + name

    def write(self, document: D) -> None:
        self.put(layout.RUN_DOCUMENT, document)

    def read(self) -> D:
        return self.get(layout.RUN_DOCUMENT, self.document_model)

    # -- sealed staged documents ------------------------------------------------------------------------------
    def put(self, name: str, value: BaseModel) -> None:
        """Stage a document sealed like everything else in the vault."""
        key = self.key(name)
        self.vault.storage.put(key, self.vault.cipher.seal(value.model_dump_json().encode(), key.encode()))

    def get(self, name: str, model: type[M]) -> M:
        key = self.key(name)
        plain = self.vault.cipher.open(self.vault.storage.get(key), key.encode(), f"{self.vault.url}: {key}")
        return model.model_validate_json(plain)

    # -- the work list ----------------------------------------------------------------------------------------
    def write_work_list(self, items: Sequence[BaseModel]) -> str:
        """Write the Map state's work list; return its bucket key (what the ItemReader names)."""
        key = self.key(layout.WORK_LIST)
        self.vault.storage.put(key, json.dumps([item.model_dump(mode="json") for item in items]).encode())
        return self.bucket_key(key)

    def bucket_key(self, key: str) -> str:
        """The S3 key of a vault key: the workflows need an S3 vault."""
        return s3_storage(self.vault).prefix + key

    def batch_key(self, number: int) -> str:
        """The vault key of work item ``number``'s staged input (what the work item names)."""
        return self.key(f"{BATCHES}{item_name(number)}.json")

    def put_batch(self, number: int, batch: BaseModel) -> str:
        """Stage the input of work item ``number``; return its vault key (what the work item names)."""
        name = f"{BATCHES}{item_name(number)}.json"
        self.put(name, batch)
        return self.key(name)

    def get_staged(self, key: str, model: type[M]) -> M:
        """Read a document this run staged, by the vault key a work item names (refused outside the run)."""
        if not key.startswith(self.prefix):
            raise VaultError(f"{self.vault.url}: {key} is not staged by run {self.id}")
        return self.get(key[len(self.prefix) :], model)

    # -- results ----------------------------------------------------------------------------------------------
    def result_key(self, name: str) -> str:
        """The vault key of the result ``name``."""
        return self.key(f"{layout.RESULTS}{name}.json")

    def put_result(self, name: str, result: BaseModel) -> str:
        """Record one work item's result; return its vault key. Writing the same name again (a retried worker)
        replaces it: safe."""
        self.put(f"{layout.RESULTS}{name}.json", result)
        return self.result_key(name)

    def results(self, model: type[M], expected: Iterable[str], what: str) -> list[M]:
        """Every result, in the order of ``expected``; raises IntegrityError naming the first missing ones.

        ``what`` says what the run is ("recovery point X", "restore Y") for the error.
        """
        present = {
            obj.key[len(self.key(layout.RESULTS)) : -len(".json")]
            for obj in self.vault.storage.list(self.key(layout.RESULTS))
        }
        names = list(expected)
        missing = [name for name in names if name not in present]
        if missing:
            raise IntegrityError(f"{what}: results of work items {missing[:10]} are missing from staging")
        return [self.get(f"{layout.RESULTS}{name}.json", model) for name in names]

    def check_results(self, expected: Iterable[str], what: str) -> None:
        """Raise IntegrityError naming the first missing results unless every name of ``expected`` has one.

        ``expected`` must come in increasing order (as :func:`item_name` numbers them): it is walked beside the
        listing of the run's results, so neither is held whatever the number of work items.
        """
        prefix = self.key(layout.RESULTS)
        present = (obj.key[len(prefix) : -len(".json")] for obj in self.vault.storage.list(prefix))
        current = next(present, None)
        previous: str | None = None
        missing: list[str] = []
        count = 0
        for name in expected:
            if previous is not None and name <= previous:
                raise ValueError(f"{what}: expected results out of order ({name!r} after {previous!r})")
            previous = name
            while current is not None and current < name:
                current = next(present, None)
            if current != name:
                count += 1
                if len(missing) < MISSING_NAMED:
                    missing.append(name)
        if count:
            raise IntegrityError(f"{what}: results of {count} work items {missing} are missing from staging")

    def iter_results(self, model: type[M], names: Iterable[str], read_ahead: int = READ_AHEAD) -> Iterator[M]:
        """The results ``names`` in that order, read ``read_ahead`` at a time in parallel (one by one, a run of
        thousands of items would spend its time waiting on requests): memory holds ``read_ahead`` results."""
        window: deque[Future[M]] = deque()
        with ThreadPoolExecutor(max_workers=read_ahead, thread_name_prefix="vl-results") as pool:
            for name in names:
                window.append(pool.submit(self.get, f"{layout.RESULTS}{name}.json", model))
                if len(window) >= read_ahead:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()

    def all_results(self, model: type[M]) -> list[M]:
        """Every result present, in name order (for runs whose work items are found as they go)."""
        return list(self.present_results(model))

    def present_results(self, model: type[M]) -> Iterator[M]:
        """Every result present, in name order, read ahead as the listing goes: memory holds the read-ahead
        window, whatever the number of results."""
        prefix = self.key(layout.RESULTS)
        names = (obj.key[len(prefix) : -len(".json")] for obj in self.vault.storage.list(prefix))
        return self.iter_results(model, names)

    # -- the run's lock ---------------------------------------------------------------------------------------
    def refresh_lock(self, lock_id: str | None) -> None:
        """Keep the run's shared lock fresh while its workers run (a long map outlives the 30-minute staleness).

        A lock that is gone was removed as stale, so a prune may have run since Prepare read the index: going on
        could commit references to deleted blobs, so the run fails (and Abort cleans up) instead.
        """
        if not lock_id:
            return
        key = layout.lock_key(lock_id)
        try:
            info = locks.LockInfo.model_validate_json(self.vault.storage.get(key))
        except ObjectMissing:
            raise VaultError(f"{self.vault.url}: run {self.id} lost its lock {key}; run it again") from None
        locks.refresh(self.vault.storage, locks.Lock(id=lock_id, info=info))

    # -- the end of a run -------------------------------------------------------------------------------------
    def clean(self) -> int:
        """Delete the run's staging objects; return how many."""
        keys = [obj.key for obj in self.vault.storage.list(self.prefix)]
        for key in keys:
            self.vault.storage.delete(key)
        return len(keys)

    def finish(self, map_output: dict[str, Any] | None, lock_id: str | None = None) -> int:
        """End a run that did its work: delete its staging and its map's result files, release its lock; return
        how many staging objects were deleted."""
        cleaned = self.clean()
        clean_map_results(self.vault, map_output)
        if lock_id:
            locks.release(self.vault.storage, lock_id)
        return cleaned

    def abort(self, map_output: dict[str, Any] | None) -> int:
        """End a failed run of any workflow: release the lock its run document names, delete what it staged.

        Prepare may have failed before it wrote the run document, and each workflow's document differs: only
        the lock id (:class:`RunLock`) is read, and a document that is missing or unreadable releases nothing.
        """
        with contextlib.suppress(VaultlineError, ValidationError):
            lock_id = self.get(layout.RUN_DOCUMENT, RunLock).lock_id
            if lock_id:
                locks.release(self.vault.storage, lock_id)
        cleaned = self.clean()
        clean_map_results(self.vault, map_output)
        return cleaned

    @contextlib.contextmanager
    def undone_on_failure(self, lock: locks.Lock) -> Iterator[None]:
        """Wrap a Prepare step after it took the run's lock: on any failure, delete what it staged and release the
        lock (Abort cannot: a failed Prepare returns nothing, so Abort does not know the run)."""
        try:
            yield
        except BaseException:
            # The original error is the one raised; a failed cleanup is logged with what it left behind (the
            # staging lifecycle rule and lock staleness end it), never dropped silently.
            try:
                self.clean()
            except Exception as exc:
                log.error("failed Prepare of %s: could not delete its staging %s: %s", self.id, self.prefix, exc)
            try:
                locks.release(self.vault.storage, lock.id)
            except Exception as exc:
                log.error("failed Prepare of %s: could not release its lock %s: %s", self.id, lock.key, exc)
            raise


def s3_storage(vault: Vault) -> S3Storage:
    if not isinstance(vault.storage, S3Storage):
        raise VaultError(f"{vault.url}: the serverless workflows need an S3 vault")
    return vault.storage


def stage_work_list(vault: Vault, run_id: str, name: str, items: Sequence[BaseModel]) -> str:
    """Stage one of a run's several Map work lists (``<name>-work-list.json``, plain JSON, read by its
    ItemReader); return its bucket key."""
    key = f"{layout.run_prefix(run_id)}{name}-work-list.json"
    vault.storage.put(key, json.dumps([item.model_dump(mode="json") for item in items]).encode())
    return s3_storage(vault).prefix + key


def clean_map_results(vault: Vault, map_output: dict[str, Any] | None) -> None:
    """Delete the ResultWriter's files of a run's map (``$.map`` in the state): workers already left their
    results in staging, so these are an operator's aid that would otherwise wait for the lifecycle rule."""
    key = ((map_output or {}).get("ResultWriterDetails") or {}).get("Key", "")
    storage = s3_storage(vault)
    prefix = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    if prefix.startswith(storage.prefix + layout.MAP_RESULTS_PREFIX):
        for obj in vault.storage.list(prefix[len(storage.prefix) :]):
            vault.storage.delete(obj.key)
