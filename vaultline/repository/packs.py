"""Packs: many sealed blobs in one object, followed by a header that lists them.

Layout: ``blob_1 || ... || blob_n || sealed_header || header_length (u32 LE) || b"VLP1"``. The header sits at the
end so blobs can be streamed into a pack as they are produced. Each header entry is 42 bytes:
``type u8 | compression u8 | stored_length u32 | raw_length u32 | id [32]``, blob offsets following from the
running sum of stored lengths.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace

import blake3

from vaultline.errors import IntegrityError
from vaultline.repository.crypto import ID_SIZE, Cipher
from vaultline.repository.layout import DATA_PREFIX, pack_id_of_key
from vaultline.storage import Storage

PACK_MAGIC = b"VLP1"
TRAILER = struct.Struct("<I4s")
ENTRY = struct.Struct(f"<BBII{ID_SIZE}s")
HEADER_AAD = b"vaultline pack header"


class BlobType:
    """What a blob holds: object data, or part of a manifest's entry stream."""

    DATA = 0
    MANIFEST = 1


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """Where one blob sits in its pack and how to decode it."""

    id: bytes
    type: int
    compression: int
    offset: int
    stored_length: int
    raw_length: int


@dataclass(frozen=True, slots=True)
class SealedBlob:
    """A blob ready to be appended to a pack: compressed, encrypted, named."""

    id: bytes
    type: int
    compression: int
    raw_length: int
    payload: bytes


def iter_packs(storage: Storage) -> Iterator[tuple[str, int]]:
    """(pack id, stored size) of every well-formed pack key, streamed in increasing pack id order (pack keys are
    ``data/<first two hex digits>/<id>``, and listings come in key order): nothing is held."""
    for obj in storage.list(DATA_PREFIX):
        pack_id = pack_id_of_key(obj.key)
        if pack_id:
            yield pack_id, obj.size


def list_pack_ids(storage: Storage) -> dict[str, int]:
    """Pack id -> stored size, for every well-formed pack key (held whole: :func:`iter_packs` streams them)."""
    return dict(iter_packs(storage))


class PackBuilder:
    """Accumulates sealed blobs in memory until the pack is big enough to upload.

    The blobs are copied into one buffer that becomes the pack's bytes as it is: no join of the parts at the end,
    which held each pack twice at the moment it was shipped and copied every stored byte once more.
    """

    def __init__(self, buffer: bytearray | None = None) -> None:
        self.entries: list[BlobEntry] = []
        self.size = 0
        # ``buffer``: a shipped pack's bytes, stored and handed back for reuse (its allocation is kept: see
        # finish), so that a long backup does not allocate and free one large block per pack. A new buffer grows
        # as blobs are appended: a writer of a few small blobs holds little.
        self._buffer = buffer if buffer is not None else bytearray()

    def add(self, blob: SealedBlob) -> None:
        self.entries.append(
            BlobEntry(blob.id, blob.type, blob.compression, self.size, len(blob.payload), blob.raw_length)
        )
        self._put(blob.payload)

    def _put(self, data: bytes | memoryview) -> None:
        end = self.size + len(data)
        if end <= len(self._buffer):
            # A reused buffer: overwrites what its last pack held there.
            self._buffer[self.size : end] = data
        else:
            # Past its end: appended (after what is left of a reused buffer's last pack, less than a blob: its
            # allocation stays). CPython grows a bytearray by reallocating it, in place or by remapping its pages,
            # with no fill: growing it by extending it with zeros first wrote every byte of a new pack twice and
            # zeroed it, holding the GIL (3x the cost of filling a reused buffer, measured).
            del self._buffer[self.size :]
            self._buffer += data
        self.size = end

    def __len__(self) -> int:
        return len(self.entries)

    def split(self, pieces: int) -> list[PackBuilder]:
        """This pack's blobs, in order, as up to ``pieces`` packs of about equal blob areas (each blob copied once
        into its piece); ``[self]`` for one piece or one blob."""
        if pieces <= 1 or len(self.entries) < 2:
            return [self]
        target = self.size / pieces
        split: list[PackBuilder] = [PackBuilder()]
        with memoryview(self._buffer) as view:
            for entry in self.entries:
                piece = split[-1]
                if piece.entries and piece.size + entry.stored_length / 2 > target and len(split) < pieces:
                    piece = PackBuilder()
                    split.append(piece)
                piece.entries.append(replace(entry, offset=piece.size))
                piece._put(view[entry.offset : entry.offset + entry.stored_length])
        return split

    def finish(self, cipher: Cipher) -> tuple[str, bytes]:
        """Return (pack id, pack bytes); the pack id is the BLAKE3 of the bytes, so storage can be verified."""
        header = b"".join(ENTRY.pack(e.type, e.compression, e.stored_length, e.raw_length, e.id) for e in self.entries)
        sealed = cipher.seal(header, HEADER_AAD)
        self._put(sealed)
        self._put(TRAILER.pack(len(sealed), PACK_MAGIC))
        data, self._buffer = self._buffer, bytearray()
        # Drop what lies past the pack (a reused buffer's longer last pack): shrinking a bytearray by less than half
        # its allocation keeps the allocation, so no copy now, and the buffer can be reused whole.
        del data[self.size :]
        # A bytearray is bytes to every reader of a pack (storage writes, hashes and slices it alike).
        return blake3.blake3(data).hexdigest(), data  # type: ignore[return-value]


def parse_header(sealed_header: bytes, cipher: Cipher, what: str) -> list[BlobEntry]:
    """Decode a pack header into blob entries with their offsets."""
    header = cipher.open(sealed_header, HEADER_AAD, f"{what} header")
    if len(header) % ENTRY.size:
        raise IntegrityError(f"{what}: header length {len(header)} is not a multiple of {ENTRY.size}")
    entries = []
    offset = 0
    for blob_type, compression, stored, raw, blob_id in ENTRY.iter_unpack(header):
        entries.append(BlobEntry(blob_id, blob_type, compression, offset, stored, raw))
        offset += stored
    return entries


def split_trailer(tail: bytes, pack_size: int | None, what: str) -> int:
    """Return the sealed header's length from the pack's last bytes, checking the magic."""
    if len(tail) < TRAILER.size:
        raise IntegrityError(f"{what}: too short to be a pack")
    length, magic = TRAILER.unpack(tail[-TRAILER.size :])
    if magic != PACK_MAGIC:
        raise IntegrityError(f"{what}: bad pack trailer (truncated or not a pack)")
    if pack_size is not None and length + TRAILER.size > pack_size:
        raise IntegrityError(f"{what}: header length {length} exceeds the pack size {pack_size}")
    return int(length)


def read_pack_entries(data: bytes, cipher: Cipher, what: str) -> list[BlobEntry]:
    """Entries of a whole pack held in memory, with the header checked against the blob area."""
    header_length = split_trailer(data, len(data), what)
    header_start = len(data) - TRAILER.size - header_length
    entries = parse_header(data[header_start : len(data) - TRAILER.size], cipher, what)
    end = entries[-1].offset + entries[-1].stored_length if entries else 0
    if end != header_start:
        raise IntegrityError(f"{what}: blobs end at {end} but the header starts at {header_start}")
    return entries
