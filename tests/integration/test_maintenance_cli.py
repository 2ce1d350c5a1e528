"""Verification subsets, damage detection, restore drills, stats, diff, and the maintenance CLI contract."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import set_pack_size
from tests.integration.conftest import Run
from vaultline.operations.backup import run_backup
from vaultline.operations.check import PackSubset, check_vault
from vaultline.operations.diff import DiffTotals, iter_diff
from vaultline.operations.drill import restore_drill
from vaultline.operations.stats import vault_stats
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.chunking import Chunker
from vaultline.repository.layout import pack_key
from vaultline.repository.locks import acquire
from vaultline.repository.manifest import (
    ObjectEntry,
    RecoveryPoint,
    commit_recovery_point,
    list_recovery_points,
    write_entries,
)
from vaultline.repository.packs import BlobType
from vaultline.repository.vault import Vault
from vaultline.runs.maintenance_models import MaintenanceInput, VerifyOptions
from vaultline.sources import open_source
from vaultline.storage import LocalStorage


@pytest.fixture
def vault_dir(tmp_path: Path) -> tuple[Path, list[RecoveryPoint]]:
    """Three recovery points of a small directory with churn, in packs of about three files."""
    src = tmp_path / "src"
    src.mkdir()
    vault = set_pack_size(Vault.init(LocalStorage(tmp_path / "vault")), 60_000)
    rps = []
    for generation in range(3):
        for i in range(6):
            if generation == 0 or i % 3 == generation:
                (src / f"f{i}").write_bytes(random.Random(generation * 10 + i).randbytes(20_000))
        if generation == 2:
            (src / "f5").unlink()
            (src / "new").write_bytes(b"hello")
        rps.append(run_backup(vault, open_source(str(src))))
    return tmp_path / "vault", rps


def test_subset_parts_partition_the_packs_and_percentages_sample(vault_dir: tuple[Path, list[RecoveryPoint]]) -> None:
    root, _ = vault_dir
    vault = Vault.open(str(root))
    packs = sorted(vault.index.packs)
    parts = [PackSubset.parse(f"{n}/3").select(packs) for n in (1, 2, 3)]
    assert sorted(p for part in parts for p in part) == packs
    assert sum(check_vault(vault, read_data_subset=PackSubset.parse(f"{n}/3")).packs_read for n in (1, 2, 3)) == len(
        packs
    )
    assert len(PackSubset.parse("50%").select(packs, random.Random(1))) == -(-len(packs) // 2)
    assert str(MaintenanceInput(verify=VerifyOptions(parts=3, run=4)).verify.pack_subset()) == "2/3"


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_check_catches_a_flipped_byte_only_in_the_part_that_holds_it(
    vault_dir: tuple[Path, list[RecoveryPoint]], run: Run
) -> None:
    root, _ = vault_dir
    vault = Vault.open(str(root))
    packs = sorted(vault.index.packs)
    # A pack of data blobs only: a pack that also holds manifest blobs is read by every check (the structure check
    # loads every manifest), so its damage rightly shows in every part.
    target = next(p for p in packs if all(e.type == BlobType.DATA for e in vault.index.packs[p]))
    flip(root / pack_key(target), 100)
    part = next(n for n in (1, 2, 3) if target in PackSubset.parse(f"{n}/3").select(packs))
    code, out, _ = run("--vault", str(root), "check", "--read-data-subset", f"{part}/3", "--json")
    assert code == 1 and any(target in e for e in json.loads(out)["errors"])
    others = [n for n in (1, 2, 3) if n != part]
    assert all(run("--vault", str(root), "check", "--read-data-subset", f"{n}/3")[0] == 0 for n in others)
    assert run("--vault", str(root), "check", "--read-data")[0] == 1
    assert run("--vault", str(root), "check")[0] == 0  # structure alone cannot see it


def test_check_catches_a_missing_pack_a_truncated_index_and_a_dangling_chunk(
    vault_dir: tuple[Path, list[RecoveryPoint]], run: Run, tmp_path: Path
) -> None:
    root, _ = vault_dir
    vault = Vault.open(str(root))
    (root / pack_key(sorted(vault.index.packs)[0])).unlink()
    code, out, _ = run("--vault", str(root), "check", "--json")
    assert code == 1 and any("missing" in e for e in json.loads(out)["errors"])

    # A manifest whose entry names a chunk that no pack holds.
    with BlobWriter(vault) as writer:
        entry = ObjectEntry(key="ghost", size=3, chunks=["ab" * 32])
        blobs, _count = write_entries(writer, Chunker(vault.config.chunker), [entry])
        writer.flush()
    template = list_recovery_points(vault)[-1]
    commit_recovery_point(
        vault, template.model_copy(update={"id": "20990101T000000Z-00000000", "entry_blobs": blobs, "entry_count": 1})
    )
    report = check_vault(Vault.open(str(root)))
    assert any("ghost" in e and "chunks are missing" in e for e in report.errors)

    index = next((root / "index").iterdir())
    index.write_bytes(index.read_bytes()[:-10])
    code, out, _ = run("--vault", str(root), "check", "--json")
    assert code == 1 and any("corrupt index" in e for e in json.loads(out)["errors"])


def test_restore_drill_into_a_scratch_bucket_verifies_and_cleans_up(
    vault_dir: tuple[Path, list[RecoveryPoint]], s3: Any
) -> None:
    root, rps = vault_dir
    s3.create_bucket(Bucket="scratch")
    out = restore_drill(Vault.open(str(root)), "s3://scratch/drills", rps[1].id)
    assert out.ok and out.verified == out.objects == 6 and out.cleaned_up
    assert s3.list_objects_v2(Bucket="scratch").get("KeyCount", 0) == 0


def test_restore_drill_reports_damage(vault_dir: tuple[Path, list[RecoveryPoint]], tmp_path: Path) -> None:
    root, _ = vault_dir
    vault = Vault.open(str(root))
    flip(root / pack_key(sorted(vault.index.packs)[0]), 5)
    reports = [
        restore_drill(Vault.open(str(root)), str(tmp_path / "scratch"), rp.id) for rp in list_recovery_points(vault)
    ]
    assert any(not r.ok for r in reports)
    assert not any((tmp_path / "scratch").iterdir())


def test_stats_and_diff(vault_dir: tuple[Path, list[RecoveryPoint]], run: Run) -> None:
    root, rps = vault_dir
    vault = Vault.open(str(root))
    stats = vault_stats(vault)
    assert stats.recovery_points == 3 and len(stats.sources) == 1 and stats.garbage_bytes == 0
    assert stats.sources[0].latest == rps[-1].id and stats.dedup_ratio > 1.5
    totals = DiffTotals(old=rps[1].id, new=rps[2].id)
    changes = [(kind, item.key) for kind, item in iter_diff(vault, rps[1], rps[2], totals)]
    assert changes == [("changed", "f2"), ("removed", "f5"), ("added", "new")]  # in key order
    assert (totals.added, totals.removed, totals.changed, totals.unchanged) == (1, 1, 1, 4)
    code, out, _ = run("--vault", str(root), "diff", rps[1].id, rps[2].id[:20], "--json")
    assert code == 0 and json.loads(out)["added"] == [{"key": "new", "size": 5}]
    code, out, _ = run("--vault", str(root), "stats", "--json", "--price-per-gib-month", "1024")
    doc = json.loads(out)
    assert code == 0 and doc["recovery_points"] == 3
    # At $1024 per GiB-month a byte costs a millionth of a dollar: the estimate is the byte counts, scaled.
    assert doc["cost"]["vault_per_month"] == pytest.approx(doc["vault_bytes"] / 1024**2, abs=1e-4)
    assert doc["cost"]["full_copies_per_month"] == pytest.approx(doc["logical_bytes"] / 1024**2, abs=1e-4)
    assert doc["cost"]["full_copies_per_month"] > doc["cost"]["vault_per_month"]  # dedup pays
    code, out, _ = run("--vault", str(root), "stats")
    assert code == 0 and "/month" in out
    assert run("--vault", str(root), "stats", "--price-per-gib-month", "-1")[0] == 2
    assert run("--vault", str(root), "diff", rps[0].id, rps[2].id)[0] == 0


def test_forget_and_prune_cli_forms_and_exit_codes(vault_dir: tuple[Path, list[RecoveryPoint]], run: Run) -> None:
    root, rps = vault_dir
    v = ("--vault", str(root))
    code, out, _ = run(*v, "forget", "--keep-last", "1", "--keep-daily", "1", "--dry-run", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["dry_run"] and doc["removed"] == [rps[1].id, rps[0].id]
    assert doc["decisions"][0]["reasons"] == ["last snapshot", "daily snapshot"]
    assert len(list_recovery_points(Vault.open(str(root)))) == 3
    code, out, _ = run(
        *v, "forget", "--keep-last", "2", "--keep-hourly", "0", "--keep-weekly", "1", "--keep-monthly", "1",
        "--keep-yearly", "1", "--keep-within", "1h", "--keep-tag", "x", "--dry-run",
    )  # fmt: skip
    assert code == 0 and "keep" in out
    code, out, _ = run(*v, "forget", "--keep-last", "1", "--prune", "--json")
    doc = json.loads(out)
    assert code == 0 and len(doc["removed"]) == 2 and doc["prune"]["packs_deleted"] >= 1
    code, out, _ = run(*v, "prune", "--json")
    assert code == 0 and json.loads(out)["packs_deleted"] == 0
    assert run(*v, "prune")[0] == 0
    assert run(*v, "check", "--read-data", "--json")[0] == 0

    assert run(*v, "forget")[0] == 2  # no keep rule
    assert run(*v, "forget", "--keep-within", "2w")[0] == 2
    assert run(*v, "check", "--read-data", "--read-data-subset", "1/2")[0] == 2
    assert run(*v, "check", "--read-data-subset", "3/2")[0] == 2
    assert run(*v, "check", "--read-data-subset", "0%")[0] == 2
    assert run(*v, "diff", "latest", "nope")[0] == 1

    acquire(LocalStorage(root), "backup", exclusive=False, owner="someone")
    code, _, err = run(*v, "prune")
    assert code == 1 and "locked" in err
    assert run(*v, "unlock", "--remove-all")[0] == 0
    assert run(*v, "prune")[0] == 0


def test_index_compact_cli_writes_a_generation_once_and_check_still_passes(
    vault_dir: tuple[Path, list[RecoveryPoint]], run: Run
) -> None:
    root, _ = vault_dir
    v = ("--vault", str(root))
    code, out, _ = run(*v, "index", "compact", "--json")
    doc = json.loads(out)
    assert code == 0 and not doc["up_to_date"] and doc["shards"] == 1 and doc["blobs"] > 0
    code, out, _ = run(*v, "index", "compact")
    assert code == 0 and f"{doc['generation']} is up to date" in out
    assert run(*v, "check", "--read-data")[0] == 0
    assert run(*v, "index")[0] == 2  # no subcommand


def test_a_cli_backup_compacts_the_index_first_once_the_part_it_loads_whole_has_grown(
    vault_dir: tuple[Path, list[RecoveryPoint]], run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaultline.operations import compact

    root, _ = vault_dir
    v = ("--vault", str(root))
    tail = compact.index_tail_bytes(Vault.open(LocalStorage(root)))
    assert tail > 0  # three backups' index objects, no generation yet
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "f").write_bytes(b"new data")

    monkeypatch.setattr(compact, "AUTO_COMPACT_TAIL_BYTES", tail + 1)
    code, _, err = run(*v, "backup", str(tmp_path / "more"))
    assert code == 0 and "compacted" not in err  # below the threshold: nothing compacted

    monkeypatch.setattr(compact, "AUTO_COMPACT_TAIL_BYTES", 1)
    code, _, err = run(*v, "backup", "--no-compact", str(tmp_path / "more"))
    assert code == 0 and "compacted" not in err
    (tmp_path / "more" / "f").write_bytes(b"newer data")
    code, out, err = run(*v, "backup", "--json", str(tmp_path / "more"))
    assert code == 0 and "compacted the index first" in err
    assert json.loads(out)["objects"] == 1  # stdout is still the backup's own document
    # What the generation consolidates is no longer loaded whole: only the index object written since.
    after = compact.index_tail_bytes(Vault.open(LocalStorage(root)))
    assert 0 < after < tail
    assert run(*v, "check", "--read-data")[0] == 0
