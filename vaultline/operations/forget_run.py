"""Forget as a staged run: the plans' keep rules applied to a vault of any number of recovery points.

A recovery point's source is in its manifest header, not in its key, so forget must read every header before it
can decide on any source. The Maintenance state machine runs this module's steps as Lambda steps and Distributed
Maps (docs/state-machines.md, "Forget"), and :func:`forget_staged` runs the very same steps in one process:

1. **Plan** (:func:`plan`) fixes the run's ``now``, folds the plans' policies into each source's rounds (a source
   named by two plans gets both, in plan order), lists the recovery point ids and stages them in batches of
   ``POINTS_PER_BATCH`` (the read work), and cuts the sources into ``partitions`` (the decide work): as many as
   keep each near ``POINTS_PER_PARTITION`` points, at most one per source and ``MAX_PARTITIONS``.
2. **Read** (:func:`read`, a Map over the batches; items loop on their cursor) reads its batch's headers
   (``HEADERS_IN_FLIGHT`` at a time) and stages, per partition, the few fields the rules read of each point whose
   source has rules (``PointInTime``: id, source, time, tags). A point forgotten since Plan is skipped.
3. **Decide** (:func:`decide`, a Map over partitions; looping) proves every read item finished (a decision on part
   of a source's history could drop what the whole keeps), loads its partition's points, applies each source's
   rounds (round ``k`` decides among the points rounds before it kept), and deletes the manifests of the points
   some round drops, ``DELETE_BATCH`` a request, unless Object Lock holds them: those are reported held, with
   their date, and a later run removes them. Its cursor is a position in the sorted list of dropped ids, which
   the rules recompute identically from the same staged points and the run's ``now``.
4. **Summary** (:func:`summary`) proves every item finished, adds up the counts and cleans the staging.

Crash safety: forget's only effect on the vault is deleting manifests of points the rules drop, each a complete
decision (the data stays until a prune finds it unreferenced). A crash leaves some of them deleted; the next run
decides again on what is left and deletes the rest. A run that failed leaves its staging, which the staging
lifecycle rule expires. It takes no vault lock, as forget in one process never did: a backup committing meanwhile
adds a point no read item saw, which no decision touches, and a point removed meanwhile (the backups' Retention
step) is skipped or found already gone.

Ceilings (per step):

* plan: the recovery point ids, about 100 bytes each (a million points in 100 MiB), as prune's start.
* read: one batch (``POINTS_PER_BATCH`` headers; each header is dropped once its fields are taken); its time is
  the header GETs, ``HEADERS_IN_FLIGHT`` in flight, cut by the cursor.
* decide: its partition's points with their decisions, about 2 KiB each (``bench/scale_bench.py --steps forget``:
  2,005 bytes a point); a partition holds one source's whole history at least, so one source's points are the
  ceiling: about 490,000 at the function's 1,024 MB (hourly backups kept for 55 years), 200 MiB for a partition
  of ``POINTS_PER_PARTITION``. Its time is one HEAD per dropped point (Object Lock state) and one DeleteObjects
  request per ``DELETE_BATCH``, cut by the cursor (2.5 million points decided in 900 s in one process).
* summary: one small result per item.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from pydantic import Field

from vaultline.errors import IntegrityError, RecoveryPointNotFound, VaultlineError
from vaultline.model import VaultlineModel
from vaultline.operations import prune_records as rec
from vaultline.operations.batching import batches
from vaultline.operations.prune import DELETE_BATCH, HeldObject, held_objects
from vaultline.operations.retention import PointInTime, RetentionPolicy, apply_group
from vaultline.repository.layout import MANIFEST_PREFIX, manifest_key
from vaultline.repository.manifest import HEADERS_IN_FLIGHT, RecoveryPoint, list_recovery_point_ids, load_recovery_point
from vaultline.repository.vault import Vault

POINTS_PER_BATCH = 512  # headers per read item: 16 rounds of HEADERS_IN_FLIGHT GETs
POINTS_PER_PARTITION = 100_000  # points a decide item holds when the sources spread (about 200 MiB)
MAX_PARTITIONS = 256
RESERVE_MS = 60_000  # an item stops when less than this is left of its Lambda time
LISTED = 50  # removed ids and held objects an item result lists (counts are complete)

Remaining = Callable[[], int]

RUN = "run.json"


class SourceRounds(VaultlineModel):
    """One source's keep rules, in the order the plans name it: each round decides among what the rounds before it
    kept."""

    source: str
    rounds: list[RetentionPolicy]


class ForgetRun(VaultlineModel):
    """The run document, written by Plan."""

    run_id: str
    now: datetime
    sources: list[SourceRounds]
    skipped: list[str] = Field(default_factory=list)
    recovery_points: int = 0
    read_items: int = 0
    partitions: int = Field(default=1, ge=0, description="0 when no source has rules")

    def partition_of(self, source: str) -> int:
        """A source's decide partition: a stable hash of its name, so every read item puts its points in the same
        one."""
        return int.from_bytes(hashlib.sha256(source.encode()).digest()[:4], "big") % self.partitions


class ForgetBatch(VaultlineModel):
    ids: list[str]


class StagedPoints(VaultlineModel):
    """What a read item staged for one partition."""

    points: list[PointInTime]


class ForgetReadItem(VaultlineModel):
    """One read work item: a staged batch of recovery point ids, from ``start`` on."""

    number: int
    batch: str
    start: int = 0
    part: int = 0


class ForgetReadResult(VaultlineModel):
    number: int
    part: int
    done: bool
    next: ForgetReadItem | None = None
    read: int = 0
    staged: int = 0
    missing: int = Field(default=0, description="forgotten since Plan: skipped")


class ForgetDecideItem(VaultlineModel):
    """One decide work item: a partition of the sources, from the ``start``-th dropped point on."""

    partition: int
    start: int = 0
    part: int = 0


class ForgetDecideResult(VaultlineModel):
    """One decide part: what it removed and found held; ``sources`` and ``kept`` are counted by part 0 only."""

    partition: int
    part: int
    done: bool
    next: ForgetDecideItem | None = None
    sources: int = 0
    kept: int = 0
    removed: list[str] = Field(default_factory=list)
    removed_count: int = 0
    held: list[HeldObject] = Field(default_factory=list)
    held_count: int = 0


class ForgetRunReport(VaultlineModel):
    """What a forget run did (``$.results.forget``): counts complete, lists capped at ``LISTED``."""

    sources: int = 0
    recovery_points: int = Field(default=0, description="recovery points of the vault the run read")
    removed: list[str] = Field(default_factory=list)
    removed_count: int = 0
    kept: int = 0
    held: list[HeldObject] = Field(default_factory=list)
    held_count: int = 0
    skipped: list[str] = Field(default_factory=list, description="sources without keep rules: nothing forgotten")


def _low(remaining_ms: Remaining | None) -> bool:
    return remaining_ms is not None and remaining_ms() < RESERVE_MS


def new_forget_run_id(now: datetime) -> str:
    """A forget run's id: unique, sortable by start time, and it says what it is."""
    return f"forget-{now:%Y%m%dT%H%M%SZ}-{os.urandom(4).hex()}"


