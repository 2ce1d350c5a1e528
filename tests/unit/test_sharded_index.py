"""The sharded dedup index: its codecs round-trip, its lookups agree with the whole index, compaction is crash-safe,
and a catalog never outlives what it names."""

from __future__ import annotations

import itertools
import os
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultline.errors import IntegrityError
from vaultline.repository import index_shards
from vaultline.repository.compact_index import KEY_SIZE, ROW_HEAD, ROW_SIZE, ROW_TAIL
from vaultline.repository.index_shards import (
    FilterBuilder,
    IndexCatalog,
    KeyFilter,
    ObjectRef,
    decode_catalog,
    decode_packs,
    decode_shard,
    encode_catalog,
    encode_packs,
    encode_shard,
    open_object,
    shard_bits_for,
    shard_of,
)
from vaultline.repository.layout import CATALOG_PREFIX, GENERATION_PREFIX, index_key
from vaultline.repository.packs import BlobEntry
from vaultline.repository.sharded_index import (
    ShardedIndex,
    SortedLocator,
    _shards,
    compact,
    current_catalog,
    invalidate_catalog,
    list_generations,
    open_dedup_index,
)
from vaultline.repository.vault import Vault
from vaultline.storage import LocalStorage

keys = st.binary(min_size=KEY_SIZE, max_size=KEY_SIZE)
hashes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


def row(key: bytes, pack: int, offset: int = 0, stored: int = 1, raw: int = 1, kind: int = 0, comp: int = 0) -> bytes:
    return ROW_HEAD.pack(key, pack) + ROW_TAIL.pack(offset, stored, raw, kind, comp)


def in_shard(key: bytes, bits: int, number: int) -> bytes:
    """``key`` with its first ``bits`` bits replaced by ``number``'s."""
    low = int.from_bytes(key[:2], "big") & ((1 << (16 - bits)) - 1)
    return ((number << (16 - bits)) | low).to_bytes(2, "big") + key[2:]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 4), st.data())
def test_a_shard_round_trips_its_sorted_rows(bits: int, data: st.DataObject) -> None:
    number = data.draw(st.integers(0, (1 << bits) - 1))
    drawn = data.draw(st.lists(keys, max_size=40))
    placed = sorted({in_shard(k, bits, number) for k in drawn})
    rows = b"".join(row(k, i % 3, i, i + 1, i + 2, i % 2, 1) for i, k in enumerate(placed))
    body = encode_shard(bits, number, rows)
    assert decode_shard(body, bits, number, 3, "shard") == rows
    if len(placed) > 2:
        with pytest.raises(IntegrityError):
            decode_shard(body, bits, number, 2, "shard")  # a row names pack 2 of a 2-pack table


def test_a_shard_refuses_to_stand_in_for_another() -> None:
    body = encode_shard(1, 0, row(b"\x00" * 16, 0))
    with pytest.raises(IntegrityError, match="not 1 of 1"):
        decode_shard(body, 1, 1, 1, "shard")


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=20))
def test_a_pack_table_round_trips(ids: list[bytes]) -> None:
    table = b"".join(ids)
    assert decode_packs(encode_packs(table), "packs") == table


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3), st.lists(hashes, max_size=5), st.integers(0, 10**9), hashes)
def test_a_catalog_round_trips(bits: int, index_ids: list[str], blobs: int, digest: str) -> None:
    catalog = IndexCatalog(
        generation="20261202T120000Z-0badcafe",
        created=datetime(2026, 12, 2, 12, tzinfo=UTC),
        index_objects=sorted(index_ids),
        blobs=blobs,
        packs=ObjectRef(hash=digest, count=7),
        shard_bits=bits,
        shards=[ObjectRef(hash=digest, count=n) for n in range(1 << bits)],
        filter=ObjectRef(hash=digest, count=blobs),
    )
    assert decode_catalog(encode_catalog(catalog), "catalog") == catalog


