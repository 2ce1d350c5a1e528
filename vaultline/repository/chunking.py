"""Cutting object streams into chunks: small objects whole, large ones by FastCDC 2020."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from pydantic import ConfigDict

from vaultline.model import VaultlineModel


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class ChunkerParams(VaultlineModel):
    """Chunker parameters, fixed for the life of a vault (changing them breaks dedup, not correctness)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: str = "fastcdc2020"
    # pyfastcdc's effective mean is avg_size + min_size: 256 KiB + 64 KiB ~ 320 KiB, in the 256-512 KiB band
    # where measured day-2 growth is lowest per request spent.
    avg_size: int = 256 * 1024
    min_size: int = 64 * 1024
    max_size: int = 1024 * 1024
    normalized_chunking: int = 1
    seed: int = 0
    # Objects up to this size are one chunk: cutting them would cost CPU and index entries for no dedup gain.
    whole_object_max: int = 512 * 1024


class Chunker:
    """Splits byte streams into content-defined chunks with the vault's parameters."""

    def __init__(self, params: ChunkerParams) -> None:
        # Imported by the first chunker: every vault reads ChunkerParams, only backups and commits cut streams.
        from pyfastcdc import FastCDC

        self.params = params
        self._cdc = FastCDC(
            params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalized_chunking,  # type: ignore[arg-type]
            seed=params.seed,
        )

    def split(self, stream: Readable) -> Iterator[bytes]:
        """Yield the chunks of ``stream``. A stream that ends within ``whole_object_max`` bytes is one chunk,
        whatever size the listing claimed, so an object that grew or shrank since it was listed is still cut right."""
        limit = self.params.whole_object_max
        head = _read_up_to(stream, limit + 1)
        if len(head) <= limit:
            if head:  # an empty object has no chunks
                yield head
            return
        for chunk in self._cdc.cut_stream(_Prepended(head, stream)):
            # cut_stream reuses its buffer: the view is valid only until the next chunk, so copy it out.
            yield bytes(chunk.data)

    def split_bytes(self, data: bytes) -> Iterator[bytes]:
        """Chunks of an in-memory buffer (manifests, DynamoDB segment streams)."""
        if len(data) <= self.params.whole_object_max:
            if data:
                yield data
            return
        view = memoryview(data)
        for chunk in self._cdc.cut_buf(data):
            yield bytes(view[chunk.offset : chunk.offset + chunk.length])


def _read_up_to(stream: Readable, n: int) -> bytes:
    parts = []
    remaining = n
    while remaining > 0:
        part = stream.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


class _Prepended:
    """A reader that yields ``head`` and then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readinto(self, buffer: memoryview) -> int:
        """pyfastcdc prefers readinto: the tail of the stream then lands in its buffer without a copy."""
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        readinto = getattr(self._stream, "readinto", None)
        if readinto is not None:
            return int(readinto(buffer))
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, n: int = -1, /) -> bytes:
        if self._head:
            size = len(self._head) if n < 0 else min(n, len(self._head))
            out = bytes(self._head[:size])
            self._head = self._head[size:]
            return out
        return self._stream.read(n)
