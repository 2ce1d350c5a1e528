"""Forget as a staged run: the plans' keep rules applied to a vault of any number of recovery points.

A recovery point's source is in its manifest header, not in its key, so forget must read every header before it
can decide on any source. The Maintenance state machine runs this module's steps as Lambda steps and Distributed
Maps (docs/state-machines.md, "Forget"); :func:`forget_staged` runs the very same steps in one process (the
backup's Retention step and a copy's keep rules, for one source, staging in a temporary directory), and so does
:func:`forget_listed`, which ``vaultline forget`` runs (its rules for every source, a dry run, and every decision
listed back from the staging):

1. **Plan** (:func:`plan`) fixes the run's ``now``, folds the plans' policies into each source's rounds (a source
   named by two plans gets both, in plan order), lists the recovery point ids and stages them in batches of
   ``POINTS_PER_BATCH`` (the read work), and cuts the sources into ``partitions`` (the decide work): as many as
   keep each near ``POINTS_PER_PARTITION`` points, at most one per source and ``MAX_PARTITIONS``.
2. **Read** (:func:`read`, a Map over the batches; items loop on their cursor) reads its batch's headers
   (``HEADERS_IN_FLIGHT`` at a time) and stages, per partition, the few fields the rules read of each point whose
   source has rules (``PointInTime``: id, source, time, tags; every point when the run has rules for every source).
   A point forgotten since Plan is skipped.
3. **Decide** (:func:`decide`, a Map over partitions; looping) proves every read item finished (a decision on part
   of a source's history could drop what the whole keeps), loads its partition's points as compact rows
   (``PointRow``), applies each source's rounds (round ``k`` decides among the points rounds before it kept; a
   decision is a keep mask, a small int), and deletes the manifests of the points some round drops,
   ``DELETE_BATCH`` a request, unless Object Lock holds them: those are reported held, with their date, and a
   later run removes them (a dry run deletes nothing). Its cursor is a position in the sorted list of dropped
   ids, which the rules recompute identically from the same staged points and the run's ``now``. A listed run's
   decide also stages its decisions (``LISTED_ROWS`` a file) and the held objects of each delete batch.
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
* decide: its partition's points with their decisions, about 600 bytes each as compact rows
  (``bench/scale_bench.py --steps forget --points 20000``: 613 bytes a point, the plan's and reads' share of the
  process included; 347 at ``--points 100000``; 2,062 as pydantic models before); a partition holds one source's
  whole history at least, so one source's points are the ceiling: about 1.6 million at the function's 1,024 MB
  (hourly backups kept for 180 years), 60 MiB for a partition of ``POINTS_PER_PARTITION``. Its time is one HEAD
  per dropped point (Object Lock state) and one DeleteObjects request per ``DELETE_BATCH``, cut by the cursor
  (2.5 million points decided in 900 s in one process).
* summary: one small result per item.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from pydantic import Field

from vaultline.errors import IntegrityError, RecoveryPointNotFound, UsageError, VaultlineError
from vaultline.model import VaultlineModel
from vaultline.operations import prune_records as rec
from vaultline.operations.batching import batches
from vaultline.operations.prune import DELETE_BATCH, HeldObject, held_objects
from vaultline.operations.retention import (
    Decision,
    PointInTime,
    PointRow,
    RetentionPolicy,
    keep_masks,
    point_row,
    reasons,
)
from vaultline.repository.layout import MANIFEST_PREFIX, manifest_key
from vaultline.repository.manifest import HEADERS_IN_FLIGHT, RecoveryPoint, list_recovery_point_ids, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.storage import LocalStorage, Storage

POINTS_PER_BATCH = 512  # headers per read item: 16 rounds of HEADERS_IN_FLIGHT GETs
POINTS_PER_PARTITION = 100_000  # points a decide item holds when the sources spread (about 60 MiB)
MAX_PARTITIONS = 256
RESERVE_MS = 60_000  # an item stops when less than this is left of its Lambda time
LISTED = 50  # removed ids and held objects an item result lists (counts are complete)
LISTED_ROWS = 10_000  # decisions a staged file of a listed run holds

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
    every_source: list[RetentionPolicy] = Field(
        default_factory=list, description="the rounds of every source ``sources`` does not name (the CLI's rules)"
    )
    dry_run: bool = Field(default=False, description="decide, but delete nothing")
    listed: bool = Field(default=False, description="Decide stages every decision and held object (the CLI lists them)")
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
    vault: Vault,
    policies: Sequence[tuple[str, RetentionPolicy | None]],
    now: datetime | None = None,
    every_source: RetentionPolicy | None = None,
    dry_run: bool = False,
    listed: bool = False,
    scratch: Storage | None = None,
) -> tuple[ForgetRun, list[ForgetReadItem], list[ForgetDecideItem]]:
    """Fix the run's moment and rounds, stage the run document and the read batches; return the run and both maps'
    items (none when no source has rules).

    ``every_source`` is the policy of every source ``policies`` does not name (the CLI's ``forget --keep-*``; an
    empty one is refused); ``dry_run`` decides and deletes nothing; ``listed`` has Decide stage every decision and
    held object for :class:`ForgetListing`. Every step stages in the vault's ``staging/``, or in ``scratch`` when
    given (a temporary directory: a run in one process that may not write the vault's staging)."""
    if every_source is not None and every_source.empty():
        raise UsageError("no keep rule given: refusing to forget every recovery point (pass at least one --keep-*)")
    moment = now or datetime.now(UTC)
    sources, skipped = source_rounds(policies)
    run = ForgetRun(
        run_id=new_forget_run_id(moment),
        now=moment,
        sources=sources,
        every_source=[every_source] if every_source is not None else [],
        dry_run=dry_run,
        listed=listed,
        skipped=skipped,
    )
    staging = rec.Staging(vault, run.run_id, scratch)
    items: list[ForgetReadItem] = []
    try:
        # With no source to decide on there is nothing to read: the run is its document, which Summary reports.
        ruled = bool(sources or run.every_source)
        for batch in batches(list_recovery_point_ids(vault) if ruled else [], POINTS_PER_BATCH):
            name = f"batches/read/{len(items):06d}"
            staging.put_model(name, ForgetBatch(ids=batch))
            items.append(ForgetReadItem(number=len(items), batch=name))
            run.recovery_points += len(batch)
        run.read_items = len(items)
        wanted = max(1, math.ceil(run.recovery_points / POINTS_PER_PARTITION))
        # Rules for every source reach sources no plan names, unknown until read: their count cannot cap the partitions.
        run.partitions = min(wanted, MAX_PARTITIONS if run.every_source else len(sources), MAX_PARTITIONS)
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


def read(
    vault: Vault,
    run_id: str,
    item: ForgetReadItem,
    remaining_ms: Remaining | None = None,
    scratch: Storage | None = None,
) -> ForgetReadResult:
    """Read a batch's headers from ``item.start`` until the batch ends or the time budget runs low; stage, per
    partition, the points whose sources have rules."""
    staging = rec.Staging(vault, run_id, scratch)
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
                if rp.source in ruled or run.every_source:
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


def source_masks(rows: Sequence[PointRow], rounds: Sequence[RetentionPolicy]) -> list[int]:
    """One source's decisions on its rows (newest first), round after round: 0 for a point some round drops, else
    the keep mask of the last round (:func:`~vaultline.operations.retention.keep_masks`)."""
    masks = keep_masks(rows, rounds[0])
    for policy in rounds[1:]:
        later = iter(keep_masks([row for row, mask in zip(rows, masks, strict=True) if mask], policy))
        masks = [next(later) if mask else 0 for mask in masks]
    return masks


def _staged_rows(staging: rec.Staging, name: str) -> list[tuple[str, PointRow]]:
    """One staged file's points as ``(source, row)``: its models live only while this thread converts them."""
    return [(point.source, point_row(point)) for point in staging.get_model(name, StagedPoints).points]


def _fetched(staging: rec.Staging, names: Sequence[str]) -> Iterator[list[tuple[str, PointRow]]]:
    """The staged files ``names`` as rows, ``HEADERS_IN_FLIGHT`` fetched ahead: one small file per read item and
    part, thousands at a million points; memory holds the window's rows, not every file fetched ahead of its use."""
    window: deque[Future[list[tuple[str, PointRow]]]] = deque()
    with ThreadPoolExecutor(max_workers=HEADERS_IN_FLIGHT, thread_name_prefix="vl-forget") as pool:
        for name in names:
            window.append(pool.submit(_staged_rows, staging, name))
            if len(window) >= HEADERS_IN_FLIGHT:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _partition_rows(staging: rec.Staging, partition: int) -> dict[str, list[PointRow]]:
    """A partition's staged points as compact rows by source, newest first, each once (a read part retried after a
    crash may have staged a point twice)."""
    by_source: dict[str, list[PointRow]] = {}
    for staged in _fetched(staging, staging.names(_points_folder(partition))):
        for source, row in staged:
            rows = by_source.get(source)
            if rows is None:
                rows = by_source[source] = []  # the key is the one copy of the source's name kept
            rows.append(row)
    for source, rows in by_source.items():
        rows.sort(reverse=True)
        by_source[source] = [row for n, row in enumerate(rows) if n == 0 or row.id != rows[n - 1].id]
    return by_source


class StagedDecisions(VaultlineModel):
    """What a listed run's Decide staged of one partition's decisions, in order (sources by name, newest first)."""

    decisions: list[Decision]


class StagedHeld(VaultlineModel):
    """What a listed run's Decide staged of one delete batch's manifests Object Lock holds."""

    held: list[HeldObject]


def _listed(partition: int, what: str) -> str:
    return f"listed/{rec.partition_name(partition)}/{what}/"


class _DecisionWriter:
    """Stages a partition's decisions ``LISTED_ROWS`` a file, for :class:`ForgetListing`."""

    def __init__(self, staging: rec.Staging, partition: int) -> None:
        self.staging = staging
        self.folder = _listed(partition, "decisions")
        self.rows: list[Decision] = []
        self.files = 0

    def add(self, source: str, rows: Sequence[PointRow], masks: Sequence[int], policy: RetentionPolicy) -> None:
        for row, mask in zip(rows, masks, strict=True):
            keep = bool(mask)
            why = reasons(mask, policy) if keep else []
            self.rows.append(Decision(id=row.id, source=source, time=row.time, keep=keep, reasons=why))
            if len(self.rows) >= LISTED_ROWS:
                self.flush()

    def flush(self) -> None:
        if self.rows:
            self.staging.put_model(f"{self.folder}{self.files:06d}", StagedDecisions(decisions=self.rows))
            self.files += 1
            self.rows = []


def _decided_ids(
    run: ForgetRun,
    by_source: dict[str, list[PointRow]],
    partition: int,
    result: ForgetDecideResult,
    lister: _DecisionWriter | None,
) -> list[str]:
    """The sorted ids of the partition's points some round drops; the sources and kept points counted into
    ``result`` (part 0), each decision staged into ``lister`` when given."""
    rounds = {rules.source: rules.rounds for rules in run.sources if run.partition_of(rules.source) == partition}
    # Every source's rules reach the sources found here that no plan names (the read put only this partition's).
    names = sorted(rounds.keys() | by_source.keys() if run.every_source else rounds.keys())
    dropped: list[str] = []
    for source in names:
        rows = by_source.pop(source, [])
        policies = rounds.get(source, run.every_source)
        masks = source_masks(rows, policies) if rows else []
        dropped += [row.id for row, mask in zip(rows, masks, strict=True) if not mask]
        result.sources += 1
        result.kept += len(rows) - masks.count(0)
        if lister is not None:
            lister.add(source, rows, masks, policies[-1])
    if lister is not None:
        lister.flush()
    dropped.sort()
    return dropped


def decide(
    vault: Vault,
    run_id: str,
    item: ForgetDecideItem,
    remaining_ms: Remaining | None = None,
    scratch: Storage | None = None,
) -> ForgetDecideResult:
    """Apply the rounds of a partition's sources to their points and delete the manifests they drop (but those
    Object Lock holds; none in a dry run), from the ``item.start``-th dropped point on, until done or the time
    budget runs low."""
    staging = rec.Staging(vault, run_id, scratch)
    run = staging.get_model(RUN, ForgetRun)
    _check_read(staging, run)
    result = ForgetDecideResult(partition=item.partition, part=item.part, done=True)
    first = item.start == 0
    lister = _DecisionWriter(staging, item.partition) if run.listed and first else None
    dropped = _decided_ids(run, _partition_rows(staging, item.partition), item.partition, result, lister)
    if not first:  # the first part counted them
        result.sources = result.kept = 0
    for position in range(item.start, len(dropped), DELETE_BATCH):
        if position > item.start and _low(remaining_ms):
            result.done = False
            result.next = item.model_copy(update={"start": position, "part": item.part + 1})
            break
        removed: list[str] = []
        held_here: list[HeldObject] = []
        keys = [manifest_key(rp_id) for rp_id in dropped[position : position + DELETE_BATCH]]
        for key, held in held_objects(vault, keys, run.now):
            if held is not None:
                held_here.append(held)
            else:
                removed.append(key)
        if removed and not run.dry_run:
            vault.storage.delete_many(removed)
        if held_here and run.listed:
            staging.put_model(f"{_listed(item.partition, 'held')}{position:09d}", StagedHeld(held=held_here))
        result.held_count += len(held_here)
        result.held += held_here[: LISTED - len(result.held)]
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


def summary(vault: Vault, run_id: str, clean: bool = True, scratch: Storage | None = None) -> ForgetRunReport:
    """Prove every item finished (IntegrityError naming the missing ones), add up every part's counts, clean the
    staging."""
    staging = rec.Staging(vault, run_id, scratch)
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


def abort(vault: Vault, run_id: str, scratch: Storage | None = None) -> int:
    """End a failed run: delete its staging; return how many objects were deleted."""
    return rec.Staging(vault, run_id, scratch).clean()


# -- the staged run in one process ------------------------------------------------------------------------------


def _run_items(
    vault: Vault,
    run: ForgetRun,
    reads: Sequence[ForgetReadItem],
    decides: Sequence[ForgetDecideItem],
    remaining_ms: Remaining | None,
    scratch: Storage | None = None,
) -> None:
    for read_item in reads:
        next_read: ForgetReadItem | None = read_item
        while next_read is not None:
            next_read = read(vault, run.run_id, next_read, remaining_ms, scratch).next
    for decide_item in decides:
        next_decide: ForgetDecideItem | None = decide_item
        while next_decide is not None:
            next_decide = decide(vault, run.run_id, next_decide, remaining_ms, scratch).next


@contextlib.contextmanager
def _scratch(wanted: bool) -> Iterator[Storage | None]:
    """A temporary directory's storage for a run's staging, deleted on exit; None (the vault's) when not wanted."""
    if not wanted:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="vaultline-forget-") as root:
        yield LocalStorage(root)


