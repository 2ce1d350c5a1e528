"""The CLI's backup is one stream: a directory lists in key order (the manifest's), the listing is merge-joined with
the parent's entries as both advance, and each object is read and handed to the commit while the listing still
runs; nothing waits for the whole listing or loads the whole parent."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vaultline.operations.backup as backup
from vaultline.repository.chunking import Readable
from vaultline.repository.manifest import ObjectEntry, ObjectIssue, RecoveryPoint, iter_entries
from vaultline.repository.vault import Vault
from vaultline.sources import LocalSource
from vaultline.sources.base import ObjectVanished, Source
from vaultline.sources.read_ahead import READ_AHEAD_OBJECTS
from vaultline.storage import LocalStorage

# Names chosen to sort differently as names and as keys: "-" and "." sort below "/", "0" above it; bytes that are
# not UTF-8 sort by their display form (\xNN), "~" and "é" above "\\".
NAME_BYTES = st.sampled_from([b"a", b"b", b"-", b".", b"0", b"~", b"\\", b"\xff", b"\xe9", "é".encode()])
names = st.lists(NAME_BYTES, min_size=1, max_size=3).map(b"".join).filter(lambda n: n not in (b".", b".."))
paths = st.lists(names, min_size=1, max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees=st.lists(paths, min_size=1, max_size=12))
def test_a_directory_lists_in_key_order(trees: list[list[bytes]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = os.fsencode(scratch)
        for parts in trees:
            path = os.path.join(root, *parts)
            if os.path.isdir(path) or any(os.path.isfile(os.path.join(root, *parts[:i])) for i in range(1, len(parts))):
                continue  # a file cannot also be a directory
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(b"x")
        try:
            keys = [entry.key for entry in LocalSource(scratch).list()]
        except Exception as exc:  # two names with the same display key: refused, and said so
            assert "have the same key" in str(exc)
            return
        on_disk = sum(len(files) for _, _, files in os.walk(root))
        assert keys == sorted(keys) and len(keys) == len(set(keys)) == on_disk


def test_a_directory_lists_a_sibling_with_a_dash_before_a_directory_of_its_prefix(tmp_path: Path) -> None:
    for relative in ("a/x", "a-b", "a0", "a/b/c", "a.txt"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    assert [e.key for e in LocalSource(tmp_path).list()] == ["a-b", "a.txt", "a/b/c", "a/x", "a0"]


Event = tuple[Literal["listed", "read", "parent"], str]


class RecordingSource(Source):
    """Objects in memory; what is listed, read and (through the parent's stream) compared, in order."""

    kind: Literal["s3", "local"] = "local"
    url = "memory://recorded"

    def __init__(self, objects: dict[str, bytes], events: list[Event], vanished: Iterable[str] = ()) -> None:
        self.objects = objects
        self.events = events
        self.vanished = set(vanished)

    def list(self) -> Iterator[ObjectEntry]:
        for key in sorted(self.objects):
            self.events.append(("listed", key))
            yield ObjectEntry(key=key, size=len(self.objects[key]), etag=f"{len(self.objects[key])}")

    @contextmanager
    def open(self, listed: ObjectEntry) -> Iterator[tuple[Readable, ObjectEntry]]:
        self.events.append(("read", listed.key))
        if listed.key in self.vanished:
            raise ObjectVanished(f"{listed.key}: gone")
        yield io.BytesIO(self.objects[listed.key]), listed.model_copy()


def objects(count: int) -> dict[str, bytes]:
    return {f"o{n:04d}": f"body {n}".encode() for n in range(count)}


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault.init(LocalStorage(tmp_path / "vault"))


def test_objects_are_read_while_the_listing_still_runs(vault: Vault) -> None:
    events: list[Event] = []
    rp = backup.run_backup(vault, RecordingSource(objects(200), events, vanished=["o0003"]))
    first_read = events.index(("read", "o0000"))
    assert first_read < events.index(("listed", "o0199")) / 2  # not after the listing
    assert rp.stats.objects == 199 and rp.issues.vanished == 1 and rp.issues.objects[0].key == "o0003"
    assert [e.key for e in iter_entries(vault, rp)] == [k for k in sorted(objects(200)) if k != "o0003"]


def test_the_parent_is_read_as_the_listing_advances(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    backup.run_backup(vault, RecordingSource(objects(200), []))
    events: list[Event] = []

    def recorded_parent(vault: Vault, rp: RecoveryPoint) -> Iterator[ObjectEntry]:
        for entry in iter_entries(vault, rp):
            events.append(("parent", entry.key))
            yield entry

    monkeypatch.setattr(backup, "iter_entries", recorded_parent)
    second = backup.run_backup(vault, RecordingSource(objects(200), events))
    assert second.stats.objects_unchanged == 200 and not any(kind == "read" for kind, _ in events)
    # The merge-join reads the parent at most one entry ahead of the listing: never the whole of it first.
    for position, (kind, key) in enumerate(events):
        if kind == "parent":
            listed = sum(1 for k, _ in events[:position] if k == "listed")
            assert int(key[1:]) <= listed, f"parent entry {key} read with {listed} objects listed"


def test_the_commit_receives_entries_while_the_listing_still_runs(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[Event] = []
    seen: list[int] = []
    commit = backup.finish_recovery_point

    def watching(vault: Vault, writer: object, draft: object, entries: Iterable[ObjectEntry]) -> RecoveryPoint:
        def watched() -> Iterator[ObjectEntry]:
            for entry in entries:
                seen.append(sum(1 for kind, _ in events if kind == "listed"))
                yield entry

        return commit(vault, writer, draft, watched())  # type: ignore[arg-type]

    monkeypatch.setattr(backup, "finish_recovery_point", watching)
    rp = backup.run_backup(vault, RecordingSource(objects(300), events))
    # The first entry arrived long before the listing's end: at most the pipeline's windows ahead of it (tag
    # lookups, reads, chunking), whatever the threads' timing.
    in_flight = backup.TAG_LOOKAHEAD + READ_AHEAD_OBJECTS + backup.CHUNK_LOOKAHEAD + 1
    assert len(seen) == 300 and seen[0] <= in_flight < 300
    # The header's figures are those of the whole stream, though its draft was made before the stream ran.
    assert rp.stats.objects == rp.stats.objects_read == rp.entry_count == 300


def test_issues_are_counted_and_the_first_by_key_named_whatever_their_number() -> None:
    tally = backup.IssueTally(listed=3)
    for n in [9, 2, 7, 0, 5, 1, 8, 3, 6, 4] * 2:
        tally.add(ObjectIssue(key=f"k{n}", kind="vanished" if n % 2 else "archived", reason="x"))
    summary = tally.summary()
    assert (summary.archived, summary.vanished) == (10, 10)
    assert [i.key for i in summary.objects] == ["k0", "k0", "k1"]
    assert len(tally.first) <= 2 * 3