@settings(max_examples=40, deadline=None)
@given(st.lists(keys, max_size=300, unique=True), st.lists(keys, max_size=50), st.integers(0, 3))
def test_the_filter_has_no_false_negatives_and_round_trips(
    present: list[bytes], probes: list[bytes], bits: int
) -> None:
    rows = sorted(row(k, 0) for k in present)
    builder = FilterBuilder()
    for n in range(1 << bits):  # fed shard by shard, as compaction does
        builder.add_rows(b"".join(r for r in rows if shard_of(r[:KEY_SIZE], bits) == n))
    key_filter = KeyFilter.decode(builder.finish(), "filter")
    assert key_filter.keys == len(present)
    assert all(key_filter.might_contain(k) for k in present)
    fingerprints = {k[:4] for k in present}
    for probe in probes:  # exactly: possibly present iff some key shares its first four bytes
        assert key_filter.might_contain(probe) == (probe[:4] in fingerprints)


def test_the_filter_false_positive_rate_is_about_n_over_2_to_the_32() -> None:
    rng = random.Random(7)
    present = sorted(rng.randbytes(16) for _ in range(200_000))
    builder = FilterBuilder()
    builder.add_rows(b"".join(row(k, 0) for k in present))
    key_filter = KeyFilter.decode(builder.finish(), "filter")
    positives = sum(key_filter.might_contain(rng.randbytes(16)) for _ in range(100_000))
    assert positives < 100_000 * 4 * 200_000 / 2**32  # four times the expectation (about 5 of 100 000)


def test_shards_are_about_a_mebibyte_at_any_size() -> None:
    assert shard_bits_for(0) == 0 and shard_bits_for(32_768) == 0
    assert 1 << shard_bits_for(30_000_000) == 1024
    assert 30_000_000 / (1 << shard_bits_for(30_000_000)) * ROW_SIZE < 1.1 * 2**20


# --- vaults -----------------------------------------------------------------------------------------------------


def random_vault(tmp: Path, seed: int, objects: int = 4, blobs: int = 400) -> tuple[Vault, list[bytes]]:
    """Index objects of random packs (no pack data: lookups only); some blobs sit in two packs."""
    rng = random.Random(seed)
    vault = Vault.init(LocalStorage(tmp / f"vault-{seed}"))
    ids: list[bytes] = []
    for _ in range(objects):
        packs = []
        for _ in range(rng.randint(1, 5)):
            entries = []
            for at in range(rng.randint(0, blobs // 5)):
                blob_id = rng.choice(ids) if ids and rng.random() < 0.1 else rng.randbytes(32)
                ids.append(blob_id)
                entries.append(
                    BlobEntry(blob_id, rng.randint(0, 1), rng.randint(0, 1), at * 10, 10, rng.randint(1, 99))
                )
            packs.append((rng.randbytes(32).hex(), entries))
        vault.write_index(packs)
    return vault, ids


def assert_agrees(vault: Vault, ids: list[bytes], rng: random.Random) -> ShardedIndex:
    fresh = Vault.open(vault.storage)
    lookup = fresh.lookup
    assert isinstance(lookup, ShardedIndex)
    whole = Vault.open(vault.storage).index
    for blob_id in [*ids, *(rng.randbytes(32) for _ in range(200))]:
        assert (blob_id in lookup) == (blob_id in whole)
        found, expected = lookup.get(blob_id), whole.get(blob_id)
        if expected is None:
            assert found is None
        else:  # any listed location is valid; with one location per blob both name it
            assert found is not None and found.entry.id == blob_id
            assert found.pack_id in whole.packs
            assert any(
                e.id == blob_id[:KEY_SIZE] and e.offset == found.entry.offset for e in whole.packs[found.pack_id]
            )
    for pack_id in whole.packs:
        assert lookup.has_pack(pack_id)
    assert not lookup.has_pack(os.urandom(32).hex())
    return lookup


@pytest.mark.parametrize("seed", range(6))
def test_lookups_agree_with_the_whole_index(tmp_path: Path, seed: int) -> None:
    vault, ids = random_vault(tmp_path, seed)
    compact(vault.storage, vault.cipher)
    assert_agrees(vault, ids, random.Random(seed))


def test_lookups_agree_with_many_shards_and_recent_index_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_shards, "SHARD_ROWS_TARGET", 1)  # a shard per row or so
    vault, ids = random_vault(tmp_path, 11, objects=3, blobs=300)
    assert compact(vault.storage, vault.cipher).shards == 512
    more, more_ids = random_vault(tmp_path, 12, objects=2)
    for obj in more.storage.list("index/"):  # recent index objects, written after the catalog
        vault.storage.put(obj.key, more.storage.get(obj.key))
    vault_ids = ids + [i for i in more_ids if Vault.open(vault.storage).index.get(i) is not None]
    lookup = assert_agrees(vault, vault_ids, random.Random(3))
    assert lookup.recent.index_ids and lookup.counters.recent_hits


def test_a_sorted_walk_locates_as_the_lookup_does_fetching_each_shard_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_shards, "SHARD_ROWS_TARGET", 2)
    vault, ids = random_vault(tmp_path, 21, objects=3, blobs=300)
    shards = compact(vault.storage, vault.cipher).shards
    more, more_ids = random_vault(tmp_path, 22, objects=1)
    for obj in more.storage.list("index/"):  # a recent index object, written after the catalog
        vault.storage.put(obj.key, more.storage.get(obj.key))
    lookup = Vault.open(vault.storage).lookup
    assert isinstance(lookup, ShardedIndex) and lookup.recent.index_ids
    asked = sorted({*ids, *more_ids, *(random.Random(5).randbytes(32) for _ in range(300))})
    whole = Vault.open(vault.storage).index
    for index in (lookup, whole):
        walk = SortedLocator(index)
        for blob_id, found in walk.locate(asked):
            expected = lookup.get(blob_id)
            assert (found is None) == (expected is None) == (blob_id not in whole), blob_id.hex()
            if found is not None and expected is not None:
                assert (found.pack_id, found.entry) == (expected.pack_id, expected.entry)
    membership = SortedLocator(lookup)
    assert [b in membership for b in asked] == [b in whole for b in asked]
    # One pass: each shard fetched at most once, though far more ids than shards were asked; the whole index has none.
    assert 1 < membership.fetches <= shards and walk.fetches == 0


