"""Objects read, cut and hashed ahead on threads: the same chunks and ids, in order, in bounded memory, with each
object's own error raised where it is taken, and opens in the order the objects were started."""

from __future__ import annotations

import io
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import blake3
import pytest

from vaultline.errors import SourceError
from vaultline.operations import chunk_ahead
from vaultline.operations.backup import backup_objects
from vaultline.operations.chunk_ahead import ChunkAhead
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.chunking import Chunker, ChunkerParams, Readable
from vaultline.repository.manifest import ObjectEntry
from vaultline.repository.vault import Vault
from vaultline.sources.base import ObjectVanished, Source
from vaultline.sources.read_ahead import ReadAhead
from vaultline.storage import LocalStorage

CHUNKER = Chunker(ChunkerParams())


def chunk_id(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


class Recorder(Source):
    """Objects in memory; records the order of opens and reads, how many bytes were read, and which opens closed.
    ``slow_open`` delays the open of one key, so that a later object's thread gets there first if it may."""

    url = "mem://bucket"
    kind = "s3"

    def __init__(
        self, objects: dict[str, bytes], failing: dict[str, Exception] | None = None, slow_open: str = ""
    ) -> None:
        self.objects = objects
        self.failing = failing or {}
        self.slow_open = slow_open
        self.lock = threading.Lock()
        self.opened: list[str] = []
        self.closed: list[str] = []
        self.bytes_read = 0

    def list(self) -> Iterator[ObjectEntry]:
        for key in sorted(self.objects):
            yield ObjectEntry(key=key, size=len(self.objects[key]))

    @contextmanager
    def open(self, listed: ObjectEntry) -> Iterator[tuple[Readable, ObjectEntry]]:
        if listed.key == self.slow_open:
            time.sleep(0.05)
        with self.lock:
            self.opened.append(listed.key)
        if listed.key in self.failing:
            raise self.failing[listed.key]
        source = self

        class Counted(io.BytesIO):
            def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
                got = super().readinto(buffer)
                with source.lock:
                    source.bytes_read += got
                return got

        try:
            yield Counted(self.objects[listed.key]), listed.model_copy(update={"content_type": "text/plain"})
        finally:
            with self.lock:
                self.closed.append(listed.key)


def objects(count: int = 12, seed: int = 5) -> dict[str, bytes]:
    rng = random.Random(seed)
    sizes = [0, 10, 600_000, 3_000_000] + [rng.randint(0, 1_500_000) for _ in range(count - 4)]
    return {f"k{n:03d}": rng.randbytes(size) for n, size in enumerate(sizes)}


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_each_object_yields_the_chunks_and_ids_of_a_serial_read_in_order(threads: int) -> None:
    source = Recorder(objects(), slow_open="k001")
    listed = list(source.list())
    with ChunkAhead(source, CHUNKER, chunk_id, threads=threads) as ahead:
        started = [ahead.start(item) for item in listed]
        for item, chunks in zip(listed, started, strict=True):
            got = list(chunks)
            expected = list(CHUNKER.split(io.BytesIO(source.objects[item.key])))
            assert [data for data, _ in got] == expected
            assert [blob_id for _, blob_id in got] == [chunk_id(data) for data in expected]
            assert chunks.entry is not None and chunks.entry.content_type == "text/plain"
            ahead.taken(chunks)
    # The slow first open did not let a later object open first: opens take turns in start order.
    assert source.opened == [item.key for item in listed]
    assert sorted(source.closed) == sorted(source.opened)


def test_an_object_waits_for_its_chunks_to_be_taken_past_its_budget() -> None:
    data = random.Random(1).randbytes(6_000_000)
    source = Recorder({"big": data})
    budget = 1_500_000
    with ChunkAhead(source, CHUNKER, chunk_id, object_budget=budget) as ahead:
        chunks = ahead.start(next(source.list()))
        time.sleep(0.2)  # time enough to read it all, were it not bounded
        # Queued chunks stay within the budget (one chunk of at most max_size may tip it), and the stream chunker
        # holds at most two max_size buffers of what it read.
        assert source.bytes_read <= budget + 3 * CHUNKER.params.max_size
        assert b"".join(chunk for chunk, _ in chunks) == data


def test_objects_start_only_while_their_sizes_fit_the_byte_budget() -> None:
    source = Recorder({f"k{n}": b"z" * 1000 for n in range(6)})
    listed = list(source.list())
    with ChunkAhead(source, CHUNKER, chunk_id, ahead_bytes=2500) as ahead:
        assert ahead.room_for(listed[0])
        first, second = ahead.start(listed[0]), ahead.start(listed[1])
        assert not ahead.room_for(listed[2])  # 3 x 1000 bytes would not fit 2,500
        list(first)
        ahead.taken(first)
        assert ahead.room_for(listed[2])
        list(second)


def test_an_object_s_own_error_is_raised_where_it_is_taken_and_the_others_are_read() -> None:
    gone = ObjectVanished("mem://bucket/k002: deleted")
    source = Recorder(objects(6), failing={"k002": gone})
    listed = list(source.list())
    with ChunkAhead(source, CHUNKER, chunk_id, threads=2) as ahead:
        started = [ahead.start(item) for item in listed]
        for item, chunks in zip(listed, started, strict=True):
            if item.key == "k002":
                with pytest.raises(ObjectVanished, match="k002: deleted"):
                    list(chunks)
            else:
                assert b"".join(c for c, _ in chunks) == source.objects[item.key]
            ahead.taken(chunks)


def test_closing_with_objects_part_read_stops_every_thread_and_closes_every_open() -> None:
    source = Recorder({f"k{n}": random.Random(n).randbytes(3_000_000) for n in range(5)})
    listed = list(source.list())
    ahead = ChunkAhead(source, CHUNKER, chunk_id, threads=2, object_budget=500_000)
    started = [ahead.start(item) for item in listed]
    next(iter(started[0]))  # one chunk taken; both threads now wait on full budgets
    ahead.close()  # returns: no thread is left waiting
    assert sorted(source.closed) == sorted(source.opened)


def test_a_batch_read_ahead_is_opened_in_its_own_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # ReadAhead hands out what it read only in the order planned: with opens in start order, every object of the
    # batch comes from it, none is opened a second time directly (with threads enough to race for the opens).
    monkeypatch.setattr(chunk_ahead, "CHUNK_THREADS", 3)
    source = Recorder(objects(10), slow_open="k003")
    listed = list(source.list())
    vault = Vault.init(LocalStorage(tmp_path / "v"))
    with BlobWriter(vault) as writer, ReadAhead(source, listed, objects=4) as read_ahead:
        outcome = backup_objects(vault, read_ahead, listed, {}, writer)
        writer.flush()
    assert [entry.key for entry in outcome.entries] == [item.key for item in listed]
    assert sorted(source.opened) == sorted(source.objects)  # each opened once


def test_a_failed_open_fails_the_backup_with_the_object_s_own_error(tmp_path: Path) -> None:
    source = Recorder(objects(8), failing={"k004": SourceError("mem://bucket/k004: access denied")})
    listed = list(source.list())
    vault = Vault.init(LocalStorage(tmp_path / "v"))
    with BlobWriter(vault) as writer, pytest.raises(SourceError, match="k004: access denied"):
        backup_objects(vault, source, listed, {}, writer)
    assert sorted(source.closed) == sorted(set(source.opened) - {"k004"})
