"""Object Lock that follows the data: keep every object a live recovery point needs locked for ``days`` from now.

Writes lock each object for the vault's ``days`` (vaultline/repository/object_lock.py), but deduplication keeps
old packs in use: a pack written long ago that today's recovery points still need would fall out of WORM. A lock
extension is a staged run (``staging/lock-<time>-<random>/``) of steps, each bounded, that the Maintenance state
machine runs as Lambda steps and Distributed Maps and ``vaultline lock extend`` runs in one process
(:func:`extend_locks`):

1. **Plan** (:func:`plan`) fixes the run's moment ``now``, the target ``retain_until = now + days`` and the
   threshold ``extend_before = now + days - (period + margin)``; extends the locked versions of ``object-lock``
   itself; stages the recovery point ids in batches (the mark work) and the list of pack partitions.
2. **Mark** (:func:`mark`, a Map over the batches): per recovery point, keeps its manifest locked and streams the
   blobs it needs (``manifest.needed_blobs``, as prune's mark) through the dedup index to the packs holding them;
   writes the batch's distinct pack ids as one sorted run per partition.
3. **Extend** (:func:`extend`, a Map over partitions) merges a partition's runs (each referenced pack once, however
   many batches need it) and keeps each pack locked.
4. **Summary** (:func:`summary`) proves every item finished, adds up the counts and cleans the staging.

"Keep locked" is one HEAD (its retain-until and version id) and, only when the retain-until is before
``extend_before``, one PutObjectRetention on that version to ``retain_until``, in the object's own mode (the
vault's for an object without one): never earlier than it was, so nothing is ever shortened, and a governance
object is never turned into a compliance one (which S3 treats as a change needing the governance bypass). So each
object is extended about once per ``period + margin`` and checked once per run.

What is extended, and what is not: manifests and the packs that hold a blob some recovery point needs (what a
restore reads), and ``object-lock``'s bounded records. Index objects are not: they are derived (a pack's header
lists its blobs, and a backup re-indexes any pack no index object lists, docs/vault-format.md 11.3), so deleting
one loses nothing a restore cannot recompute; and a locked index object keeps every pack it lists from prune
(docs/vault-format.md 17.3), so extending the index objects of a backup run would keep that run's garbage packs as
long as any one of its packs stays in use. Index generations are derived and never locked either. Garbage
(an unreferenced pack, a forgotten recovery point's manifest) is never extended: its lock lapses and prune takes it.

Crash safety: the run writes only its staging and retention dates, each a forward move of one object's date; a
crash anywhere leaves extended and not yet extended objects, and the next run extends whatever is still due. It
takes no vault lock: a backup running meanwhile writes its objects with a fresh retention; a pack a concurrent
prune deletes is skipped (missing) or has its now noncurrent version extended, which the lifecycle rule then
keeps a while longer, and nothing is ever unlocked early.

Ceilings (per step, at 650,000 packs of 16 MiB, 10 TB, 30 million chunks):

* plan: the recovery point ids (about 100 bytes each: a million points in 100 MiB), as prune's start; it counts
  the packs (a listing, streamed) to cut the extend work into partitions of at most ``PACKS_PER_PARTITION``.
* mark: the dedup index as the vault's workers use it (the sharded generation's filter and one shard at a time,
  or the whole index, 34 bytes per blob, when the vault has no generation) and the distinct pack ids of its batch
  (about 100 bytes each in a set: 65 MiB if the batch needs every pack); one recovery point's blobs must stream
  within one invocation (the cursor is per recovery point).
* extend: one partition's runs (32 bytes per pack and batch needing it) and the ``LOOKUPS`` requests in flight;
  its time is one HEAD per referenced pack of the partition (plus a PUT for the lapsing ones), cut by the cursor.
* summary: one result per item.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import Field

from vaultline.errors import IntegrityError, RecoveryPointNotFound, VaultError, VaultlineError
from vaultline.model import VaultlineModel
from vaultline.operations import prune_records as rec
from vaultline.operations.batching import batches
from vaultline.repository.layout import DATA_PREFIX, LOCKED_PREFIXES, OBJECT_LOCK_KEY, manifest_key, pack_key
from vaultline.repository.manifest import list_recovery_point_ids, load_recovery_point, needed_blobs
from vaultline.repository.object_lock import ObjectLockSettings, VaultObjectLock, load_object_lock
from vaultline.repository.vault import Vault
from vaultline.storage import ObjectRetention

# The Maintenance schedule runs daily; a run that is late or fails once must not let anything lapse.
DEFAULT_PERIOD = timedelta(days=1)
DEFAULT_MARGIN = timedelta(days=1)
POINTS_PER_BATCH = 64  # recovery points per mark item
# Extend items: enough partitions that each holds at most PACKS_PER_PARTITION packs (16 at 650,000 packs).
PACKS_PER_PARTITION = 50_000
MAX_PARTITION_BITS = 8
LOOKUPS = 16  # HEADs (and PUTs) in flight
CHUNK = 256  # objects an extend item handles between looks at its time budget
RESERVE_MS = 60_000  # an item stops when less than this is left of its Lambda time

Remaining = Callable[[], int]
Outcome = Literal["current", "extended", "missing"]


class LockExtendOptions(VaultlineModel):
    """How often maintenance runs (``period``) and how much slack an object keeps beyond it (``margin``)."""

    period_hours: float = Field(default=DEFAULT_PERIOD.total_seconds() / 3600, gt=0)
    margin_hours: float = Field(default=DEFAULT_MARGIN.total_seconds() / 3600, ge=0)

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.period_hours + self.margin_hours)


class Counts(VaultlineModel):
    """Objects checked (one HEAD each), extended (one PutObjectRetention each), found missing, and the earliest and
    latest retain-until among those checked, after the extension."""

    checked: int = 0
    extended: int = 0
    missing: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None

    def count(self, outcome: Outcome, until: datetime | None) -> None:
        self.checked += 1
        if outcome == "extended":
            self.extended += 1
        elif outcome == "missing":
            self.missing += 1
            return
        if until is not None:
            self.earliest = until if self.earliest is None else min(self.earliest, until)
            self.latest = until if self.latest is None else max(self.latest, until)

    def add(self, other: Counts) -> None:
        self.checked += other.checked
        self.extended += other.extended
        self.missing += other.missing
        for until in (other.earliest, other.latest):
            if until is not None:
                self.earliest = until if self.earliest is None else min(self.earliest, until)
                self.latest = until if self.latest is None else max(self.latest, until)


class LockRun(VaultlineModel):
    """The run document, written by Plan."""

    run_id: str
    enabled: bool
    now: datetime
    mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    days: int = 0
    retain_until: datetime
    extend_before: datetime
    recovery_points: int = 0
    mark_items: int = 0
    bits: int = 0
    partitions: int = 1
    settings: Counts = Field(default_factory=Counts)


class LockBatch(VaultlineModel):
    ids: list[str]


class LockMarkItem(VaultlineModel):
    """One mark work item: a staged batch of recovery points, from ``start`` on."""

    number: int
    batch: str
    start: int = 0
    part: int = 0


class LockMarkResult(VaultlineModel):
    number: int
    part: int
    done: bool
    next: LockMarkItem | None = None
    points: int = 0
    blobs_unindexed: int = 0
    manifests: Counts = Field(default_factory=Counts)


class LockExtendItem(VaultlineModel):
    """One extend work item: a partition of the referenced packs, from the ``start``-th on."""

    partition: int
    start: int = 0
    part: int = 0


class LockExtendResult(VaultlineModel):
    partition: int
    part: int
    done: bool
    next: LockExtendItem | None = None
    packs: Counts = Field(default_factory=Counts)


class LockExtensionReport(VaultlineModel):
    """What a lock extension checked and extended (``vaultline lock extend --json``, ``$.results.lock``)."""

    enabled: bool
    mode: str | None = None
    days: int = 0
    retain_until: datetime | None = None
    extend_before: datetime | None = None
    recovery_points: int = 0
    manifests: Counts = Field(default_factory=Counts)
    packs: Counts = Field(default_factory=Counts)
    settings: Counts = Field(default_factory=Counts)
    blobs_unindexed: int = 0
    objects_checked: int = 0
    objects_extended: int = 0
    seconds: float = 0.0


RUN = "run.json"


def _results(kind: str) -> str:
    return f"results/{kind}/"


def _low(remaining_ms: Remaining | None) -> bool:
    return remaining_ms is not None and remaining_ms() < RESERVE_MS


def new_lock_run_id(now: datetime) -> str:
    """A lock extension run's id: unique, sortable by start time, and it says what it is."""
    return f"lock-{now:%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"


