"""Per-blob zstd compression, with already-compressed data stored as it is."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from enum import IntEnum

import zstandard

from vaultline.errors import IntegrityError

# Keep the compressed form only when it saves at least this share: below it, decompression costs more at
# restore time than the bytes it saves (gzip, JPEG, random data land here).
_MIN_SAVING = 0.03


class Compression(IntEnum):
    """How a blob's payload is encoded; stored in the pack header and the index."""

    NONE = 0
    ZSTD = 1


_local = threading.local()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # zstandard objects are not thread-safe; one per thread and level, reused (creating them costs ~100 us).
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "compressors", None)
    if cache is None:
        cache = _local.compressors = {}
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    dctx: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if dctx is None:
        dctx = _local.decompressor = zstandard.ZstdDecompressor()
    return dctx


# Incompressible data (gzip, media, ciphertext) is a fifth of a typical bucket: a trial on a sample decides
# before zstd spends a full pass on a chunk only to throw the result away.
_SAMPLE = 64 * 1024


def compress(data: bytes | memoryview, level: int) -> tuple[Compression, bytes]:
    """Compress ``data``; return it unchanged (``Compression.NONE``) when zstd does not pay."""
    if len(data) <= 2 * _SAMPLE:
        return _kept(data, _compressor(level).compress(data))
    # The trial is the frame's own beginning: the sample is compressed and flushed as a block of its own, and the
    # same frame goes on with the rest when it paid. A separate trial compressed a fifth of every chunk twice (15 %
    # of zstd's time on text); the flushed block costs a few bytes per chunk, and the frame is the one frame, with
    # its content size, that section 7 of the format describes.
    view = memoryview(data)
    stream = _compressor(level).compressobj(size=len(view))
    head = stream.compress(view[:_SAMPLE]) + stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    if len(head) > _SAMPLE * (1 - _MIN_SAVING):
        return Compression.NONE, bytes(data)
    return _kept(data, b"".join((head, stream.compress(view[_SAMPLE:]), stream.flush())))


def _kept(data: bytes | memoryview, packed: bytes) -> tuple[Compression, bytes]:
    """``packed`` if it saves at least :data:`_MIN_SAVING` of ``data``, else ``data`` as it is."""
    if len(packed) <= len(data) * (1 - _MIN_SAVING):
        return Compression.ZSTD, packed
    return Compression.NONE, bytes(data)


def compress_many(chunks: Sequence[bytes], level: int) -> list[tuple[Compression, bytes]]:
    """:func:`compress` of each of ``chunks``, in order, the same frames and the same choices. Chunks up to twice
    the trial sample (no trial) go through zstd in one call that releases the GIL once for all of them: per-chunk
    calls on small chunks (DynamoDB item streams, ~3 KiB) each give the GIL back and wait to get it back from the
    thread that feeds them, which cost more than the compression itself."""
    # zstandard's batch call refuses empty elements: those (never cut from a stream, but allowed) go one by one.
    small = [n for n, chunk in enumerate(chunks) if 0 < len(chunk) <= 2 * _SAMPLE]
    out: list[tuple[Compression, bytes]] = [(Compression.NONE, b"")] * len(chunks)
    if small:
        frames = _compressor(level).multi_compress_to_buffer([chunks[n] for n in small])
        for position, n in enumerate(small):
            out[n] = _kept(chunks[n], frames[position].tobytes())
    batched = set(small)
    for n, chunk in enumerate(chunks):
        if n not in batched:
            out[n] = compress(chunk, level)
    return out


def decompress(payload: bytes, compression: int, raw_length: int, what: str) -> bytes:
    """Inverse of :func:`compress`; ``raw_length`` bounds the output so a corrupt frame cannot balloon."""
    if compression == Compression.NONE:
        return payload
    if compression != Compression.ZSTD:
        raise IntegrityError(f"{what}: unknown compression {compression}")
    try:
        return _decompressor().decompress(payload, max_output_size=raw_length)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what}: zstd frame is corrupt ({exc})") from None


def compress_document(data: bytes, level: int = 3) -> bytes:
    """Compress a whole document (index, manifest header) as one zstd frame."""
    return _compressor(level).compress(data)


def decompress_document(data: bytes, what: str) -> bytes:
    """Inverse of :func:`compress_document`."""
    try:
        return _decompressor().decompress(data)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{what}: zstd frame is corrupt ({exc})") from None
