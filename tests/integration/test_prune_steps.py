"""Prune's staged steps one by one: results that must all be there, a lock held across steps, items that loop on
their cursors, and the copies an interrupted repack leaves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_prune import Crash, assert_restores, build
from vaultline.errors import IntegrityError, VaultError
from vaultline.operations import prune as p
from vaultline.repository import locks
from vaultline.repository.layout import lock_key
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault


def _stored(vault: Vault) -> list[str]:
    return sorted(o.key for o in vault.storage.list("") if o.key.startswith(("data/", "index/")))


def _mark_all(vault: Vault, run: p.PruneRun, items: list[p.MarkItem]) -> None:
    for item in items:
        step: p.MarkItem | None = item
        while step is not None:
            step = p.mark(vault, run.run_id, step).next


def test_a_missing_plan_result_fails_the_decision_and_nothing_is_deleted(tmp_path: Path) -> None:
    vault, _, _ = build(tmp_path)
    before = _stored(vault)
    run, items = p.start(vault, p.PruneOptions(partition_bits=2))
    _mark_all(vault, run, items)
    for partition in (0, 1, 3):  # partition 2's plan never reported
        p.plan(vault, run.run_id, partition)
    with pytest.raises(IntegrityError, match=r"plan results of 1 items \['02'\]"):
        p.decide(vault, run.run_id)
    assert p.abort(vault, run.run_id) > 0
    assert _stored(vault) == before and list(locks.list_locks(vault.storage)) == []


def test_a_mark_item_that_stopped_on_its_budget_and_never_continued_fails_the_decision(tmp_path: Path) -> None:
    vault, _, _ = build(tmp_path)
    run, items = p.start(vault, p.PruneOptions(partition_bits=0))
    index_item = next(i for i in items if i.kind == "index")  # both backups wrote index objects: two in one batch
    cut = p.mark(vault, run.run_id, index_item, remaining_ms=lambda: 0)
    assert not cut.done and cut.next is not None and cut.next.start == 1
    for item in items:
        if item is not index_item:
            p.mark(vault, run.run_id, item)
    with pytest.raises(IntegrityError, match=rf"mark results of 1 items \['{index_item.number:06d}'\]"):
        p.plan(vault, run.run_id, 0)
    p.abort(vault, run.run_id)


def test_a_step_whose_lock_was_removed_or_went_stale_fails_before_deleting(tmp_path: Path) -> None:
    vault, _, _ = build(tmp_path)
    before = _stored(vault)
    run, items = p.start(vault, p.PruneOptions(partition_bits=0))
    _mark_all(vault, run, items)
    p.plan(vault, run.run_id, 0)
    locks.release(vault.storage, run.lock_id)  # what remove_stale does to a lock nobody refreshed
    with pytest.raises(VaultError, match="lost its lock"):
        p.decide(vault, run.run_id)

    run, items = p.start(vault, p.PruneOptions(partition_bits=0))
    info = locks.LockInfo.model_validate_json(vault.storage.get(lock_key(run.lock_id)))
    old = info.refreshed - locks.STALE_AFTER * 2
    vault.storage.put(lock_key(run.lock_id), info.model_copy(update={"refreshed": old}).model_dump_json().encode())
    with pytest.raises(VaultError, match="went stale"):
        p.mark(vault, run.run_id, items[0])
    p.abort(vault, run.run_id)
    assert _stored(vault) == before


@pytest.mark.parametrize("bits", [0, 3])
def test_items_that_loop_on_their_cursors_do_what_one_pass_does(tmp_path: Path, bits: int) -> None:
    (tmp_path / "once").mkdir()
    (tmp_path / "looped").mkdir()
    once, _, expected = build(tmp_path / "once")
    looped, _, looped_expected = build(tmp_path / "looped")
    whole = p.prune(once, p.PruneOptions(partition_bits=bits))
    calls: list[int] = []

    def nothing_left() -> int:
        calls.append(1)
        return 0

    # Every item stops after each unit of work: a recovery point, an index object, a pack, an index object.
    parts = p.prune(looped, p.PruneOptions(partition_bits=bits), remaining_ms=nothing_left)
    assert calls
    fields = ("packs_deleted", "packs_repacked", "packs_written", "blobs_repacked", "bytes_repacked", "live_blobs")
    fields += ("index_objects_deleted",)
    # Finish writes the survivors of each replaced index object apart when it loops, together when it does not.
    assert parts.index_objects_written >= whole.index_objects_written >= 2  # the new packs', then the survivors'

    assert [getattr(parts, f) for f in fields] == [getattr(whole, f) for f in fields]
    assert (parts.packs_after, whole.packs_after) == (len(list_pack_ids(looped.storage)), whole.packs_after)
    assert_restores(once, expected, tmp_path / "r1")
    assert_restores(looped, looped_expected, tmp_path / "r2")


def test_the_copy_an_interrupted_repack_indexed_wins_over_the_old_pack(tmp_path: Path) -> None:
    vault, _, expected = build(tmp_path)

    def crash_after_the_sweeps_index(step: str) -> None:
        if step == "index-written":
            raise Crash(step)

    with pytest.raises(Crash):
        p.prune(vault, fault=crash_after_the_sweeps_index)
    # The repacked blob is now indexed in the old, sparse pack and in the new one: the new one keeps it.
    again = p.prune(Vault.open(vault.storage))
    assert (again.packs_repacked, again.packs_written) == (0, 0) and again.packs_deleted >= 2
    assert_restores(vault, expected, tmp_path / "restore")
    idle = p.prune(Vault.open(vault.storage))
    assert (idle.packs_deleted, idle.packs_repacked, idle.unindexed_packs_deleted) == (0, 0, 0)


def test_a_dry_run_reports_the_plan_and_leaves_no_staging_or_lock(tmp_path: Path) -> None:
    vault, _, _ = build(tmp_path)
    before = sorted(o.key for o in vault.storage.list(""))
    report = p.prune(vault, p.PruneOptions(dry_run=True, partition_bits=1))
    assert report.dry_run and (report.packs_deleted, report.packs_repacked) == (1, 1)
    assert sorted(o.key for o in vault.storage.list("")) == before


def test_a_crash_between_any_two_requests_of_a_sweep_in_single_pack_batches_is_finished_by_the_next_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(p, "SWEEP_PACKS", 1)  # one pack per sweep item: crashes between items, not only inside
    options = p.PruneOptions(partition_bits=1)
    crash_at, seen = 0, []
    while True:
        case = tmp_path / f"crash-{crash_at}"
        case.mkdir()
        vault, _, expected = build(case)
        calls: list[str] = []

        def fault(step: str, calls: list[str] = calls, at: int = crash_at) -> None:
            calls.append(step)
            if len(calls) == at + 1:
                raise Crash(step)

        try:
            p.prune(vault, options, fault=fault)
        except Crash:
            seen.append(calls[-1])
            assert_restores(vault, expected, case / "after-crash")
            p.prune(Vault.open(vault.storage), options)
            assert_restores(vault, expected, case / "after-next-prune")
            idle = p.prune(Vault.open(vault.storage), options)
            assert (idle.packs_deleted, idle.packs_repacked, idle.unindexed_packs_deleted) == (0, 0, 0)
            crash_at += 1
            continue
        break
    assert set(seen) == {"pack-written", "index-written", "index-deleted", "pack-deleted"}
    assert seen.count("pack-deleted") >= 2  # the garbage pack and the repacked one, each in its own item


def test_finish_run_again_after_it_completed_reports_the_same_success_and_touches_nothing(tmp_path: Path) -> None:
    vault, _, expected = build(tmp_path)
    run, items = p.start(vault, p.PruneOptions(partition_bits=0))
    _mark_all(vault, run, items)
    p.plan(vault, run.run_id, 0)
    _, sweep_items = p.decide(vault, run.run_id)
    for item in sweep_items:
        step: p.SweepItem | None = item
        while step is not None:
            step = p.sweep(vault, run.run_id, step).next
    first = p.finish(vault, run.run_id)
    assert first.done and first.report is not None
    after = _stored(vault)

    # The first response was lost and the invoke retried: the rerun must not fail a prune that completed.
    again = p.finish(vault, run.run_id)

    assert again.done and again.report == first.report
    assert _stored(vault) == after
    assert list(vault.storage.list("locks/")) == []
    assert_restores(vault, expected, tmp_path / "restored")
    # The next prune's Start forgets the kept report.
    next_run, _ = p.start(vault, p.PruneOptions(partition_bits=0))
    assert [o.key for o in vault.storage.list(f"staging/{run.run_id}/")] == []
    p.abort(vault, next_run.run_id)