def vault_settings(vault: Vault) -> ObjectLockSettings | None:
    """The settings the vault's writes lock by: a deployed stack's (its storage's fixed policy), else the vault's
    own ``object-lock``."""
    policy = vault.storage.lock_policy
    if isinstance(policy, VaultObjectLock):
        return policy.settings
    return load_object_lock(vault.storage)


def keep_locked(
    vault: Vault, key: str, run: LockRun, retention: ObjectRetention | None = None
) -> tuple[Outcome, datetime | None]:
    """Make sure ``key`` (one version: the current one unless ``retention`` names another) is locked until at
    least ``run.extend_before``; extend it to ``run.retain_until`` if not. Never shortens. Returns what happened
    and the retain-until the object has now."""
    found = retention if retention is not None else vault.storage.retention(key)
    if found is None:
        return "missing", None
    if found.retain_until is not None and found.retain_until >= run.extend_before:
        return "current", found.retain_until
    vault.storage.extend_retention(
        key, ObjectRetention(mode=found.mode or run.mode, retain_until=run.retain_until, version_id=found.version_id)
    )
    return "extended", run.retain_until


def _keep_each(vault: Vault, keys: Iterable[str], run: LockRun, counts: Counts) -> None:
    with ThreadPoolExecutor(max_workers=LOOKUPS, thread_name_prefix="vl-lock") as pool:
        for outcome, until in pool.map(lambda key: keep_locked(vault, key, run), keys):
            counts.count(outcome, until)


