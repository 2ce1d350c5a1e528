"""Forget as a staged run (what the Maintenance state machine maps): the keep rules of every plan applied to each
source's whole history, read in batches, decided per partition, resumable on both cursors, and never on part of a
history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Run, count_manifest_reads
from vaultline.errors import IntegrityError
from vaultline.operations import forget_run
from vaultline.operations.backup import run_backup
from vaultline.operations.forget_run import ForgetDecideItem, ForgetReadItem, forget_staged
from vaultline.operations.retention import PointInTime, RetentionPolicy, apply_group
from vaultline.repository.layout import STAGING_PREFIX, manifest_key
from vaultline.repository.manifest import (
    RecoveryPoint,
    commit_recovery_point,
    list_recovery_points,
    new_recovery_point_id,
)
from vaultline.repository.object_lock import ObjectLockSettings, save_object_lock
from vaultline.repository.vault import Vault
from vaultline.runs import forget_steps
from vaultline.runs.forget_models import ForgetDecideEvent, ForgetReadEvent, ForgetRunEvent
from vaultline.runs.maintenance_models import MaintenanceInput, SourcePolicy
from vaultline.sources import open_source
from vaultline.storage import S3Storage

START = datetime(2026, 1, 1, tzinfo=UTC)
KEEP_3 = RetentionPolicy(keep_last=3)


def _history(vault: Vault, tmp_path: Path, sources: dict[str, int]) -> None:
    """``sources[name]`` daily recovery points of each named source: one real backup, then its header re-dated and
    renamed (what an unchanged source's daily backups commit), interleaved in time as a vault's sources are."""
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "f").write_bytes(b"data")
    real = run_backup(vault, open_source(str(src)))
    vault.storage.delete(manifest_key(real.id))
    for day in range(max(sources.values())):
        for offset, (name, count) in enumerate(sorted(sources.items())):
            if day < count:
                when = START + timedelta(days=day, minutes=offset)
                update = {"id": new_recovery_point_id(when), "time": when, "finished": when, "source": name}
                commit_recovery_point(vault, real.model_copy(update=update))


def _left(vault: Vault) -> dict[str, list[RecoveryPoint]]:
    left: dict[str, list[RecoveryPoint]] = {}
    for rp in list_recovery_points(vault):
        left.setdefault(rp.source, []).append(rp)
    return left


def _expected_kept(points: list[RecoveryPoint], policy: RetentionPolicy) -> set[str]:
    decisions = apply_group([PointInTime(id=p.id, source=p.source, time=p.time) for p in points], policy)
    return {d.id for d in decisions if d.keep}


def _keep_last(source: str, count: int) -> MaintenanceInput:
    return MaintenanceInput(policies=[SourcePolicy(source=source, rules={"keep_last": count})])


@pytest.fixture
def vault(s3: Any) -> Vault:
    """An S3 vault: the staged steps are the serverless workflow's, which needs one."""
    s3.create_bucket(Bucket="vault")
    return Vault.init(S3Storage("vault", "v"))


def test_each_sources_rules_apply_to_its_own_history_reading_every_header_once(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(vault, tmp_path, {"s3://a": 10, "s3://b": 6, "s3://c": 4})
    before = _left(vault)
    reads = count_manifest_reads(monkeypatch, S3Storage)
    daily = RetentionPolicy(keep_daily=2, keep_weekly=1)
    report = forget_staged(vault, [("s3://a", KEEP_3), ("s3://b", daily), ("s3://c", None)])

    assert sorted(reads) == sorted(set(reads)) and len(reads) == 20
    left = _left(vault)
    assert {p.id for p in left["s3://a"]} == _expected_kept(before["s3://a"], KEEP_3)
    assert {p.id for p in left["s3://b"]} == _expected_kept(before["s3://b"], daily)
    assert left["s3://c"] == before["s3://c"]  # a plan without rules keeps everything
    kept = len(left["s3://a"]) + len(left["s3://b"])
    assert (report.sources, report.kept, report.removed_count, report.skipped) == (2, kept, 16 - kept, ["s3://c"])
    assert report.recovery_points == 20
    assert not list(vault.storage.list(STAGING_PREFIX)), "the summary cleans the run's staging"


def test_a_second_plans_rules_decide_among_what_the_first_kept(vault: Vault, tmp_path: Path) -> None:
    _history(vault, tmp_path, {"s3://a": 10})
    before = _left(vault)["s3://a"]
    # Alone, keep_daily=5 keeps the newest five; after keep_last=3 only those three are left to decide among.
    forget_staged(vault, [("s3://a", KEEP_3), ("s3://a", RetentionPolicy(keep_daily=5))])
    assert {p.id for p in _left(vault)["s3://a"]} == _expected_kept(before, KEEP_3)


def test_items_out_of_time_resume_on_their_cursors_and_forget_what_one_pass_forgets(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _history(vault, tmp_path, {"s3://a": 70, "s3://b": 30})
    before = _left(vault)
    monkeypatch.setattr(forget_run, "POINTS_PER_BATCH", 64)
    monkeypatch.setattr(forget_run, "POINTS_PER_PARTITION", 1)  # a partition per source
    monkeypatch.setattr(forget_run, "DELETE_BATCH", 10)
    calls = {"read": 0, "decide": 0}
    for step in calls:
        original = getattr(forget_run, step)

        def counted(*args: Any, _step: str = step, _original: Any = original, **kwargs: Any) -> Any:
            calls[_step] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(forget_run, step, counted)

    report = forget_staged(vault, [("s3://a", KEEP_3), ("s3://b", KEEP_3)], remaining_ms=lambda: 0)

    # Always out of time: each part does one round of header reads (32) or one delete batch (10), then loops.
    assert calls == {"read": 2 + 2, "decide": 7 + 3}
    left = _left(vault)
    assert {s: {p.id for p in ps} for s, ps in left.items()} == {
        s: _expected_kept(ps, KEEP_3) for s, ps in before.items()
    }
    assert (report.sources, report.kept, report.removed_count) == (2, 6, 94)


def test_no_decision_is_made_on_part_of_a_history(vault: Vault, tmp_path: Path) -> None:
    _history(vault, tmp_path, {"s3://a": 40})
    planned = forget_steps.plan(vault, _keep_last("s3://a", 1))
    first = forget_run.read(vault, planned.run_id, ForgetReadItem(number=0, batch="batches/read/000000"), lambda: 0)
    assert not first.done  # the read item stopped after its first 32 headers

    with pytest.raises(IntegrityError, match="read items \\[0\\] did not finish"):
        forget_steps.decide(vault, ForgetDecideEvent(run_id=planned.run_id, item=ForgetDecideItem(partition=0)))
    with pytest.raises(IntegrityError, match="did not finish"):
        forget_steps.summary(vault, ForgetRunEvent(forget_run=planned))
    assert len(list_recovery_points(vault)) == 40, "nothing is forgotten on part of the history"


def test_a_read_part_retried_after_a_crash_counts_each_point_once(vault: Vault, tmp_path: Path) -> None:
    _history(vault, tmp_path, {"s3://a": 40})
    planned = forget_steps.plan(
        vault, MaintenanceInput(policies=[SourcePolicy(source="s3://a", rules={"keep_last": 2})])
    )
    item = ForgetReadItem(number=0, batch="batches/read/000000")
    # The first attempt read the whole batch but its result was lost; the retry ran out of time after 32 headers.
    forget_steps.read(vault, ForgetReadEvent(run_id=planned.run_id, item=item))
    retried = forget_steps.read(vault, ForgetReadEvent(run_id=planned.run_id, item=item), lambda: 0)
    assert retried.next is not None
    forget_steps.read(vault, ForgetReadEvent(run_id=planned.run_id, item=retried.next))
    decided = forget_steps.decide(vault, ForgetDecideEvent(run_id=planned.run_id, item=ForgetDecideItem(partition=0)))
    assert (decided.kept, decided.removed_count) == (2, 38)
    result = forget_steps.summary(vault, ForgetRunEvent(forget_run=planned))
    assert (result.sources, result.kept, result.removed_count, len(result.removed)) == (1, 2, 38, 38)


def test_a_point_forgotten_since_the_plan_is_skipped(vault: Vault, tmp_path: Path) -> None:
    _history(vault, tmp_path, {"s3://a": 5})
    oldest = list_recovery_points(vault)[0]
    planned = forget_steps.plan(
        vault, MaintenanceInput(policies=[SourcePolicy(source="s3://a", rules={"keep_last": 2})])
    )
    vault.storage.delete(manifest_key(oldest.id))  # the backup's Retention step forgot it meanwhile
    item = ForgetReadItem(number=0, batch="batches/read/000000")
    read = forget_steps.read(vault, ForgetReadEvent(run_id=planned.run_id, item=item))
    assert (read.read, read.missing, read.staged) == (4, 1, 4)
    forget_steps.decide(vault, ForgetDecideEvent(run_id=planned.run_id, item=ForgetDecideItem(partition=0)))
    result = forget_steps.summary(vault, ForgetRunEvent(forget_run=planned))
    assert (result.kept, result.removed_count) == (2, 2)


def test_a_run_without_rules_reads_nothing_and_names_the_skipped_sources(vault: Vault, tmp_path: Path) -> None:
    _history(vault, tmp_path, {"s3://a": 3})
    planned = forget_steps.plan(vault, MaintenanceInput(policies=[SourcePolicy(source="s3://a", rules={})]))
    assert (planned.read_items, planned.partitions) == (0, 0)
    result = forget_steps.summary(vault, ForgetRunEvent(forget_run=planned))
    assert (result.sources, result.removed_count, result.skipped) == (0, 0, ["s3://a"])
    assert len(list_recovery_points(vault)) == 3
    assert not list(vault.storage.list(STAGING_PREFIX))


def test_a_manifest_object_lock_holds_is_reported_held_and_kept(s3: Any, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="locked-vault", ObjectLockEnabledForBucket=True)
    vault = Vault.init(S3Storage("locked-vault", "v"))
    save_object_lock(vault.storage, ObjectLockSettings(mode="GOVERNANCE", days=1))
    vault = Vault.open(S3Storage("locked-vault", "v"))
    _history(vault, tmp_path, {"s3://a": 3})  # every manifest locked for a day
    oldest = list_recovery_points(vault)[0]

    report = forget_staged(vault, [("s3://a", RetentionPolicy(keep_last=2))])
    assert report.removed_count == 0 and [h.key for h in report.held] == [manifest_key(oldest.id)]
    assert report.held[0].retain_until is not None and report.held[0].retain_until > datetime.now(UTC)
    assert len(list_recovery_points(vault)) == 3

    later = datetime.now(UTC) + timedelta(days=2)
    assert forget_staged(vault, [("s3://a", RetentionPolicy(keep_last=2))], now=later).removed == [oldest.id]


def test_the_cli_runs_the_staged_steps_on_every_sources_whole_history_reading_each_header_once(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run
) -> None:
    _history(vault, tmp_path, {"s3://a": 30, "s3://b": 12})
    before = _left(vault)
    # Histories spread over many read items and the sources over several partitions, as a large vault's are.
    monkeypatch.setattr(forget_run, "POINTS_PER_BATCH", 8)
    monkeypatch.setattr(forget_run, "POINTS_PER_PARTITION", 10)
    decided: list[int] = []
    decide = forget_run.decide

    def counted(*args: Any, **kwargs: Any) -> Any:
        result = decide(*args, **kwargs)
        decided.append(result.partition)
        return result

    monkeypatch.setattr(forget_run, "decide", counted)
    reads = count_manifest_reads(monkeypatch, S3Storage)
    code, out, _ = run("--vault", "s3://vault/v", "forget", "--keep-daily", "3", "--keep-weekly", "2", "--json")

    assert code == 0 and decided == [0, 1, 2, 3, 4], "one decide item per partition of the 42 points"
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 42
    policy = RetentionPolicy(keep_daily=3, keep_weekly=2)
    left = _left(vault)
    assert {s: {p.id for p in left[s]} for s in left} == {s: _expected_kept(ps, policy) for s, ps in before.items()}
    doc = json.loads(out)
    for source, points in before.items():
        expected = apply_group([PointInTime(id=p.id, source=p.source, time=p.time) for p in points], policy)
        listed = [d for d in doc["decisions"] if d["source"] == source]
        assert [(d["id"], d["keep"], d["reasons"]) for d in listed] == [(d.id, d.keep, d.reasons) for d in expected]
    assert set(doc["kept"]) == {p.id for ps in left.values() for p in ps}
    assert set(doc["removed"]) == {p.id for ps in before.values() for p in ps} - set(doc["kept"])
    assert not doc["dry_run"] and doc["held"] == [] and doc["prune"] is None
    assert not list(vault.storage.list(STAGING_PREFIX)), "the run's staging is cleaned"


def test_a_cli_dry_run_lists_what_would_go_and_deletes_nothing(vault: Vault, tmp_path: Path, run: Run) -> None:
    _history(vault, tmp_path, {"s3://a": 5, "s3://b": 2})
    code, out, _ = run("--vault", "s3://vault/v", "forget", "--keep-last", "1", "--dry-run")
    assert code == 0 and out.count("│ remove ") == 5 and "kept 2, would remove 5 recovery points" in out
    assert len(list_recovery_points(vault)) == 7
    assert not list(vault.storage.list(STAGING_PREFIX))


def test_the_cli_lists_a_manifest_object_lock_holds_as_held(s3: Any, tmp_path: Path, run: Run) -> None:
    s3.create_bucket(Bucket="locked-vault", ObjectLockEnabledForBucket=True)
    vault = Vault.init(S3Storage("locked-vault", "v"))
    save_object_lock(vault.storage, ObjectLockSettings(mode="GOVERNANCE", days=1))
    vault = Vault.open(S3Storage("locked-vault", "v"))
    _history(vault, tmp_path, {"s3://a": 3})
    oldest = list_recovery_points(vault)[0]

    code, out, _ = run("--vault", "s3://locked-vault/v", "forget", "--keep-last", "2", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["removed"] == [] and [h["key"] for h in doc["held"]] == [manifest_key(oldest.id)]
    code, out, err = run("--vault", "s3://locked-vault/v", "forget", "--keep-last", "2")
    assert code == 0 and "held" in out and "kept 2, removed 0 recovery points, 1 held" in out
    assert manifest_key(oldest.id) in err
