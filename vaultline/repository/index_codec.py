"""The bytes of an index object, in both formats (docs/vault-format.md, section 9).

Every index object is ``seal(zstd(body), b"vaultline index")``. The body is either

* **version 1**, a JSON document ``{"version": 1, "packs": [{"id": PACK_ID, "blobs": [[BLOB_ID, type, compression,
  offset, stored, raw], ...]}]}`` (written into vaults of format version 1), or
* **version 2**, binary: ``b"VLI2" | pack_count u32 | blob_count u32 | pack ids (32 bytes each) | blob records``,
  each record 50 bytes, ``id[32] | pack u32 | offset u32 | stored u32 | raw u32 | type u8 | compression u8``
  (little-endian), sorted by (id, pack). A reader tells them apart by the first byte (``{`` or ``V``).

Decoding returns, for either version, each pack with its entries in pack (offset) order.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass

import blake3

from vaultline.errors import FormatVersionError, IntegrityError
from vaultline.repository.compression import compress_document, decompress_document
from vaultline.repository.crypto import ID_SIZE, Cipher
from vaultline.repository.packs import BlobEntry

INDEX_AAD = b"vaultline index"
V2_MAGIC = b"VLI2"
V2_HEADER = struct.Struct("<4sII")  # magic, pack count, blob count
V2_RECORD = struct.Struct(f"<{ID_SIZE}sIIIIBB")  # id, pack number, offset, stored, raw, type, compression
PACK_ID_BYTES = 32
# The index versions this build reads; it writes the one its vault's format version names (see index_version).
SUPPORTED_INDEX_VERSIONS = (1, 2)

IndexPacks = list[tuple[str, list[BlobEntry]]]


@dataclass(frozen=True, slots=True)
class IndexTable:
    """An index object's contents left packed, for readers that keep them packed (the compact index): its pack ids
    (32 bytes each) and its version 2 blob records (``V2_RECORD``). A version 1 object is converted on decoding."""

    pack_ids: list[bytes]
    records: bytes


def index_version(format_version: int) -> int:
    """The index object version a vault of ``format_version`` is written with: a writer never puts a version 2
    structure into a vault whose config says 1 (section 15)."""
    return 1 if format_version < 2 else 2


def encode_index(packs: Iterable[tuple[str, list[BlobEntry]]], cipher: Cipher, version: int = 2) -> tuple[str, bytes]:
    """Serialize packs into an index object of ``version``; return (index id, stored bytes)."""
    listed = list(packs)
    body = _encode_v2(listed) if version == 2 else _encode_v1(listed)
    stored = cipher.seal(compress_document(body), INDEX_AAD)
    return blake3.blake3(stored).hexdigest(), stored


def decode_index(stored: bytes, cipher: Cipher, what: str) -> IndexPacks:
    """Inverse of :func:`encode_index`, for every supported version."""
    body = _open(stored, cipher, what)
    return _decode_v1(body, what) if body[:1] == b"{" else _decode_v2(body, what)


def decode_index_table(stored: bytes, cipher: Cipher, what: str) -> IndexTable:
    """An index object as an :class:`IndexTable`. Checks its size; record contents (pack numbers) are checked by
    whoever reads them."""
    body = _open(stored, cipher, what)
    if body[:1] == b"{":
        body = _encode_v2(_decode_v1(body, what))
    _, records_at = _v2_layout(body, what)
    return IndexTable(
        [body[at : at + PACK_ID_BYTES] for at in range(V2_HEADER.size, records_at, PACK_ID_BYTES)], body[records_at:]
    )


def _open(stored: bytes, cipher: Cipher, what: str) -> bytes:
    body = decompress_document(cipher.open(stored, INDEX_AAD, what), what)
    if body[:1] == b"{" or body[:4] == V2_MAGIC:
        return body
    raise FormatVersionError(
        f"{what}: not an index object of a supported version (supported: "
        f"{', '.join(map(str, SUPPORTED_INDEX_VERSIONS))})"
    )


def _encode_v1(packs: IndexPacks) -> bytes:
    document = {
        "version": 1,
        "packs": [
            {
                "id": pack_id,
                "blobs": [
                    [e.id.hex(), e.type, e.compression, e.offset, e.stored_length, e.raw_length] for e in entries
                ],
            }
            for pack_id, entries in packs
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _decode_v1(body: bytes, what: str) -> IndexPacks:
    try:
        document = json.loads(body)
        if document.get("version") != 1 or isinstance(document.get("version"), bool):
            raise FormatVersionError(f"{what}: index version {document.get('version')!r} is not supported")
        return [
            (pack["id"], [BlobEntry(bytes.fromhex(b[0]), b[1], b[2], b[3], b[4], b[5]) for b in pack["blobs"]])
            for pack in document["packs"]
        ]
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise IntegrityError(f"{what}: malformed index ({exc})") from None


def _encode_v2(packs: IndexPacks) -> bytes:
    records = []
    for number, (pack_id, entries) in enumerate(packs):
        if len(pack_id) != 2 * PACK_ID_BYTES:
            raise ValueError(f"pack id {pack_id!r} is not {2 * PACK_ID_BYTES} hex digits")
        for e in entries:
            if len(e.id) != ID_SIZE:
                raise ValueError(f"blob id {e.id.hex()} of pack {pack_id} is not {ID_SIZE} bytes")
            records.append((e.id, number, e.offset, e.stored_length, e.raw_length, e.type, e.compression))
    records.sort()
    parts = [V2_HEADER.pack(V2_MAGIC, len(packs), len(records))]
    parts.extend(bytes.fromhex(pack_id) for pack_id, _ in packs)
    parts.extend(V2_RECORD.pack(*record) for record in records)
    return b"".join(parts)


def _v2_layout(body: bytes, what: str) -> tuple[int, int]:
    """(pack count, where the records start) of a version 2 body whose size matches its header."""
    if len(body) < V2_HEADER.size:
        raise IntegrityError(f"{what}: malformed index (header truncated)")
    _, pack_count, blob_count = V2_HEADER.unpack_from(body)
    records_at = V2_HEADER.size + pack_count * PACK_ID_BYTES
    if len(body) != records_at + blob_count * V2_RECORD.size:
        raise IntegrityError(
            f"{what}: malformed index ({len(body)} bytes, but {pack_count} packs and {blob_count} blobs need "
            f"{records_at + blob_count * V2_RECORD.size})"
        )
    return pack_count, records_at


def _decode_v2(body: bytes, what: str) -> IndexPacks:
    pack_count, records_at = _v2_layout(body, what)
    pack_ids = [body[at : at + PACK_ID_BYTES].hex() for at in range(V2_HEADER.size, records_at, PACK_ID_BYTES)]
    entries: list[list[BlobEntry]] = [[] for _ in pack_ids]
    previous = b""
    for blob_id, number, offset, stored, raw, blob_type, compression in V2_RECORD.iter_unpack(body[records_at:]):
        if number >= pack_count:
            raise IntegrityError(f"{what}: malformed index (blob {blob_id.hex()} names pack {number} of {pack_count})")
        if blob_id < previous:
            raise IntegrityError(f"{what}: malformed index (blob records are not sorted by id)")
        previous = blob_id
        entries[number].append(BlobEntry(blob_id, blob_type, compression, offset, stored, raw))
    for listed in entries:
        listed.sort(key=lambda e: e.offset)
    return list(zip(pack_ids, entries, strict=True))