# -- 1. plan ----------------------------------------------------------------------------------------------------


def _partition_bits(packs: int) -> int:
    bits = 0
    while bits < MAX_PARTITION_BITS and (packs >> bits) > PACKS_PER_PARTITION:
        bits += 1
    return bits


def plan(
    vault: Vault, options: LockExtendOptions | None = None, now: datetime | None = None
) -> tuple[LockRun, list[LockMarkItem], list[LockExtendItem]]:
    """Fix the run's dates, keep ``object-lock``'s own records locked, stage the mark batches; return the run and
    both maps' items (none when the vault locks nothing). A bucket without Object Lock is a VaultError."""
    options = options or LockExtendOptions()
    moment = now or datetime.now(UTC)
    settings = vault_settings(vault)
    run_id = new_lock_run_id(moment)
    if settings is None:
        run = LockRun(run_id=run_id, enabled=False, now=moment, retain_until=moment, extend_before=moment)
        return run, [], []
    vault.storage.require_object_lock("extend Object Lock retention")
    until = settings.retain_until(moment)
    run = LockRun(
        run_id=run_id,
        enabled=True,
        now=moment,
        mode=settings.mode,
        days=settings.days,
        retain_until=until,
        extend_before=until - options.window,
    )
    staging = rec.Staging(vault, run_id)
    try:
        for version in vault.storage.retentions(OBJECT_LOCK_KEY):
            if version.mode is not None:  # only what was locked when written: the bounded records
                run.settings.count(*keep_locked(vault, OBJECT_LOCK_KEY, run, version))
        items: list[LockMarkItem] = []
        for batch in batches(list_recovery_point_ids(vault), POINTS_PER_BATCH):
            name = f"batches/mark/{len(items):06d}"
            staging.put_model(name, LockBatch(ids=batch))
            items.append(LockMarkItem(number=len(items), batch=name))
            run.recovery_points += len(batch)
        run.mark_items = len(items)
        run.bits = _partition_bits(sum(1 for _ in vault.storage.list(DATA_PREFIX)))
        run.partitions = 1 << run.bits
        staging.put_model(RUN, run)
    except BaseException:
        with contextlib.suppress(VaultlineError):
            staging.clean()
        raise
    return run, items, [LockExtendItem(partition=p) for p in range(run.partitions)]


# -- 2. mark ----------------------------------------------------------------------------------------------------


def mark(vault: Vault, run_id: str, item: LockMarkItem, remaining_ms: Remaining | None = None) -> LockMarkResult:
    """Keep the manifests of a batch of recovery points locked and write the distinct packs they need as sorted
    runs per partition, from ``item.start`` until the batch ends or the time budget runs low."""
    staging = rec.Staging(vault, run_id)
    run = staging.get_model(RUN, LockRun)
    ids = staging.get_model(item.batch, LockBatch).ids
    result = LockMarkResult(number=item.number, part=item.part, done=True)
    packs: set[bytes] = set()
    manifests: list[str] = []
    for position in range(item.start, len(ids)):
        if position > item.start and _low(remaining_ms):
            result.done = False
            result.next = item.model_copy(update={"start": position, "part": item.part + 1})
            break
        try:
            rp = load_recovery_point(vault, ids[position])
        except RecoveryPointNotFound:
            continue  # forgotten since Plan: what it alone needed may lapse
        manifests.append(manifest_key(rp.id))
        last = b""
        for blob in needed_blobs(vault, rp):
            location = vault.lookup.get(blob)
            if location is None:
                result.blobs_unindexed += 1  # a damaged vault: check reports it; protect the rest anyway
                continue
            pack = bytes.fromhex(location.pack_id)
            if pack != last:
                packs.add(pack)
                last = pack
        result.points += 1
    _keep_each(vault, manifests, run, result.manifests)
    stem = f"{item.number:06d}-{item.part:04d}"
    by_partition: dict[int, list[bytes]] = {}
    for pack in sorted(packs):
        by_partition.setdefault(rec.partition_of(pack, run.bits), []).append(pack)
    for partition, ids_in in by_partition.items():
        staging.put_bytes(f"packs/{rec.partition_name(partition)}/{stem}", b"".join(ids_in))
    # Only a finished item's result is under results/mark/: Extend and Summary prove every item finished by it.
    done = f"{_results('mark')}{item.number:06d}.json"
    staging.put_model(done if result.done else f"results/mark-parts/{stem}.json", result)
    return result


