"""The staged records of a prune run (docs/vault-format.md, "Prune staging"): binary, sorted, compressed, sealed.

A prune run keeps its intermediate data under ``staging/<run id>/`` like every staged run. Each file is
``seal(compress_document(records))`` with the file's vault key as associated data, and its records are fixed-width
(or, for partials, length-prefixed) big-endian structs, sorted, so that a step merges the files of one partition as
sorted streams and bisects a loaded file without turning its records into Python objects:

* ``live/<pp>/<item>-<part>-<seq>``: sorted, distinct 32-byte ids of blobs some recovery point needs;
* ``located/<pp>/<item>-<part>-<seq>``: ``LOCATED`` records (blob id, pack id, offset, stored length) of the index's
  entries, sorted by blob id then pack id;
* ``index-packs/<item>-<part>-<seq>``: per index object, its id and the ids of the packs it lists;
* ``packs``: ``STORED_PACK`` records (pack id, size) of every pack in storage, sorted by id;
* ``partials/<pp>``: per pack with entries in partition ``pp``, sorted by pack id: ``PARTIAL_HEAD`` (pack id,
  entry bytes, live bytes, live count) then that many u32 offsets of its live blobs;
* ``dups/<pp>``: live blobs found in more than one pack (``DUP_HEAD`` then that many ``DUP_LOCATION``);
* ``removed``: sorted 32-byte ids of the packs the decision removes (deleted or repacked).

``pp`` is the partition, two hex digits: the first ``bits`` bits of a blob id (``bits`` of the run document).
"""

from __future__ import annotations

import bisect
import heapq
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel

from vaultline.repository.compression import compress_document, decompress_document
from vaultline.repository.layout import run_prefix
from vaultline.repository.vault import Vault
from vaultline.storage import Storage

ID = 32
LOCATED = struct.Struct(">32s32sII")
STORED_PACK = struct.Struct(">32sQ")
PARTIAL_HEAD = struct.Struct(">32sQQI")
OFFSET = struct.Struct(">I")
DUP_HEAD = struct.Struct(">32sI")
DUP_LOCATION = struct.Struct(">32sII")
INDEX_HEAD = struct.Struct(">32sI")

M = TypeVar("M", bound=BaseModel)


def partition_of(blob_id: bytes, bits: int) -> int:
    """The partition of a blob id: its first ``bits`` bits."""
    return blob_id[0] >> (8 - bits) if bits else 0


def partition_name(partition: int) -> str:
    return f"{partition:02x}"


class Staging:
    """One run's staging area: sealed files and models by name under the run's prefix, in the vault's storage
    or in ``storage`` (a scratch directory: what a check in one process spills)."""

    def __init__(self, vault: Vault, run_id: str, storage: Storage | None = None) -> None:
        self.vault = vault
        self.run_id = run_id
        self.prefix = run_prefix(run_id)
        self.storage = storage or vault.storage

    def within(self, name: str) -> Staging:
        """The staging of one part of this run (``<run prefix><name>/``), in the same storage."""
        return Staging(self.vault, f"{self.run_id}/{name}", self.storage)

    def put_bytes(self, name: str, data: bytes) -> None:
        key = self.prefix + name
        self.storage.put(key, self.vault.cipher.seal(compress_document(data), key.encode()))

    def get_bytes(self, name: str) -> bytes:
        key = self.prefix + name
        what = f"{self.vault.url}: {key}"
        return decompress_document(self.vault.cipher.open(self.storage.get(key), key.encode(), what), what)

    def put_model(self, name: str, value: BaseModel) -> None:
        self.put_bytes(name, value.model_dump_json().encode())

    def get_model(self, name: str, model: type[M]) -> M:
        return model.model_validate_json(self.get_bytes(name))

    def exists(self, name: str) -> bool:
        return self.storage.exists(self.prefix + name)

    def finished(self, under: str) -> set[str]:
        """The stems of the result files under ``under`` (``results/read/000003.json`` -> ``000003``): which items
        left their result, what a later step proves complete before it acts."""
        return {name.rsplit("/", 1)[-1].removesuffix(".json") for name in self.names(under)}

    def names(self, under: str) -> list[str]:
        """Names of the files under ``under`` (a folder of one partition or one step: bounded by its items)."""
        return [obj.key[len(self.prefix) :] for obj in self.storage.list(self.prefix + under)]

    def clean(self, keep: tuple[str, ...] = ()) -> int:
        """Delete the run's staging but the files named in ``keep``; return how many objects."""
        kept = {self.prefix + name for name in keep}
        keys = [obj.key for obj in self.storage.list(self.prefix) if obj.key not in kept]
        for key in keys:
            self.storage.delete(key)
        return len(keys)


