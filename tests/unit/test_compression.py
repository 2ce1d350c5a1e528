"""Per-blob zstd compression and whole-document frames."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultline.errors import IntegrityError
from vaultline.repository.compression import (
    Compression,
    compress,
    compress_document,
    compress_many,
    decompress,
    decompress_document,
)


def test_compressible_data_is_stored_as_zstd() -> None:
    data = b"vaultline " * 10_000
    kind, payload = compress(data, 3)
    assert kind == Compression.ZSTD
    assert len(payload) < len(data) // 10
    assert decompress(payload, kind, len(data), "blob") == data


def test_random_data_is_stored_as_is() -> None:
    data = os.urandom(64 * 1024)
    kind, payload = compress(data, 3)
    assert kind == Compression.NONE
    assert payload == data
    assert decompress(payload, kind, len(data), "blob") == data


def test_empty_data_round_trips() -> None:
    kind, payload = compress(b"", 3)
    assert decompress(payload, kind, 0, "blob") == b""


def test_memoryview_input_round_trips() -> None:
    data = b"abc" * 5000
    kind, payload = compress(memoryview(data), 19)
    assert decompress(payload, kind, len(data), "blob") == data


def test_truncated_frame_raises_integrity_error() -> None:
    data = b"vaultline " * 10_000
    _, payload = compress(data, 3)
    with pytest.raises(IntegrityError, match="zstd frame is corrupt"):
        decompress(payload[: len(payload) // 2], Compression.ZSTD, len(data), "blob")


def test_garbage_frame_raises_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="blob-x"):
        decompress(b"\x28\xb5\x2f\xfd" + b"\xff" * 40, Compression.ZSTD, 100, "blob-x")


def test_frame_larger_than_its_declared_length_raises_integrity_error() -> None:
    # A frame without a content size is bounded by raw_length: it cannot balloon past what the index says.
    import zstandard

    frame = zstandard.ZstdCompressor(write_content_size=False).compress(b"a" * 100_000)
    with pytest.raises(IntegrityError):
        decompress(frame, Compression.ZSTD, 10, "blob")


def test_unknown_compression_raises_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="unknown compression 7"):
        decompress(b"x", 7, 1, "blob")


def test_document_round_trip_and_corruption() -> None:
    doc = b'{"a": 1}' * 100
    frame = compress_document(doc)
    assert decompress_document(frame, "doc") == doc
    with pytest.raises(IntegrityError):
        decompress_document(frame[:-5], "doc")


@given(st.lists(st.one_of(st.binary(max_size=4000), st.sampled_from([b"", b"ab" * 40_000, os.urandom(200_000)]))))
@settings(max_examples=40, deadline=None)
def test_compressing_many_chunks_at_once_chooses_and_encodes_as_one_at_a_time(chunks: list[bytes]) -> None:
    assert compress_many(chunks, 3) == [compress(chunk, 3) for chunk in chunks]


def test_chunk_whose_first_64_kib_do_not_compress_is_stored_as_is() -> None:
    # The trial is the frame's first block: random bytes there decide, whatever follows.
    data = os.urandom(64 * 1024) + b"vaultline " * 30_000
    assert compress(data, 3) == (Compression.NONE, data)


def test_large_chunk_is_one_frame_that_declares_its_content_size() -> None:
    import zstandard

    data = b"vaultline " * 40_000 + os.urandom(1000)
    kind, payload = compress(data, 3)
    assert kind == Compression.ZSTD
    assert zstandard.get_frame_parameters(payload).content_size == len(data)
    # One frame: a reader that decodes only the first frame gets the whole chunk.
    assert zstandard.ZstdDecompressor().decompressobj().decompress(payload) == data


def test_an_abandoned_trial_leaves_the_thread_s_compressor_as_new() -> None:
    text = b"restore drill " * 30_000
    before = compress(text, 3)
    assert compress(os.urandom(300_000), 3)[0] == Compression.NONE  # a frame begun, then dropped
    assert compress(text, 3) == before


@given(
    head=st.sampled_from(["text", "random"]),
    size=st.integers(min_value=128 * 1024 - 2, max_value=700_000),
    level=st.sampled_from([1, 3, 9]),
)
@settings(max_examples=30, deadline=None)
def test_chunks_around_and_above_the_trial_size_round_trip(head: str, size: int, level: int) -> None:
    pattern = b"0123456789abcdef" if head == "text" else os.urandom(4096)
    data = (pattern * (size // len(pattern) + 1))[:size]
    kind, payload = compress(data, level)
    assert decompress(payload, kind, len(data), "blob") == data
    assert kind == Compression.NONE or len(payload) <= len(data) * 0.97
