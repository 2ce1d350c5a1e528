"""Content-defined chunking: whole small objects, FastCDC for large ones, local edits stay local."""

from __future__ import annotations

import io
import random

import pytest

from vaultline.repository.chunking import Chunker, ChunkerParams

PARAMS = ChunkerParams()


def data_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


class TrickleReader:
    """A stream that returns at most ``step`` bytes per read, as network bodies do."""

    def __init__(self, data: bytes, step: int) -> None:
        self._buf = io.BytesIO(data)
        self._step = step

    def read(self, n: int = -1, /) -> bytes:
        size = self._step if n < 0 else min(n, self._step)
        return self._buf.read(size)


def test_empty_stream_has_zero_chunks() -> None:
    chunker = Chunker(PARAMS)
    assert list(chunker.split(io.BytesIO(b""))) == []
    assert list(chunker.split_bytes(b"")) == []


@pytest.mark.parametrize("size", [1, 1000, PARAMS.whole_object_max])
def test_small_object_is_one_chunk(size: int) -> None:
    data = data_of(size)
    chunker = Chunker(PARAMS)
    assert list(chunker.split(io.BytesIO(data))) == [data]
    assert list(chunker.split_bytes(data)) == [data]


def test_object_just_over_the_whole_object_limit_is_cut() -> None:
    data = data_of(PARAMS.whole_object_max + 1)
    chunks = list(Chunker(PARAMS).split(io.BytesIO(data)))
    assert b"".join(chunks) == data


@pytest.mark.parametrize("size", [600 * 1024, 3 * 1024 * 1024 + 17])
def test_large_object_round_trips_and_respects_bounds(size: int) -> None:
    data = data_of(size)
    chunks = list(Chunker(PARAMS).split(io.BytesIO(data)))
    assert b"".join(chunks) == data
    assert len(chunks) >= 2
    assert all(len(c) <= PARAMS.max_size for c in chunks)
    assert all(len(c) >= PARAMS.min_size for c in chunks[:-1])


def test_stream_and_buffer_cut_identically_whatever_the_read_size() -> None:
    data = data_of(2 * 1024 * 1024 + 5, seed=7)
    chunker = Chunker(PARAMS)
    from_buffer = list(chunker.split_bytes(data))
    assert list(chunker.split(io.BytesIO(data))) == from_buffer
    assert list(chunker.split(TrickleReader(data, 4099))) == from_buffer


def test_insertion_in_the_middle_changes_only_a_few_chunks() -> None:
    data = data_of(8 * 1024 * 1024, seed=3)
    middle = len(data) // 2
    edited = data[:middle] + b"an insertion of a few bytes" + data[middle:]
    chunker = Chunker(PARAMS)
    before = list(chunker.split_bytes(data))
    after = list(chunker.split_bytes(edited))
    assert b"".join(after) == edited
    changed = set(after) - set(before)
    assert len(before) >= 15
    assert 1 <= len(changed) <= 3
    assert sum(len(c) for c in changed) <= 3 * PARAMS.max_size


def test_append_changes_only_the_last_chunks() -> None:
    data = data_of(4 * 1024 * 1024, seed=4)
    chunker = Chunker(PARAMS)
    before = list(chunker.split_bytes(data))
    after = list(chunker.split_bytes(data + data_of(1000, seed=5)))
    assert len(set(after) - set(before)) <= 2


def test_chunks_are_independent_copies() -> None:
    # cut_stream reuses its buffer; the chunker must hand out bytes that stay valid.
    data = data_of(3 * 1024 * 1024, seed=9)
    chunks = list(Chunker(PARAMS).split(io.BytesIO(data)))
    assert all(isinstance(c, bytes) for c in chunks)
    assert b"".join(chunks) == data