def _results(kind: str) -> str:
    return f"results/{kind}/"


def _points_folder(partition: int) -> str:
    return f"points/{rec.partition_name(partition)}/"


# -- 1. plan ----------------------------------------------------------------------------------------------------


def source_rounds(policies: Sequence[tuple[str, RetentionPolicy | None]]) -> tuple[list[SourceRounds], list[str]]:
    """Each source's rounds from ``(source, policy)`` pairs in plan order (None: the plan keeps everything of that
    source, which is skipped, not read as "forget everything"); the sources in name order, and the skipped ones."""
    rounds: dict[str, list[RetentionPolicy]] = {}
    skipped: list[str] = []
    for source, policy in policies:
        if policy is None or policy.empty():
            skipped.append(source)
        else:
            rounds.setdefault(source, []).append(policy)
    return [SourceRounds(source=s, rounds=rounds[s]) for s in sorted(rounds)], skipped


def plan(
    vault: Vault, policies: Sequence[tuple[str, RetentionPolicy | None]], now: datetime | None = None
) -> tuple[ForgetRun, list[ForgetReadItem], list[ForgetDecideItem]]:
    """Fix the run's moment and rounds, stage the run document and the read batches; return the run and both maps'
    items (none when no source has rules)."""
    moment = now or datetime.now(UTC)
    sources, skipped = source_rounds(policies)
    run = ForgetRun(run_id=new_forget_run_id(moment), now=moment, sources=sources, skipped=skipped)
    staging = rec.Staging(vault, run.run_id)
    items: list[ForgetReadItem] = []
    try:
        # With no source to decide on there is nothing to read: the run is its document, which Summary reports.
        for batch in batches(list_recovery_point_ids(vault) if sources else [], POINTS_PER_BATCH):
            name = f"batches/read/{len(items):06d}"
            staging.put_model(name, ForgetBatch(ids=batch))
            items.append(ForgetReadItem(number=len(items), batch=name))
            run.recovery_points += len(batch)
        run.read_items = len(items)
        wanted = max(1, math.ceil(run.recovery_points / POINTS_PER_PARTITION))
        run.partitions = min(wanted, len(sources), MAX_PARTITIONS)
        staging.put_model(RUN, run)
    except BaseException:
        with contextlib.suppress(VaultlineError):
            staging.clean()
        raise
    return run, items, [ForgetDecideItem(partition=p) for p in range(run.partitions)]