# -- 3. extend --------------------------------------------------------------------------------------------------


def _check_marked(staging: rec.Staging, run: LockRun) -> None:
    present = staging.finished(_results("mark"))
    missing = [n for n in range(run.mark_items) if f"{n:06d}" not in present]
    if missing:
        raise IntegrityError(f"lock extension {run.run_id}: mark items {missing[:10]} did not finish")


def extend(vault: Vault, run_id: str, item: LockExtendItem, remaining_ms: Remaining | None = None) -> LockExtendResult:
    """Keep every pack of one partition that a recovery point needs locked (each once), from the ``start``-th
    on, until the partition ends or the time budget runs low."""
    staging = rec.Staging(vault, run_id)
    run = staging.get_model(RUN, LockRun)
    _check_marked(staging, run)
    pp = rec.partition_name(item.partition)
    keys = [
        pack_key(p.hex()) for p in rec.merged((staging.get_bytes(n) for n in staging.names(f"packs/{pp}/")), rec.ID)
    ]
    result = LockExtendResult(partition=item.partition, part=item.part, done=True)
    for position in range(item.start, len(keys), CHUNK):
        if position > item.start and _low(remaining_ms):
            result.done = False
            result.next = item.model_copy(update={"start": position, "part": item.part + 1})
            break
        _keep_each(vault, keys[position : position + CHUNK], run, result.packs)
    name = f"{pp}" if result.done else f"{pp}-part-{item.part:04d}"
    staging.put_model(f"{_results('extend' if result.done else 'extend-parts')}{name}.json", result)
    return result


# -- 4. summary -------------------------------------------------------------------------------------------------


def summary(vault: Vault, run_id: str, clean: bool = True) -> LockExtensionReport:
    """Prove every item finished (IntegrityError naming the missing ones: a run that lost an item must not report
    the vault protected), add up the counts of every part, clean the staging."""
    staging = rec.Staging(vault, run_id)
    run = staging.get_model(RUN, LockRun)
    _check_marked(staging, run)
    extended = staging.finished(_results("extend"))
    missing = [p for p in range(run.partitions) if rec.partition_name(p) not in extended]
    if missing:
        raise IntegrityError(f"lock extension {run_id}: extend items {missing[:10]} did not finish")
    report = LockExtensionReport(
        enabled=True,
        mode=run.mode,
        days=run.days,
        retain_until=run.retain_until,
        extend_before=run.extend_before,
        recovery_points=run.recovery_points,
        settings=run.settings,
    )
    for folder in ("mark", "mark-parts"):
        for name in staging.names(_results(folder)):
            marked = staging.get_model(name, LockMarkResult)
            report.manifests.add(marked.manifests)
            report.blobs_unindexed += marked.blobs_unindexed
    for folder in ("extend", "extend-parts"):
        for name in staging.names(_results(folder)):
            report.packs.add(staging.get_model(name, LockExtendResult).packs)
    parts = (report.manifests, report.packs, report.settings)
    report.objects_checked = sum(c.checked for c in parts)
    report.objects_extended = sum(c.extended for c in parts)
    if clean:
        staging.clean()
    return report


def abort(vault: Vault, run_id: str) -> int:
    """End a failed run: delete its staging; return how many objects were deleted."""
    return rec.Staging(vault, run_id).clean()


# -- the staged run in one process ------------------------------------------------------------------------------


