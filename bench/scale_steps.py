"""The scale benchmark's steps, one per process, on a synthetic vault (bench/scale_bench.py drives them).

Usage: ``scale_steps.py STEP VAULT_DIR OBJECTS CHUNKS [POINTS]``. Prints one JSON line: the step's seconds (engine
calls only, interpreter start-up excluded), its peak RSS (VmHWM), and its fixed part (the RSS and seconds once the
interpreter, the vault and, for the steps that ask it, the index a worker uses are in memory), so that what the
step holds per object can be told apart from what it holds per chunk.

The synthetic vault: an index of CHUNKS chunk ids (blake3 of their number) in packs of about 16 MiB of 320 KiB
chunks, written with ``Vault.write_index`` in index objects of the size a worker's flush writes; each pack
exists in storage as an empty placeholder (its key is all that check without read-data and prune's plan look at);
and one recovery point of OBJECTS entries, each naming CHUNKS / OBJECTS of those chunks, committed with
``repository.commit.finish_recovery_point`` (so its entry stream is real: real MANIFEST blobs in real packs).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import blake3
from engine_steps import vm_hwm_mib

from vaultline.operations import prune as prune_ops
from vaultline.operations.check import check_vault
from vaultline.operations.forget_run import forget_staged
from vaultline.operations.prune import PruneOptions
from vaultline.operations.retention import RetentionPolicy
from vaultline.operations.stats import vault_stats
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.commit import RecoveryPointDraft, finish_recovery_point
from vaultline.repository.entry_streams import join_with_parent
from vaultline.repository.layout import STAGING_PREFIX, pack_key
from vaultline.repository.manifest import (
    BackupStats,
    ObjectEntry,
    commit_recovery_point,
    iter_entries,
    iter_entry_lines,
    latest_for_source,
    new_recovery_point_id,
)
from vaultline.repository.packs import BlobEntry, BlobType
from vaultline.repository.sharded_index import ShardedIndex
from vaultline.repository.vault import Vault
from vaultline.runs.backup_parts import cut_parts
from vaultline.runs.backup_steps import carried_name, commit_parts, stage_parts
from vaultline.runs.models import BackupBatch, BackupRun, BatchResult, SourceSpec
from vaultline.runs.protocol import StagedRun, item_name
from vaultline.storage.local import LocalStorage

SOURCE = "s3://bench-source"
CHUNK_BYTES = 320 * 1024  # the S3 path's average chunk (issue 11)
STORED_BYTES = CHUNK_BYTES // 2
CHUNKS_PER_PACK = 16 * 1024 * 1024 // STORED_BYTES
PACKS_PER_INDEX = 64  # one index object per flush of a worker's writer: a few dozen packs
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
FORGET_POLICY = RetentionPolicy(keep_daily=7, keep_weekly=4, keep_monthly=12)


def vm_rss_mib() -> float:
    """Resident set size of this process now, from /proc (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def chunk_id(number: int) -> bytes:
    return blake3.blake3(number.to_bytes(8, "little")).digest()


def pack_id(number: int) -> str:
    return blake3.blake3(b"pack" + number.to_bytes(8, "little")).hexdigest()


def listing(objects: int, size: int = CHUNK_BYTES) -> Iterator[ObjectEntry]:
    """What an S3 listing of ``objects`` objects yields, in key order (the fields ``sources.s3`` sets)."""
    for number in range(objects):
        yield ObjectEntry(
            key=f"data/{number // 1000:06d}/object-{number:09d}.bin",
            size=size,
            etag=f'"{blake3.blake3(number.to_bytes(8, "little")).hexdigest()[:32]}"',
            version_id=f"v{number:031d}",
            last_modified=EPOCH + timedelta(seconds=number),
            storage_class="STANDARD",
        )


def entries(objects: int, chunks: int, etag_salt: str = "") -> Iterator[ObjectEntry]:
    """The backed-up entries of :func:`listing`: every chunk of the index named by one object."""
    per_object = max(1, -(-chunks // max(objects, 1)))
    for number, item in enumerate(listing(objects)):
        first = number * per_object
        ids = [chunk_id(n % chunks).hex() for n in range(first, first + per_object)]
        update: dict[str, Any] = {"chunks": ids, "size": CHUNK_BYTES * per_object}
        if etag_salt:
            update["etag"] = f'"{etag_salt}{item.etag}"'
        yield item.model_copy(update=update)


def draft(objects: int) -> RecoveryPointDraft:
    started = datetime.now(UTC)
    return RecoveryPointDraft(
        recovery_point=new_recovery_point_id(started), started=started, source=SOURCE, source_kind="s3"
    )


def step_generate(vault_dir: str, objects: int, chunks: int) -> dict[str, Any]:
    """Create the synthetic vault: the index, placeholder packs, and the parent recovery point."""
    vault = Vault.init(LocalStorage(vault_dir), encryption="none")
    batch: list[tuple[str, list[BlobEntry]]] = []
    packs = 0
    for first in range(0, chunks, CHUNKS_PER_PACK):
        blobs = [
            BlobEntry(chunk_id(n), BlobType.DATA, 1, (n - first) * STORED_BYTES, STORED_BYTES, CHUNK_BYTES)
            for n in range(first, min(first + CHUNKS_PER_PACK, chunks))
        ]
        batch.append((pack_id(packs), blobs))
        vault.storage.put(pack_key(pack_id(packs)), b"")
        packs += 1
        if len(batch) == PACKS_PER_INDEX:
            vault.write_index(batch)
            batch = []
    if batch:
        vault.write_index(batch)
    with BlobWriter(vault) as writer:
        rp = finish_recovery_point(vault, writer, draft(objects), entries(objects, chunks))
    return {"rp": rp.id, "packs": packs, "entries": rp.entry_count}


def step_generate_index(vault_dir: str, chunks: int) -> dict[str, Any]:
    """An index-only vault of ``chunks`` chunks (no packs, no recovery point): what the index figures need."""
    vault = Vault.init(LocalStorage(vault_dir), encryption="none")
    batch: list[tuple[str, list[BlobEntry]]] = []
    objects = 0
    for packs, first in enumerate(range(0, chunks, CHUNKS_PER_PACK)):
        blobs = [
            BlobEntry(chunk_id(n), BlobType.DATA, 1, (n - first) * STORED_BYTES, STORED_BYTES, CHUNK_BYTES)
            for n in range(first, min(first + CHUNKS_PER_PACK, chunks))
        ]
        batch.append((pack_id(packs), blobs))
        if len(batch) == PACKS_PER_INDEX:
            vault.write_index(batch)
            objects += 1
            batch = []
    if batch:
        vault.write_index(batch)
        objects += 1
    return {"index_objects": objects}


def step_add_points(vault_dir: str, objects: int, chunks: int, points: int) -> dict[str, Any]:
    """Add ``points - 1`` daily recovery points of an unchanged source: the same entry stream, so the same
    MANIFEST blobs (what dedup makes of an unchanged bucket), under the headers a real backup writes."""
    vault = Vault.open(LocalStorage(vault_dir))
    parent = latest_for_source(vault, SOURCE)
    assert parent is not None
    for day in range(1, points):
        when = parent.time - timedelta(days=day)
        header = parent.model_copy(update={"id": new_recovery_point_id(when), "time": when, "finished": when})
        commit_recovery_point(vault, header)
    return {"points": points}


WORKERS = 10  # a plan's default worker_concurrency: what Prepare spreads a small backup over
CHANGED_EVERY = 10  # the commit bench's run: one object in ten read by a worker, the rest carried over


def source_listing(objects: int, chunks: int) -> Iterator[ObjectEntry]:
    """What the listing of the source that :func:`entries` backed up yields: the same objects, unchanged (one
    entry built per object, as ``sources.s3`` builds it from a listed item)."""
    return listing(objects, CHUNK_BYTES * max(1, -(-chunks // max(objects, 1))))


def own_peak() -> Callable[[], float]:
    """Reset this process's peak RSS (the master index's load peaks above what it keeps); the function returned
    gives the peak since, in MiB: what the step itself holds at most, beside the index."""
    Path("/proc/self/clear_refs").write_text("5")
    return vm_hwm_mib


def step_prepare(vault: Vault, objects: int, chunks: int) -> dict[str, Any]:
    """Prepare on an unchanged source (``runs.backup_steps.prepare``, tags not due): the listing merge-joined with
    the parent's entry stream, cut into carried parts, each staged as it is cut. Prepare never asks the index."""
    fixed = mark()
    peak = own_peak()
    parent = latest_for_source(vault, SOURCE)
    assert parent is not None
    run = StagedRun.new_backup(vault, BackupRun)
    joined = join_with_parent(source_listing(objects, chunks), iter_entry_lines(vault, parent))
    staged = stage_parts(run, joined, retag=False, workers=WORKERS)
    run.clean()
    counts = {"unchanged": staged.objects, "carried_parts": staged.carried_parts, "batches": staged.batches}
    return {**fixed, **counts, "step_peak_mib": peak()}


def step_stage_commit(vault_dir: str, objects: int, chunks: int) -> dict[str, Any]:
    """Stage what Commit finds after a run's workers: one object in ten read (the workers' results, with new
    chunk lists), the others in Prepare's carried parts, and the run document."""
    vault = Vault.open(LocalStorage(vault_dir))
    run = StagedRun.new_backup(vault, BackupRun)

    def joined() -> Iterator[tuple[ObjectEntry, ObjectEntry | None]]:
        for number, entry in enumerate(entries(objects, chunks, etag_salt="c")):
            yield (entry, None) if number % CHANGED_EVERY == 0 else (entry, entry)

    batches = carried = 0
    for part in cut_parts(joined(), retag=False, workers=WORKERS):
        if isinstance(part, BackupBatch):
            stats = BackupStats(objects=len(part.read), objects_read=len(part.read))
            run.put_result(item_name(part.batch), BatchResult(batch=part.batch, entries=part.read, stats=stats))
            batches += 1
        else:
            run.put_result(carried_name(part.batch), part)
            carried += 1
    started = datetime.now(UTC)
    document = BackupRun(
        recovery_point=run.id, started=started, source=SourceSpec(url=SOURCE), batches=batches, carried_parts=carried
    )
    run.write(document)
    return {"run": run.id, "batches": batches, "carried_parts": carried}


def step_commit(vault: Vault, objects: int, chunks: int) -> dict[str, Any]:
    """Commit (``runs.backup_steps.commit``) of the run ``stage-commit`` staged: every part checked by listing,
    then merged by key as streams into the manifest; the staging cleaned. Its entry blobs are deduplicated against
    the index a worker uses (``Vault.lookup``), loaded first."""
    lookup = vault.lookup
    fixed = mark()
    peak = own_peak()
    (run_id,) = {obj.key.split("/")[1] for obj in vault.storage.list(STAGING_PREFIX)}
    run = StagedRun(vault, run_id, BackupRun)
    rp, _ = commit_parts(vault, run, run.read())
    run.clean()
    return {
        **fixed,
        "rp": rp.id,
        "index": type(lookup).__name__,
        "entry_blobs": len(rp.entry_blobs),
        "entries": rp.entry_count,
        "step_peak_mib": peak(),
    }


def step_worker_start(vault: Vault, objects: int, chunks: int) -> dict[str, Any]:
    """A worker's index start-up on the compacted vault (as after Maintenance's Compact): the catalog, the filter
    and the recent index objects, then one lookup of a present and an absent id (the first fetches a shard)."""
    fixed = mark()
    lookup = vault.lookup
    assert isinstance(lookup, ShardedIndex)
    assert chunk_id(chunks // 2) in lookup and chunk_id(chunks) not in lookup
    return {**fixed, "indexed": len(lookup), "index_bytes_per_chunk": lookup.filter.nbytes() / max(len(lookup), 1)}


def step_index_start(vault: Vault, chunks: int) -> dict[str, Any]:
    """Index start-up alone, on an index-only vault: load, then one lookup of a present and an absent id."""
    fixed = mark()
    index = vault.reload_index()
    loaded = time.perf_counter() - _CLOCK[0]
    assert chunk_id(chunks // 2) in index and chunk_id(chunks) not in index
    return {
        **fixed,
        "indexed": len(index),
        "load_seconds": loaded,
        "cpu_seconds": time.process_time(),
        "index_bytes_per_chunk": index.nbytes() / max(len(index), 1),
    }


def step_compact(vault: Vault, chunks: int) -> dict[str, Any]:
    """Compaction of an index-only vault: every row sorted in spilled pieces, shards, pack table and filter written."""
    fixed = mark()
    result = vault.compact_index(force=True)
    return {**fixed, "shards": result.shards, "filter_seconds": result.filter_seconds, "written": result.bytes_written}


def step_sharded_start(vault: Vault, chunks: int) -> dict[str, Any]:
    """A worker's index start-up on a compacted vault: catalog, filter and recent objects; then one lookup of a
    present and an absent id (the first fetches a shard)."""
    fixed = mark()
    lookup = vault.lookup
    loaded = time.perf_counter() - _CLOCK[0]
    assert isinstance(lookup, ShardedIndex)
    assert chunk_id(chunks // 2) in lookup and chunk_id(chunks) not in lookup
    return {
        **fixed,
        "indexed": len(lookup),
        "load_seconds": loaded,
        "cpu_seconds": time.process_time(),
        "index_bytes_per_chunk": lookup.filter.nbytes() / max(len(lookup), 1),
    }


DAY2_BYTES = 1024**3
DAY2_PARENT_SHARE = 0.8  # of a changed object's chunks, those its parent entry has (an edit keeps most of them)
DAY2_ELSEWHERE_SHARE = 0.02  # stored, but not in the parent entry (a copied or renamed object's)


def step_day2(vault: Vault, chunks: int) -> dict[str, Any]:
    """The index questions of a worker storing 1 GiB of changed objects on a compacted vault, as BlobWriter.add asks
    them: ``DAY2_PARENT_SHARE`` of the chunks are their parent entries', ``DAY2_ELSEWHERE_SHARE`` stored elsewhere,
    the rest new. Counted twice: with the parent entries' chunks carried in the batch (the hint) and without."""
    rng = random.Random(2)
    count = DAY2_BYTES // CHUNK_BYTES
    parents = [chunk_id(rng.randrange(chunks)) for _ in range(int(count * DAY2_PARENT_SHARE))]
    elsewhere = [chunk_id(rng.randrange(chunks)) for _ in range(int(count * DAY2_ELSEWHERE_SHARE))]
    new = [chunk_id(chunks + n) for n in range(count - len(parents) - len(elsewhere))]
    asked = [*parents, *elsewhere, *new]
    rng.shuffle(asked)
    figures: dict[str, Any] = {"chunks_per_gib": count}
    for name, known in (("hint", {c[:16] for c in parents}), ("no_hint", set())):
        vault.forget_index()
        lookup = vault.lookup
        assert isinstance(lookup, ShardedIndex)
        started = time.perf_counter()
        stored = sum(1 for c in asked if c[:16] in known or c in lookup)
        assert stored == len(parents) + len(elsewhere)
        figures[f"{name}_gets_per_gib"] = lookup.counters.shard_gets
        figures[f"{name}_mib_per_gib"] = lookup.counters.shard_bytes / 2**20
        figures[f"{name}_seconds"] = time.perf_counter() - started
        del lookup  # before the next one loads: one filter at a time, as in a worker
    return figures


def step_ls(vault: Vault, objects: int, chunks: int) -> dict[str, Any]:
    """``ls``: the latest recovery point's entries, streamed."""
    rp = latest_for_source(vault, SOURCE)
    assert rp is not None
    lookup = vault.lookup  # what locates the entry stream's blobs
    fixed = mark()
    return {**fixed, "entries": sum(1 for _ in iter_entries(vault, rp)), "index": type(lookup).__name__}


def step_check(vault: Vault, objects: int, chunks: int) -> dict[str, Any]:
    """``check`` without read-data on the compacted vault (``compact-vault``): the plan's walk of the index objects
    beside the packs listing, then the recovery point's chunks marked and located shard by shard. Whatever index
    the check loads is part of the step (nothing is loaded before the fixed part is taken)."""
    fixed = mark()
    report = check_vault(vault)
    lookup = vault.lookup
    return {
        **fixed,
        "objects": report.objects,
        "errors": len(report.errors),
        "first_error": report.errors[:1],
        "shard_gets": lookup.counters.shard_gets if isinstance(lookup, ShardedIndex) else 0,
    }


def step_stats(vault: Vault, objects: int, chunks: int) -> dict[str, Any]:
    """``stats`` on the compacted vault: every index object walked once, the needed blobs marked and located."""
    fixed = mark()
    stats = vault_stats(vault)
    return {**fixed, "live_blobs": stats.live_blobs, "errors": 0 if stats.live_blobs else 1, "first_error": []}


def step_compact_vault(vault_dir: str, objects: int, chunks: int) -> dict[str, Any]:
    """Compact the generated vault into a sharded generation (what Maintenance's Compact does before Verify)."""
    result = Vault.open(LocalStorage(vault_dir)).compact_index(force=True)
    return {"shards": result.shards}


def step_uncompact_vault(vault_dir: str, objects: int, chunks: int) -> dict[str, Any]:
    """Retire the generation again, so that the steps after check and stats see the vault as generated."""
    vault = Vault.open(LocalStorage(vault_dir))
    return {"retired": len(vault.invalidate_catalog())}


PRUNE_RUN = "prune-run.json"  # beside the vault: the staged prune run the prune steps measure


def _prune_run(vault: Vault) -> dict[str, Any]:
    assert isinstance(vault.storage, LocalStorage)
    loaded: dict[str, Any] = json.loads((Path(vault.storage.root).parent / PRUNE_RUN).read_text())
    return loaded


def step_prune_start(vault_dir: str, objects: int, chunks: int) -> dict[str, Any]:
    """Setup: a prune's Start (the exclusive lock, the packs listing, the mark batches), all in one partition."""
    vault = Vault.open(LocalStorage(vault_dir))
    run, items = prune_ops.start(vault, PruneOptions(partition_bits=0))
    (Path(vault_dir).parent / PRUNE_RUN).write_text(
        json.dumps({"run_id": run.run_id, "items": [i.model_dump() for i in items]})
    )
    return {"run_id": run.run_id, "items": len(items)}


def step_prune_mark(vault: Vault, objects: int, chunks: int) -> dict[str, Any]:
    """Prune's Mark items, one after another: the recovery point's entry stream (read through the compact index,
    loaded first) and the index objects into sorted runs."""
    staged = _prune_run(vault)
    vault.reload_index()
    fixed = mark()
    for raw in staged["items"]:
        item: prune_ops.MarkItem | None = prune_ops.MarkItem.model_validate(raw)
        while item is not None:
            item = prune_ops.mark(vault, staged["run_id"], item).next
    return {**fixed, "items": len(staged["items"])}


def step_prune_plan(vault: Vault, objects: int, chunks: int) -> dict[str, Any]:
    """Prune's Plan item of the one partition: every live id and index entry of the vault merged."""
    staged = _prune_run(vault)
    fixed = mark()
    result = prune_ops.plan(vault, staged["run_id"], 0)
    return {**fixed, "live_blobs": result.live_blobs, "located": result.located}


def step_prune_decide(vault: Vault, objects: int, chunks: int) -> dict[str, Any]:
    """Prune's Decide: every pack's partial merged and classified (no pack is garbage: every data chunk is live)."""
    staged = _prune_run(vault)
    fixed = mark()
    decision, items = prune_ops.decide(vault, staged["run_id"])
    return {**fixed, "sweep_items": len(items), "live_blobs": decision.live_blobs}


def step_prune_abort(vault_dir: str, objects: int, chunks: int) -> dict[str, Any]:
    """Setup: end the measured prune run (its lock and staging)."""
    vault = Vault.open(LocalStorage(vault_dir))
    return {"staging_deleted": prune_ops.abort(vault, _prune_run(vault)["run_id"])}


def step_forget(vault: Vault, objects: int, chunks: int, points: int) -> dict[str, Any]:
    """Maintenance's forget of a year of daily recovery points of one source, its staged steps in one process: every
    header read (read items), the keep rules applied and manifests deleted (one decide item: one source's points
    are a partition's least)."""
    fixed = mark()
    report = forget_staged(vault, [(SOURCE, FORGET_POLICY)])
    return {**fixed, "kept": report.kept, "removed": report.removed_count}


_CLOCK = [0.0]


def mark() -> dict[str, float]:
    """The step's fixed part so far: RSS now and seconds since the step started."""
    return {"fixed_rss_mib": vm_rss_mib(), "fixed_seconds": time.perf_counter() - _CLOCK[0]}


MEASURED: dict[str, Callable[..., dict[str, Any]]] = {
    "prepare": step_prepare,
    "commit": step_commit,
    "worker-start": step_worker_start,
    "index-start": step_index_start,
    "compact": step_compact,
    "sharded-start": step_sharded_start,
    "day2": step_day2,
    "ls": step_ls,
    "check": step_check,
    "stats": step_stats,
    "prune-mark": step_prune_mark,
    "prune-plan": step_prune_plan,
    "prune-decide": step_prune_decide,
    "forget": step_forget,
}
SETUP: dict[str, Callable[..., dict[str, Any]]] = {
    "generate": step_generate,
    "generate-index": step_generate_index,
    "add-points": step_add_points,
    "stage-commit": step_stage_commit,
    "prune-start": step_prune_start,
    "prune-abort": step_prune_abort,
    "compact-vault": step_compact_vault,
    "uncompact-vault": step_uncompact_vault,
}


def main(argv: list[str]) -> int:
    step, vault_dir, *sizes = argv
    numbers = [int(n) for n in sizes]
    baseline = vm_rss_mib()
    _CLOCK[0] = time.perf_counter()
    if step in SETUP:
        result = SETUP[step](vault_dir, *numbers)
    else:
        result = MEASURED[step](Vault.open(LocalStorage(vault_dir)), *numbers)
    result["seconds"] = time.perf_counter() - _CLOCK[0]
    result["baseline_rss_mib"] = baseline
    result["vm_hwm_mib"] = vm_hwm_mib()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