# -- 2. read ----------------------------------------------------------------------------------------------------


def _header(vault: Vault, rp_id: str) -> RecoveryPoint | None:
    try:
        return load_recovery_point(vault, rp_id)
    except RecoveryPointNotFound:
        return None


def read(vault: Vault, run_id: str, item: ForgetReadItem, remaining_ms: Remaining | None = None) -> ForgetReadResult:
    """Read a batch's headers from ``item.start`` until the batch ends or the time budget runs low; stage, per
    partition, the points whose sources have rules."""
    staging = rec.Staging(vault, run_id)
    run = staging.get_model(RUN, ForgetRun)
    ids = staging.get_model(item.batch, ForgetBatch).ids
    ruled = {s.source for s in run.sources}
    result = ForgetReadResult(number=item.number, part=item.part, done=True)
    staged: dict[int, list[PointInTime]] = {}
    with ThreadPoolExecutor(max_workers=HEADERS_IN_FLIGHT, thread_name_prefix="vl-forget") as pool:
        for position in range(item.start, len(ids), HEADERS_IN_FLIGHT):
            if position > item.start and _low(remaining_ms):
                result.done = False
                result.next = item.model_copy(update={"start": position, "part": item.part + 1})
                break
            for rp in pool.map(lambda rp_id: _header(vault, rp_id), ids[position : position + HEADERS_IN_FLIGHT]):
                if rp is None:
                    result.missing += 1
                    continue
                result.read += 1
                if rp.source in ruled:
                    point = PointInTime(id=rp.id, source=rp.source, time=rp.time, tags=rp.tags)
                    staged.setdefault(run.partition_of(rp.source), []).append(point)
                    result.staged += 1
    stem = f"{item.number:06d}-{item.part:04d}"
    for partition, points in staged.items():
        staging.put_model(f"{_points_folder(partition)}{stem}", StagedPoints(points=points))
    # Only a finished item's result is under results/read/: Decide and Summary prove every item finished by it.
    done = f"{_results('read')}{item.number:06d}.json"
    staging.put_model(done if result.done else f"{_results('read-parts')}{stem}.json", result)
    return result


# -- 3. decide --------------------------------------------------------------------------------------------------


def _check_read(staging: rec.Staging, run: ForgetRun) -> None:
    present = staging.finished(_results("read"))
    missing = [n for n in range(run.read_items) if f"{n:06d}" not in present]
    if missing:
        raise IntegrityError(f"forget {run.run_id}: read items {missing[:10]} did not finish")


def dropped_points(points: Sequence[PointInTime], rounds: Sequence[RetentionPolicy]) -> tuple[list[str], int]:
    """The ids of one source's points that some round drops, and how many the rounds keep."""
    left = list(points)
    dropped: list[str] = []
    for policy in rounds:
        keeps = {decision.id for decision in apply_group(left, policy) if decision.keep}
        dropped += [point.id for point in left if point.id not in keeps]
        left = [point for point in left if point.id in keeps]
    return dropped, len(left)


def _partition_points(staging: rec.Staging, partition: int) -> dict[str, list[PointInTime]]:
    """A partition's staged points by source, each once (a read part retried after a crash may have staged a point
    twice)."""
    seen: dict[str, PointInTime] = {}
    names = staging.names(_points_folder(partition))
    # One small file per read item and part: thousands at a million points, so fetched HEADERS_IN_FLIGHT at a time.
    with ThreadPoolExecutor(max_workers=HEADERS_IN_FLIGHT, thread_name_prefix="vl-forget") as pool:
        for staged in pool.map(lambda name: staging.get_model(name, StagedPoints), names):
            for point in staged.points:
                seen[point.id] = point
    by_source: dict[str, list[PointInTime]] = {}
    for point in seen.values():
        by_source.setdefault(point.source, []).append(point)
    return by_source