def extend_locks(
    vault: Vault,
    options: LockExtendOptions | None = None,
    now: datetime | None = None,
    remaining_ms: Remaining | None = None,
) -> LockExtensionReport:
    """Run every step of a lock extension in this process, items one after another (each looping on its cursor
    while ``remaining_ms`` says its time is low, as the state machine loops it); a failure cleans the staging."""
    clock = time.monotonic()
    run, marks, partitions = plan(vault, options, now)
    if not run.enabled:
        return LockExtensionReport(enabled=False)
    try:
        for mark_item in marks:
            next_mark: LockMarkItem | None = mark_item
            while next_mark is not None:
                next_mark = mark(vault, run.run_id, next_mark, remaining_ms).next
        for extend_item in partitions:
            next_extend: LockExtendItem | None = extend_item
            while next_extend is not None:
                next_extend = extend(vault, run.run_id, next_extend, remaining_ms).next
        report = summary(vault, run.run_id)
    except BaseException:
        with contextlib.suppress(VaultError):
            abort(vault, run.run_id)
        raise
    report.seconds = round(time.monotonic() - clock, 3)
    return report


# -- status -----------------------------------------------------------------------------------------------------


class PrefixStatus(VaultlineModel):
    """Object Lock state of every object under one prefix (or of every version of ``object-lock``)."""

    prefix: str
    objects: int = 0
    locked: int = 0
    unlocked: int = 0
    legal_holds: int = 0
    earliest: datetime | None = None
    latest: datetime | None = None
    lapsing: int = Field(default=0, description="locked now, unlocked before the next maintenance")
    due: int = Field(default=0, description="what the next extension would extend, if a recovery point needs it")

    def count(self, found: ObjectRetention | None, now: datetime, run: LockRun, next_run: datetime) -> None:
        if found is None:
            return  # deleted since the listing
        self.objects += 1
        self.legal_holds += found.legal_hold
        until = found.retain_until
        if until is None or until <= now:
            self.unlocked += 1
        else:
            self.locked += 1
            self.earliest = until if self.earliest is None else min(self.earliest, until)
            self.latest = until if self.latest is None else max(self.latest, until)
            self.lapsing += until < next_run
        self.due += run.enabled and (until is None or until < run.extend_before)


class LockStatus(VaultlineModel):
    """What is locked until when (``vaultline lock status --json``)."""

    object_lock_enabled: bool
    settings: ObjectLockSettings | None
    now: datetime
    next_maintenance: datetime
    extend_before: datetime | None
    prefixes: list[PrefixStatus]


def lock_status(vault: Vault, options: LockExtendOptions | None = None, now: datetime | None = None) -> LockStatus:
    """The lock state of every object Object Lock protects, summed up by prefix: how many are locked, the
    earliest and latest retain-until, and how many lapse before the next maintenance (``now + period``).

    Ceiling: one HEAD per object of the locked prefixes (``LOOKUPS`` in flight: about 10 minutes for 650,000
    packs), with constant memory; it reads the state of every object, referenced or not.
    """
    options = options or LockExtendOptions()
    moment = now or datetime.now(UTC)
    settings = vault_settings(vault)
    enabled = vault.storage.object_lock_enabled
    until = settings.retain_until(moment) if settings else moment
    run = LockRun(
        run_id="status",
        enabled=settings is not None,
        now=moment,
        retain_until=until,
        extend_before=until - options.window,
    )
    next_run = moment + timedelta(hours=options.period_hours)
    prefixes = []
    if enabled:
        for prefix in LOCKED_PREFIXES:
            status = PrefixStatus(prefix=prefix)
            keys = (obj.key for obj in vault.storage.list(prefix))
            with ThreadPoolExecutor(max_workers=LOOKUPS, thread_name_prefix="vl-lock-status") as pool:
                for found in pool.map(vault.storage.retention, keys):
                    status.count(found, moment, run, next_run)
            prefixes.append(status)
        status = PrefixStatus(prefix=OBJECT_LOCK_KEY)
        for version in vault.storage.retentions(OBJECT_LOCK_KEY):
            status.count(version, moment, run, next_run)
        prefixes.append(status)
    return LockStatus(
        object_lock_enabled=enabled,
        settings=settings,
        now=moment,
        next_maintenance=next_run,
        extend_before=run.extend_before if settings else None,
        prefixes=prefixes,
    )


__all__ = [
    "LockExtendItem",
    "LockExtendOptions",
    "LockExtendResult",
    "LockExtensionReport",
    "LockMarkItem",
    "LockMarkResult",
    "LockRun",
    "abort",
    "extend",
    "extend_locks",
    "keep_locked",
    "lock_status",
    "mark",
    "plan",
    "summary",
    "vault_settings",
]