@pytest.mark.parametrize("bits", [0, 5, 6, 12, 13, 16])
def test_shards_cut_sorted_runs_at_their_prefixes(bits: int) -> None:
    rng = random.Random(bits)
    rows = sorted(row(rng.randbytes(16), 0) for _ in range(3000))
    # Runs cut anywhere (inside a shard, at its edge, empty), as the 64 sorted key ranges of a compaction cut them.
    cuts = sorted([*rng.sample(range(len(rows)), 40), 0, 0, len(rows), len(rows)])
    runs = [b"".join(rows[a:b]) for a, b in itertools.pairwise(cuts)]
    shards = list(_shards(iter(runs), bits))
    assert len(shards) == 1 << bits and b"".join(shards) == b"".join(rows)
    for n, rows_of in enumerate(shards):
        assert all(shard_of(rows_of[at : at + KEY_SIZE], bits) == n for at in range(0, len(rows_of), ROW_SIZE))


def _generation_objects(vault: Vault, generation: str) -> dict[str, bytes]:
    """The generation's objects, opened, by key with the (random) generation id left out."""
    found = {}
    for prefix in (GENERATION_PREFIX, CATALOG_PREFIX):
        for obj in vault.storage.list(prefix):
            body = open_object(vault.storage.get(obj.key), obj.key, vault.cipher, obj.key)
            found[obj.key.replace(generation, "G")] = body.replace(generation.encode(), b"G")
    return found


def test_compaction_spilled_to_disk_writes_the_same_generation_as_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_shards, "SHARD_ROWS_TARGET", 8)  # many shards, so ranges and shards cut each other
    now = datetime(2026, 12, 3, tzinfo=UTC)
    in_memory, _ = random_vault(tmp_path / "memory", 21, objects=6)
    spilled, ids = random_vault(tmp_path / "spilled", 21, objects=6)
    whole = compact(in_memory.storage, in_memory.cipher, now=now)
    # A budget of one row spills after every index object; a spill directory left behind would be a leak.
    spill_root = tmp_path / "tmp"
    spill_root.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(spill_root))
    pieces = compact(spilled.storage, spilled.cipher, now=now, memory_budget=ROW_SIZE)
    assert list(spill_root.iterdir()) == []
    assert (pieces.rows, pieces.blobs, pieces.packs, pieces.shards) == (
        whole.rows,
        whole.blobs,
        whole.packs,
        whole.shards,
    )
    assert pieces.blobs == len(set(ids)) and pieces.shards > 64
    assert whole.generation and pieces.generation
    memory_objects = _generation_objects(in_memory, whole.generation)
    spilled_objects = _generation_objects(spilled, pieces.generation)
    assert memory_objects.keys() == spilled_objects.keys()
    for key, body in memory_objects.items():
        if "catalog" not in key:  # a catalog holds the hashes of its objects as sealed, which differ by generation
            assert spilled_objects[key] == body, key
    assert_agrees(spilled, ids, random.Random(21))