def decide(
    vault: Vault, run_id: str, item: ForgetDecideItem, remaining_ms: Remaining | None = None
) -> ForgetDecideResult:
    """Apply the rounds of a partition's sources to their points and delete the manifests they drop (but those
    Object Lock holds), from the ``item.start``-th dropped point on, until done or the time budget runs low."""
    staging = rec.Staging(vault, run_id)
    run = staging.get_model(RUN, ForgetRun)
    _check_read(staging, run)
    by_source = _partition_points(staging, item.partition)
    result = ForgetDecideResult(partition=item.partition, part=item.part, done=True)
    dropped: list[str] = []
    for rules in run.sources:
        if run.partition_of(rules.source) != item.partition:
            continue
        ids, kept = dropped_points(by_source.get(rules.source, []), rules.rounds)
        dropped += ids
        if item.start == 0:
            result.sources += 1
            result.kept += kept
    dropped.sort()
    for position in range(item.start, len(dropped), DELETE_BATCH):
        if position > item.start and _low(remaining_ms):
            result.done = False
            result.next = item.model_copy(update={"start": position, "part": item.part + 1})
            break
        removed: list[str] = []
        keys = [manifest_key(rp_id) for rp_id in dropped[position : position + DELETE_BATCH]]
        for key, held in held_objects(vault, keys, run.now):
            if held is not None:
                result.held_count += 1
                if len(result.held) < LISTED:
                    result.held.append(held)
            else:
                removed.append(key)
        if removed:
            vault.storage.delete_many(removed)
        result.removed_count += len(removed)
        result.removed += [key[len(MANIFEST_PREFIX) :] for key in removed[: LISTED - len(result.removed)]]
    name = rec.partition_name(item.partition)
    done = f"{_results('decide')}{name}.json"
    staging.put_model(done if result.done else f"{_results('decide-parts')}{name}-{item.part:04d}.json", result)
    return result


# -- 4. summary -------------------------------------------------------------------------------------------------


def _decided(staging: rec.Staging) -> Iterator[ForgetDecideResult]:
    """Every decide part's result: the finished items' and the parts before them."""
    for folder in ("decide", "decide-parts"):
        for name in staging.names(_results(folder)):
            yield staging.get_model(name, ForgetDecideResult)


def summary(vault: Vault, run_id: str, clean: bool = True) -> ForgetRunReport:
    """Prove every item finished (IntegrityError naming the missing ones), add up every part's counts, clean the
    staging."""
    staging = rec.Staging(vault, run_id)
    run = staging.get_model(RUN, ForgetRun)
    _check_read(staging, run)
    decided = staging.finished(_results("decide"))
    missing = [p for p in range(run.partitions) if rec.partition_name(p) not in decided]
    if missing:
        raise IntegrityError(f"forget {run_id}: decide items {missing[:10]} did not finish")
    report = ForgetRunReport(recovery_points=run.recovery_points, skipped=run.skipped)
    for part in _decided(staging):
        report.sources += part.sources
        report.kept += part.kept
        report.removed_count += part.removed_count
        report.held_count += part.held_count
        report.removed += part.removed[: LISTED - len(report.removed)]
        report.held += part.held[: LISTED - len(report.held)]
    if clean:
        staging.clean()
    return report


def abort(vault: Vault, run_id: str) -> int:
    """End a failed run: delete its staging; return how many objects were deleted."""
    return rec.Staging(vault, run_id).clean()


# -- the staged run in one process ------------------------------------------------------------------------------


def forget_staged(
    vault: Vault,
    policies: Sequence[tuple[str, RetentionPolicy | None]],
    now: datetime | None = None,
    remaining_ms: Remaining | None = None,
) -> ForgetRunReport:
    """Run every step of a forget in this process, items one after another (each looping on its cursor while
    ``remaining_ms`` says its time is low, as the state machine loops it); a failure cleans the staging."""
    run, reads, decides = plan(vault, policies, now)
    try:
        for read_item in reads:
            next_read: ForgetReadItem | None = read_item
            while next_read is not None:
                next_read = read(vault, run.run_id, next_read, remaining_ms).next
        for decide_item in decides:
            next_decide: ForgetDecideItem | None = decide_item
            while next_decide is not None:
                next_decide = decide(vault, run.run_id, next_decide, remaining_ms).next
        return summary(vault, run.run_id)
    except BaseException:
        with contextlib.suppress(VaultlineError):
            abort(vault, run.run_id)
        raise
