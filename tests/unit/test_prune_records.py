"""Prune's staged records: what is encoded decodes alike, merges are sorted and distinct, partials add up."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vaultline.operations import prune_records as rec

ids = st.binary(min_size=32, max_size=32)
offsets = st.lists(st.integers(min_value=0, max_value=2**32 - 1), max_size=5)


@given(st.lists(st.tuples(ids, st.integers(0, 2**63), st.integers(0, 2**63), offsets), max_size=20))
def test_partials_round_trip(rows: list[tuple[bytes, int, int, list[int]]]) -> None:
    partials = [rec.Partial(*row) for row in rows]
    assert list(rec.decode_partials(rec.encode_partials(partials))) == partials


@given(
    st.lists(st.tuples(ids, st.lists(st.tuples(ids, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=3)))
)
def test_dups_and_index_packs_round_trip(rows: list[tuple[bytes, list[tuple[bytes, int, int]]]]) -> None:
    assert list(rec.decode_dups(rec.encode_dups(rows))) == rows
    listing = [(index_id, [pack for pack, _, _ in locations]) for index_id, locations in rows]
    assert list(rec.decode_index_packs(rec.encode_index_packs(listing))) == listing


@given(st.lists(st.lists(ids, max_size=20), max_size=5))
def test_merged_runs_are_sorted_and_distinct(runs: list[list[bytes]]) -> None:
    files = [b"".join(sorted(set(run))) for run in runs]
    assert list(rec.merged(files, rec.ID)) == sorted({i for run in runs for i in run})


@given(st.lists(st.lists(st.tuples(ids, st.integers(0, 99), st.integers(0, 99)), max_size=8), max_size=4))
def test_merged_partials_add_up_per_pack_in_pack_order(parts: list[list[tuple[bytes, int, int]]]) -> None:
    files = [
        [rec.Partial(pack, total, live, [live]) for pack, total, live in sorted({r[0]: r for r in part}.values())]
        for part in parts
    ]
    merged = list(rec.merged_partials(iter(f) for f in files))
    assert [m.pack for m in merged] == sorted({p.pack for f in files for p in f})
    for m in merged:
        mine = [p for f in files for p in f if p.pack == m.pack]
        assert (m.total, m.live, sorted(m.offsets)) == (
            sum(p.total for p in mine),
            sum(p.live for p in mine),
            sorted(o for p in mine for o in p.offsets),
        )


def test_a_blob_id_falls_in_the_partition_of_its_first_bits() -> None:
    blob = bytes([0b1011_0000]) + bytes(31)
    assert [rec.partition_of(blob, bits) for bits in (0, 1, 2, 8)] == [0, 1, 2, 0b1011_0000]
    view = rec.SortedIds(b"".join(sorted([blob, bytes(32)])))
    assert blob in view and bytes([1]) * 32 not in view