class Crash(Exception):
    """Stands for the process dying at a request."""


class CrashingStorage(LocalStorage):
    """Dies at the n-th put."""

    def __init__(self, root: Path, puts: int) -> None:
        super().__init__(root)
        self.left = puts

    def put(self, key: str, data: bytes) -> None:
        self.left -= 1
        if self.left < 0:
            raise Crash(key)
        super().put(key, data)


@pytest.mark.parametrize("puts", [0, 1, 2, 3])
def test_a_crash_during_compaction_leaves_a_readable_vault(tmp_path: Path, puts: int) -> None:
    vault, ids = random_vault(tmp_path, 5)
    crashing = CrashingStorage(Path(vault.storage.root), puts)
    with pytest.raises(Crash):
        compact(crashing, vault.cipher)
    assert list_generations(vault.storage) == []  # no catalog: the leftovers are not a generation
    lookup = Vault.open(vault.storage).lookup
    assert not isinstance(lookup, ShardedIndex) and all(i in lookup for i in ids)
    compact(vault.storage, vault.cipher)  # the next run finishes
    assert_agrees(vault, ids, random.Random(1))
    invalidate_catalog(vault.storage, vault.cipher, keep_current=True)  # the crashed run's objects go
    generation = list_generations(vault.storage)[0]
    assert all(obj.key.startswith(f"{GENERATION_PREFIX}{generation}/") for obj in vault.storage.list(GENERATION_PREFIX))
    assert_agrees(vault, ids, random.Random(2))


def test_a_catalog_is_stale_once_an_index_object_it_consolidates_is_gone(tmp_path: Path) -> None:
    vault, _ = random_vault(tmp_path, 8)
    compact(vault.storage, vault.cipher)
    first = next(iter(vault.storage.list("index/"))).key
    vault.storage.delete(first)  # what a prune (of any build) does before it deletes a pack that object lists
    assert current_catalog(vault.storage, vault.cipher, {o.key[6:] for o in vault.storage.list("index/")}) is None
    assert not isinstance(open_dedup_index(vault.storage, vault.cipher), ShardedIndex)


def test_compaction_skips_a_complete_generation_and_supersedes_an_older_one(tmp_path: Path) -> None:
    vault, _ = random_vault(tmp_path, 9)
    first = compact(vault.storage, vault.cipher)
    assert compact(vault.storage, vault.cipher).up_to_date
    random_vault(tmp_path, 10)  # (a second vault; the first gets a new index object below)
    vault.write_index([(os.urandom(32).hex(), [BlobEntry(os.urandom(32), 0, 0, 0, 1, 1)])])
    second = compact(vault.storage, vault.cipher)
    assert second.superseded == [first.generation]
    assert list_generations(vault.storage) == sorted([first.generation, second.generation])
    assert invalidate_catalog(vault.storage, vault.cipher, keep_current=True) == [first.generation]
    assert list_generations(vault.storage) == [second.generation]
    invalidate_catalog(vault.storage, vault.cipher)
    assert not list(vault.storage.list(CATALOG_PREFIX)) and not list(vault.storage.list(GENERATION_PREFIX))


def test_a_tampered_shard_is_refused(tmp_path: Path) -> None:
    vault, ids = random_vault(tmp_path, 4)
    result = compact(vault.storage, vault.cipher)
    shard = f"{GENERATION_PREFIX}{result.generation}/0000"
    vault.storage.put(shard, vault.storage.get(shard)[:-1] + b"\x00")
    with pytest.raises(IntegrityError, match="catalog records"):
        Vault.open(vault.storage).lookup.get(ids[0])


def test_v1_index_objects_compact_too(tmp_path: Path) -> None:
    vault, _ = random_vault(tmp_path, 6, objects=0)
    entries = [BlobEntry(os.urandom(32), 0, 0, 10 * n, 10, 10) for n in range(20)]
    from vaultline.repository.index import write_index

    write_index(vault.storage, [(os.urandom(32).hex(), entries)], vault.cipher, version=1)
    compact(vault.storage, vault.cipher)
    assert_agrees(vault, [e.id for e in entries], random.Random(0))
    assert index_key("x").startswith("index/")
