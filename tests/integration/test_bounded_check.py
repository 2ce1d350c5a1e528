"""check, stats and the Maintenance Verify steps on a compacted vault of several index shards: they never load the
whole index, locate the live blobs in one pass over the shards, and find exactly what they found before."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import set_pack_size
from tests.integration.conftest import Run
from tests.integration.test_verify_steps import _map, _staging, _verify
from vaultline.operations import marks
from vaultline.operations.backup import run_backup
from vaultline.operations.check import CheckReport, check_vault
from vaultline.operations.compact import compact_index
from vaultline.operations.stats import VaultStats, vault_stats
from vaultline.repository import index_shards, sharded_index
from vaultline.repository.index import MasterIndex
from vaultline.repository.layout import pack_key
from vaultline.repository.manifest import iter_entries, list_recovery_points
from vaultline.repository.packs import BlobType
from vaultline.repository.sharded_index import ShardedIndex
from vaultline.repository.vault import Vault
from vaultline.runs import verify_steps
from vaultline.runs.maintenance_models import MaintenanceInput, VerifySummaryEvent
from vaultline.sources import open_source
from vaultline.storage import Storage


def _fill(vault: Vault, src: Path) -> Vault:
    """Three recovery points of a churning directory of 40 files, in packs of a few files each."""
    vault = set_pack_size(vault, 60_000)
    src.mkdir()
    for generation in range(3):
        for i in range(40):
            if generation == 0 or i % 3 == generation:
                (src / f"f{i:02d}").write_bytes(random.Random(generation * 100 + i).randbytes(12_000))
        run_backup(vault, open_source(str(src)))
    return Vault.open(vault.storage)


def _compact(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> int:
    """Compact into shards of a few rows each; return the shard count."""
    with monkeypatch.context() as patched:
        patched.setattr(index_shards, "SHARD_ROWS_TARGET", 4)
        generation = compact_index(vault)
    assert generation.shards >= 16, generation
    return generation.shards


@pytest.fixture
def local(tmp_path: Path) -> Vault:
    return _fill(Vault.init(marks.LocalStorage(tmp_path / "vault")), tmp_path / "src")


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> Counter[int]:
    """Forbid the whole index: ``Vault.index`` and ``reload_index`` raise, and the index a lookup opens beside a
    catalog must be the recent objects only (none, right after compaction). Counts each shard fetched by number."""

    def whole(*_: Any) -> MasterIndex:
        raise AssertionError("the whole index was loaded")

    monkeypatch.setattr(Vault, "index", property(whole))
    monkeypatch.setattr(Vault, "reload_index", whole)
    loads = sharded_index.load_whole_index

    def recent_only(storage: Storage, cipher: Any, index_ids: Collection[str] | None = None) -> MasterIndex:
        assert index_ids is not None and len(index_ids) == 0, "more than the recent index objects were loaded"
        return loads(storage, cipher, index_ids)

    monkeypatch.setattr(sharded_index, "load_whole_index", recent_only)
    counts: Counter[int] = Counter()
    fetch = ShardedIndex.fetch_shard

    def counted(self: ShardedIndex, number: int) -> bytes:
        counts[number] += 1
        return fetch(self, number)

    monkeypatch.setattr(ShardedIndex, "fetch_shard", counted)
    return counts


def _data_pack(vault: Vault) -> str:
    """A pack of object data only that the latest recovery point needs (its manifests stay readable)."""
    latest = max(list_recovery_points(vault), key=lambda rp: rp.time)
    needed = {bytes.fromhex(c)[:16] for e in iter_entries(vault, latest) for c in e.chunks}
    whole = vault.index
    return next(
        p
        for p in sorted(whole.packs)
        if all(e.type == BlobType.DATA for e in whole.packs[p]) and any(e.id[:16] in needed for e in whole.packs[p])
    )


def _findings(report: CheckReport) -> tuple[int, int, int, list[str], int]:
    return (report.recovery_points, report.objects, report.error_count, sorted(report.errors), report.warning_count)


def test_check_and_stats_of_a_sharded_vault_never_load_the_whole_index(
    local: Vault, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, run: Run
) -> None:
    before_check = check_vault(local, read_data=True)
    before_stats = vault_stats(Vault.open(local.storage))
    shards = _compact(local, monkeypatch)
    fetched: Counter[int] = request.getfixturevalue("fetched")
    root = local.storage.url

    assert run("--vault", root, "check")[0] == 0
    code, out, _ = run("--vault", root, "check", "--read-data", "--json")
    assert code == 0
    report = CheckReport.model_validate(json.loads(out))
    assert _findings(report) == _findings(before_check) and report.packs_read == before_check.packs_read
    assert (report.packs, report.blobs) == (before_check.packs, before_check.blobs)
    # Each check located the live blobs in one pass: a shard fetched at most once per check (the manifests' few
    # entry blobs go through the lookup's cache), and more than one of them.
    assert 1 < len(fetched) <= shards and max(fetched.values()) <= 2 * 2, fetched

    fetched.clear()
    code, out, _ = run("--vault", root, "stats", "--json")
    assert code == 0
    stats = VaultStats.model_validate(json.loads(out))
    assert stats == before_stats
    assert len(fetched) > 1 and max(fetched.values()) <= 2, fetched


def test_a_missing_pack_of_a_sharded_vault_is_named_by_every_entry_that_needs_it(
    local: Vault, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, run: Run
) -> None:
    victim = _data_pack(local)
    _compact(local, monkeypatch)
    local.storage.delete(pack_key(victim))
    unsharded = Vault.open(local.storage)
    unsharded.__dict__["lookup"] = unsharded.index  # the pre-compaction path: the whole index
    expected = check_vault(unsharded)
    assert any(f"pack {victim} is missing" in e for e in expected.errors), expected.errors
    request.getfixturevalue("fetched")

    code, out, err = run("--vault", local.storage.url, "check", "--json")
    assert code == 1, err
    report = CheckReport.model_validate(json.loads(out))
    assert f"pack {victim} is indexed but missing from storage" in report.errors
    assert _findings(report) == _findings(expected)


def test_marks_past_the_flush_bound_spill_and_find_the_same(
    local: Vault, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    victim = _data_pack(local)
    _compact(local, monkeypatch)
    local.storage.delete(pack_key(victim))
    request.getfixturevalue("fetched")
    in_memory = check_vault(Vault.open(local.storage))
    stats = vault_stats(Vault.open(local.storage))
    spilled: list[str] = []
    put = marks.rec.Staging.put_bytes

    def recorded(self: marks.rec.Staging, name: str, data: bytes) -> None:
        spilled.append(name)
        put(self, name, data)

    monkeypatch.setattr(marks.rec.Staging, "put_bytes", recorded)
    monkeypatch.setattr(marks, "FLUSH_RECORDS", 7)

    assert _findings(check_vault(Vault.open(local.storage))) == _findings(in_memory)
    assert vault_stats(Vault.open(local.storage)) == stats
    assert any("/marks/" in name or name.startswith("marks/") for name in spilled), spilled[:5]
    assert not list(local.storage.list("staging/")), "a check in one process writes no staging to the vault"


@pytest.fixture
def s3_sharded(s3_vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Vault]:
    vault = _fill(s3_vault, tmp_path / "src")
    _compact(vault, monkeypatch)
    yield Vault.open(vault.storage)


def test_verify_steps_on_a_sharded_vault_loop_spill_and_find_what_check_finds(
    s3_sharded: Vault, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    vault = s3_sharded
    unsharded = Vault.open(vault.storage)
    victim = _data_pack(unsharded)
    vault.storage.delete(pack_key(victim))
    expected = check_vault(unsharded, read_data=True)
    request.getfixturevalue("fetched")
    monkeypatch.setattr(marks, "FLUSH_RECORDS", 5)
    monkeypatch.setattr("vaultline.operations.check.FETCHES_PER_ASK", 1)

    unbudgeted = _verify(vault)
    planned = verify_steps.plan(vault, MaintenanceInput.model_validate({"verify": {"subset": "100%"}}))
    no_time: Callable[[], int] = lambda: 0  # noqa: E731
    invocations = _map(vault, planned, remaining_ms=no_time)
    budgeted = verify_steps.summary(vault, VerifySummaryEvent(verifying=planned))

    assert budgeted == unbudgeted
    assert invocations > budgeted.packs_read + budgeted.recovery_points  # the joins looped on their partitions
    assert (budgeted.error_count, sorted(budgeted.errors)) == (expected.error_count, sorted(expected.errors))
    assert any(f"pack {victim} is missing" in e for e in budgeted.errors)
    assert _staging(vault) == []