def forget_staged(
    vault: Vault,
    policies: Sequence[tuple[str, RetentionPolicy | None]],
    now: datetime | None = None,
    remaining_ms: Remaining | None = None,
    every_source: RetentionPolicy | None = None,
    scratch: bool = False,
) -> ForgetRunReport:
    """Run every step of a forget in this process, items one after another (each looping on its cursor while
    ``remaining_ms`` says its time is low, as the state machine loops it); a failure cleans the staging.

    ``every_source`` as :func:`plan` takes it; ``scratch`` stages in a temporary directory instead of the vault's
    ``staging/`` (the backup's Retention step and a copy's keep rules, whose functions write no staging)."""
    with _scratch(scratch) as storage:
        run, reads, decides = plan(vault, policies, now, every_source, scratch=storage)
        try:
            _run_items(vault, run, reads, decides, remaining_ms, storage)
            report = summary(vault, run.run_id, scratch=storage)
        except BaseException:
            with contextlib.suppress(VaultlineError):
                abort(vault, run.run_id, storage)
            raise
    return report


class ForgetListing:
    """A finished listed run: its report, and every decision and held object read back from its staging, one
    partition at a time (the partitions in order; in each, the sources by name, each newest first)."""

    def __init__(self, vault: Vault, run: ForgetRun, report: ForgetRunReport) -> None:
        self.staging = rec.Staging(vault, run.run_id)
        self.run = run
        self.report = report

    def _decisions(self, partition: int) -> Iterator[Decision]:
        for name in self.staging.names(_listed(partition, "decisions")):
            yield from self.staging.get_model(name, StagedDecisions).decisions

    def _held(self, partition: int) -> Iterator[HeldObject]:
        for name in self.staging.names(_listed(partition, "held")):
            yield from self.staging.get_model(name, StagedHeld).held

    def held(self) -> Iterator[HeldObject]:
        for partition in range(self.run.partitions):
            yield from self._held(partition)

    def actions(self) -> Iterator[tuple[Decision, str]]:
        """Every decision with its action: ``keep``, ``remove`` (removed, or would be in a dry run) or ``held``."""
        for partition in range(self.run.partitions):
            held = {item.key[len(MANIFEST_PREFIX) :] for item in self._held(partition)}
            for decision in self._decisions(partition):
                yield decision, "keep" if decision.keep else ("held" if decision.id in held else "remove")

    def decisions(self) -> Iterator[Decision]:
        return (decision for decision, _ in self.actions())

    def kept(self) -> Iterator[str]:
        return (decision.id for decision, action in self.actions() if action == "keep")

    def removed(self) -> Iterator[str]:
        return (decision.id for decision, action in self.actions() if action == "remove")


@contextlib.contextmanager
def forget_listed(
    vault: Vault, policy: RetentionPolicy, dry_run: bool = False, now: datetime | None = None
) -> Iterator[ForgetListing]:
    """Apply ``policy`` to every source of the vault by the staged run's steps in this process (what ``vaultline
    forget`` runs: memory bounded by one partition, every header read once), then hand its listing to the block;
    the run's staging is cleaned when the block ends, as when anything fails."""
    run, reads, decides = plan(vault, [], now, every_source=policy, dry_run=dry_run, listed=True)
    try:
        _run_items(vault, run, reads, decides, None)
        yield ForgetListing(vault, run, summary(vault, run.run_id, clean=False))
    finally:
        with contextlib.suppress(VaultlineError):
            abort(vault, run.run_id)
