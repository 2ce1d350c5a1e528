"""Index objects: which pack holds which blob. Every pack's entries appear in at least one index object.

An index object is ``seal(zstd(JSON))`` with AAD ``b"vaultline index"``, stored as ``index/<blake3 of bytes>``:
``{"version": 1, "packs": [{"id": PACK_ID, "blobs": [[BLOB_ID, type, compression, offset, stored, raw], ...]}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import blake3

from vaultline.errors import FormatVersionError, IntegrityError
from vaultline.repository.compression import compress_document, decompress_document
from vaultline.repository.crypto import Cipher
from vaultline.repository.layout import INDEX_PREFIX, index_key
from vaultline.repository.packs import BlobEntry
from vaultline.storage import Storage

INDEX_AAD = b"vaultline index"


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """A blob's pack and its place in it."""

    pack_id: str
    entry: BlobEntry


class MasterIndex:
    """All index objects of a vault merged in memory: blob id -> location."""

    def __init__(self) -> None:
        self._blobs: dict[bytes, BlobLocation] = {}
        self.packs: dict[str, list[BlobEntry]] = {}
        self.index_ids: set[str] = set()

    def __contains__(self, blob_id: bytes) -> bool:
        return blob_id in self._blobs

    def __len__(self) -> int:
        return len(self._blobs)

    def get(self, blob_id: bytes) -> BlobLocation | None:
        return self._blobs.get(blob_id)

    def add_pack(self, pack_id: str, entries: list[BlobEntry]) -> None:
        self.packs[pack_id] = entries
        for entry in entries:
            # First writer wins: a blob stored twice (two concurrent workers) is readable from either pack.
            self._blobs.setdefault(entry.id, BlobLocation(pack_id, entry))

    def blobs(self) -> Iterator[tuple[bytes, BlobLocation]]:
        return iter(self._blobs.items())


def encode_index(packs: Iterable[tuple[str, list[BlobEntry]]], cipher: Cipher) -> tuple[str, bytes]:
    """Serialize packs into an index object; return (index id, stored bytes)."""
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
    stored = cipher.seal(compress_document(json.dumps(document, separators=(",", ":")).encode()), INDEX_AAD)
    return blake3.blake3(stored).hexdigest(), stored


def decode_index(stored: bytes, cipher: Cipher, what: str) -> list[tuple[str, list[BlobEntry]]]:
    """Inverse of :func:`encode_index`."""
    try:
        document = json.loads(decompress_document(cipher.open(stored, INDEX_AAD, what), what))
        if document.get("version") != 1 or isinstance(document.get("version"), bool):
            raise FormatVersionError(f"{what}: index version {document.get('version')!r} is not supported")
        return [
            (pack["id"], [BlobEntry(bytes.fromhex(b[0]), b[1], b[2], b[3], b[4], b[5]) for b in pack["blobs"]])
            for pack in document["packs"]
        ]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise IntegrityError(f"{what}: malformed index ({exc})") from None


def write_index(storage: Storage, packs: list[tuple[str, list[BlobEntry]]], cipher: Cipher) -> str:
    """Store an index object for ``packs`` and return its id."""
    index_id, stored = encode_index(packs, cipher)
    storage.put(index_key(index_id), stored)
    return index_id


def iter_index_objects(storage: Storage, cipher: Cipher) -> Iterator[tuple[str, list[tuple[str, list[BlobEntry]]]]]:
    """Every index object as (index id, its packs' entries), each checked against its name; read in parallel
    (latency, not CPU, dominates on S3)."""
    keys = [obj.key for obj in storage.list(INDEX_PREFIX)]

    def load(key: str) -> tuple[str, list[tuple[str, list[BlobEntry]]]]:
        stored = storage.get(key)
        index_id = key[len(INDEX_PREFIX) :]
        if blake3.blake3(stored).hexdigest() != index_id:
            raise IntegrityError(f"{storage.url}: {key} does not hash to its name (corrupt index); run check")
        return index_id, decode_index(stored, cipher, f"{storage.url}: {key}")

    with ThreadPoolExecutor(max_workers=16) as pool:
        yield from pool.map(load, keys)


def load_master_index(storage: Storage, cipher: Cipher) -> MasterIndex:
    """Read every index object into one lookup table."""
    index = MasterIndex()
    for index_id, packs in iter_index_objects(storage, cipher):
        index.index_ids.add(index_id)
        for pack_id, entries in packs:
            index.add_pack(pack_id, entries)
    return index
