"""Reading a batch's objects ahead: the same entries and errors as reading them one by one, in bounded memory."""

from __future__ import annotations

import io
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vaultline.errors import SourceError
from vaultline.operations.backup import backup_objects
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.chunking import Readable
from vaultline.repository.manifest import ObjectEntry
from vaultline.repository.vault import Vault
from vaultline.sources.base import ObjectVanished, Source
from vaultline.sources.read_ahead import ReadAhead
from vaultline.storage import LocalStorage


class MemorySource(Source):
    """Objects in memory; records how many opens were started and closed, and fails the keys it is told to."""

    url = "mem://bucket"
    kind = "s3"

    def __init__(self, objects: dict[str, bytes], failing: dict[str, Exception] | None = None) -> None:
        self.objects = objects
        self.failing = failing or {}
        self.lock = threading.Lock()
        self.started: list[str] = []
        self.closed: list[str] = []

    def list(self) -> Iterator[ObjectEntry]:
        for key in sorted(self.objects):
            yield ObjectEntry(key=key, size=len(self.objects[key]))

    @contextmanager
    def open(self, listed: ObjectEntry) -> Iterator[tuple[Readable, ObjectEntry]]:
        with self.lock:
            self.started.append(listed.key)
        if listed.key in self.failing:
            raise self.failing[listed.key]
        data = self.objects[listed.key]
        try:
            yield io.BytesIO(data), listed.model_copy(update={"size": len(data), "metadata": {"k": listed.key}})
        finally:
            with self.lock:
                self.closed.append(listed.key)


def corpus(count: int = 40, seed: int = 3) -> dict[str, bytes]:
    rng = random.Random(seed)
    sizes = [0, 1, 999, 1000, 1001, 700_000, 2_500_000] + [rng.randint(0, 300_000) for _ in range(count - 7)]
    return {f"k{n:04d}": rng.randbytes(size // 2) + b"a" * (size - size // 2) for n, size in enumerate(sizes)}


def backup(vault: Vault, source: Source, listed: list[ObjectEntry]) -> list[ObjectEntry]:
    with BlobWriter(vault) as writer:
        outcome = backup_objects(vault, source, listed, {}, writer)
        writer.flush()
    return outcome.entries


def test_objects_read_ahead_back_up_to_the_entries_of_objects_read_one_by_one(tmp_path: Path) -> None:
    source = MemorySource(corpus())
    listed = list(source.list())
    # Listed sizes that are wrong both ways: an object that grew past the head still streams whole.
    listed[3] = listed[3].model_copy(update={"size": 10})
    listed[8] = listed[8].model_copy(update={"size": 10**9})
    vault = Vault.init(LocalStorage(tmp_path / "v"))  # one vault: equal contents get equal chunk ids
    serial = backup(vault, source, listed)
    with ReadAhead(source, listed, objects=4, budget=1_500_000, head=600_000) as ahead:
        overlapped = backup(vault, ahead, listed)
    assert overlapped == serial
    assert sorted(source.closed) == sorted(source.started)  # every response closed


def test_a_failed_read_fails_the_batch_with_the_object_s_own_error(tmp_path: Path) -> None:
    source = MemorySource(corpus(10), failing={"k0005": SourceError("s3://bucket/k0005: access denied")})
    listed = list(source.list())
    with ReadAhead(source, listed, objects=3) as ahead, pytest.raises(SourceError, match="k0005: access denied"):
        backup(Vault.init(LocalStorage(tmp_path / "v")), ahead, listed)
    assert sorted(source.closed) == sorted(set(source.started) - {"k0005"})


def test_an_object_gone_when_read_ahead_is_recorded_as_vanished(tmp_path: Path) -> None:
    source = MemorySource(corpus(10), failing={"k0002": ObjectVanished("s3://bucket/k0002: deleted")})
    listed = list(source.list())
    vault = Vault.init(LocalStorage(f"{tmp_path}/v"))
    with BlobWriter(vault) as writer, ReadAhead(source, listed, objects=3) as ahead:
        outcome = backup_objects(vault, ahead, listed, {}, writer)
        writer.flush()
    assert [issue.key for issue in outcome.issues] == ["k0002"]
    assert [entry.key for entry in outcome.entries] == [key for key in sorted(source.objects) if key != "k0002"]


def test_reads_in_flight_are_bounded_by_count_and_bytes() -> None:
    source = MemorySource({f"k{n:03d}": b"x" * 1000 for n in range(30)})
    listed = list(source.list())
    # Each open may hold min(head, listed size + 1) = 1001 bytes: a budget of 2,500 admits two at a time.
    with ReadAhead(source, listed, objects=8, budget=2500, head=4096) as ahead:
        for consumed, item in enumerate(listed):
            with ahead.open(item) as (stream, _):
                assert stream.read() == b"x" * 1000
            with source.lock:
                assert len(source.started) <= consumed + 1 + 2
        assert ahead.held_peak <= 2500
    with ReadAhead(source, listed, objects=3, budget=10**9) as ahead:
        assert ahead.in_flight_peak == 3


def test_leaving_early_closes_what_was_read_ahead() -> None:
    source = MemorySource({f"k{n:03d}": b"y" * 5000 for n in range(12)})
    listed = list(source.list())
    with ReadAhead(source, listed, objects=5, head=100) as ahead, ahead.open(listed[0]) as (stream, _):
        assert stream.read(10) == b"y" * 10
    assert sorted(source.closed) == sorted(source.started)
