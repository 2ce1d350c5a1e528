"""The CLI's readers stream a recovery point: ls, diff and restore of a manifest of many entries print or write as
they read, so their memory does not grow with the entry count (an ObjectEntry takes about 1.5 KiB in memory)."""

from __future__ import annotations

import json
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vaultline.cli.main import main
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.commit import RecoveryPointDraft, finish_recovery_point
from vaultline.repository.manifest import ObjectEntry, RecoveryPoint, new_recovery_point_id
from vaultline.repository.vault import Vault
from vaultline.storage import LocalStorage

ENTRIES = 20_000
# Measured holding them: ls 52 MiB, diff 12 MiB, restore 27 MiB; streaming: 2 to 5 MiB (a manifest blob of at
# most 1 MiB, a restore window of 1,000 entries).
STREAMING_PEAK = 8 * 2**20
# A restore also builds the compact index's per-pack view and its read-ahead (8.2 MiB measured on main with
# index format 2): still a third of what holding the entries took.
RESTORE_STREAMING_PEAK = 14 * 2**20


def synthetic_point(vault: Vault, keys: Iterator[str]) -> RecoveryPoint:
    """A recovery point of empty objects named ``keys`` (in key order), committed as a backup commits one."""
    started = datetime.now(UTC)
    draft = RecoveryPointDraft(
        recovery_point=new_recovery_point_id(started), source="s3://synthetic", source_kind="s3", started=started
    )
    entries = (
        ObjectEntry(key=key, size=0, etag='"d41d8cd98f00b204e9800998ecf8427e"', metadata={"name": key}) for key in keys
    )
    with BlobWriter(vault) as writer:
        return finish_recovery_point(vault, writer, draft, entries)


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault.init(LocalStorage(tmp_path / "vault"))


def peak_of(command: Callable[[], int], output: Path) -> int:
    """The peak of memory traced while ``command`` runs, its stdout going to ``output`` (not to a capture buffer,
    which would hold it all)."""
    saved = sys.stdout
    with output.open("w") as sink:
        sys.stdout = sink
        tracemalloc.start()
        try:
            assert command() == 0
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
            sys.stdout = saved
    return peak


def test_ls_json_of_a_large_recovery_point_streams_one_valid_array(vault: Vault, tmp_path: Path) -> None:
    rp = synthetic_point(vault, (f"k/{n:06d}" for n in range(ENTRIES)))
    out = tmp_path / "ls.json"
    peak = peak_of(lambda: main(["--vault", vault.url, "ls", rp.id, "--json"]), out)
    listed = json.loads(out.read_text())
    assert [e["key"] for e in listed] == [f"k/{n:06d}" for n in range(ENTRIES)]
    assert listed[7] == {
        "key": "k/000007",
        "size": 0,
        "etag": '"d41d8cd98f00b204e9800998ecf8427e"',
        "metadata": {"name": "k/000007"},
    }
    assert peak < STREAMING_PEAK, f"ls held {peak / 2**20:.1f} MiB"


def test_ls_table_of_a_large_recovery_point_prints_row_by_row(vault: Vault, tmp_path: Path) -> None:
    rp = synthetic_point(vault, (f"k/{n:06d}" for n in range(ENTRIES)))
    out = tmp_path / "ls.txt"
    peak = peak_of(lambda: main(["--vault", vault.url, "ls", rp.id]), out)
    lines = out.read_text().splitlines()
    assert lines[0].split() == ["last", "modified", "size", "etag", "key"]
    assert len(lines) == ENTRIES + 1 and lines[-1].endswith(f"k/{ENTRIES - 1:06d}")
    assert peak < STREAMING_PEAK, f"ls held {peak / 2**20:.1f} MiB"


def test_ls_under_a_prefix_stops_after_it(vault: Vault, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rp = synthetic_point(vault, iter(["a/1", "b/1", "b/2", "b0", "c/1"]))
    assert main(["--vault", vault.url, "ls", rp.id, "b/", "--json"]) == 0
    assert [e["key"] for e in json.loads(capsys.readouterr().out)] == ["b/1", "b/2"]


def test_diff_json_of_two_large_recovery_points_streams_the_document(vault: Vault, tmp_path: Path) -> None:
    # Every other key differs: half the entries of each side are added or removed.
    old = synthetic_point(vault, (f"k/{n:06d}" for n in range(0, ENTRIES, 2)))
    new = synthetic_point(vault, (f"k/{n:06d}" for n in range(ENTRIES // 2, ENTRIES + ENTRIES // 2, 2)))
    out = tmp_path / "diff.json"
    peak = peak_of(lambda: main(["--vault", vault.url, "diff", old.id, new.id, "--json"]), out)
    doc = json.loads(out.read_text())
    assert list(doc) == [
        "old",
        "new",
        "added",
        "removed",
        "changed",
        "unchanged",
        "bytes_added",
        "bytes_removed",
        "size_delta",
    ]
    assert len(doc["added"]) == len(doc["removed"]) == ENTRIES // 4
    assert doc["unchanged"] == ENTRIES // 4 and doc["changed"] == []
    assert doc["removed"][0] == {"key": "k/000000", "size": 0}
    assert peak < STREAMING_PEAK, f"diff held {peak / 2**20:.1f} MiB"


def test_restore_include_of_a_large_recovery_point_writes_as_it_reads(vault: Vault, tmp_path: Path) -> None:
    count = ENTRIES // 2
    rp = synthetic_point(vault, (f"d{n // 1000:02d}/f{n:06d}" for n in range(count)))
    target = tmp_path / "out"
    args = ["--vault", vault.url, "restore", rp.id, "--to", str(target), "--include", "d*/f*", "--json"]
    peak = peak_of(lambda: main(args), tmp_path / "restore.json")
    assert json.loads((tmp_path / "restore.json").read_text())["objects"] == count
    assert sum(1 for _ in target.rglob("f*")) == count
    assert peak < RESTORE_STREAMING_PEAK, f"restore held {peak / 2**20:.1f} MiB"