def fixed(data: bytes, size: int) -> Iterator[bytes]:
    """The records of a fixed-width file."""
    view = memoryview(data)
    for at in range(0, len(data), size):
        yield bytes(view[at : at + size])


def merged(files: Iterable[bytes], size: int) -> Iterator[bytes]:
    """The records of sorted fixed-width files as one sorted stream, each record once."""
    previous = None
    for record in heapq.merge(*(fixed(data, size) for data in files)):
        if record != previous:
            yield record
            previous = record


class SortedIds:
    """A bisectable view of a sorted file of fixed-width records keyed by their first 32 bytes."""

    def __init__(self, data: bytes, size: int = ID) -> None:
        self.data, self.size = data, size

    def __len__(self) -> int:
        return len(self.data) // self.size

    def __getitem__(self, i: int) -> bytes:
        at = i * self.size
        return self.data[at : at + ID]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes):
            return False
        i = bisect.bisect_left(self, key)
        return i < len(self) and self[i] == key


@dataclass(slots=True)
class Partial:
    """One pack's share of one partition (or, summed, of all): its entry bytes, live bytes and live offsets."""

    pack: bytes
    total: int
    live: int
    offsets: list[int]


def encode_partials(partials: Iterable[Partial]) -> bytes:
    parts = []
    for p in partials:
        parts.append(PARTIAL_HEAD.pack(p.pack, p.total, p.live, len(p.offsets)))
        parts.append(b"".join(OFFSET.pack(o) for o in p.offsets))
    return b"".join(parts)


def decode_partials(data: bytes) -> Iterator[Partial]:
    at = 0
    while at < len(data):
        pack, total, live, count = PARTIAL_HEAD.unpack_from(data, at)
        at += PARTIAL_HEAD.size
        offsets = [o for (o,) in OFFSET.iter_unpack(data[at : at + count * OFFSET.size])]
        at += count * OFFSET.size
        yield Partial(pack, total, live, offsets)


def merged_partials(files: Iterable[Iterator[Partial]]) -> Iterator[Partial]:
    """The partials of every partition merged into one per pack, in pack id order."""
    current: Partial | None = None
    for p in heapq.merge(*files, key=lambda p: p.pack):
        if current is not None and current.pack == p.pack:
            current.total += p.total
            current.live += p.live
            current.offsets += p.offsets
            continue
        if current is not None:
            yield current
        current = Partial(p.pack, p.total, p.live, list(p.offsets))
    if current is not None:
        yield current


def encode_dups(dups: Iterable[tuple[bytes, list[tuple[bytes, int, int]]]]) -> bytes:
    parts = []
    for blob, locations in dups:
        parts.append(DUP_HEAD.pack(blob, len(locations)))
        parts.extend(DUP_LOCATION.pack(*location) for location in locations)
    return b"".join(parts)


def decode_dups(data: bytes) -> Iterator[tuple[bytes, list[tuple[bytes, int, int]]]]:
    at = 0
    while at < len(data):
        blob, count = DUP_HEAD.unpack_from(data, at)
        at += DUP_HEAD.size
        locations = [DUP_LOCATION.unpack_from(data, at + n * DUP_LOCATION.size) for n in range(count)]
        at += count * DUP_LOCATION.size
        yield blob, locations


def encode_index_packs(objects: Iterable[tuple[bytes, list[bytes]]]) -> bytes:
    parts = []
    for index_id, packs in objects:
        parts.append(INDEX_HEAD.pack(index_id, len(packs)))
        parts.extend(packs)
    return b"".join(parts)


def decode_index_packs(data: bytes) -> Iterator[tuple[bytes, list[bytes]]]:
    at = 0
    while at < len(data):
        index_id, count = INDEX_HEAD.unpack_from(data, at)
        at += INDEX_HEAD.size
        yield index_id, [data[at + n * ID : at + (n + 1) * ID] for n in range(count)]
        at += count * ID
