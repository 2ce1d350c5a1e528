"""A copy reads a pack's wanted blobs in few ranged GETs: neighbours share one, a long gap or a full range starts
another."""

from __future__ import annotations

from vaultline.operations.copy import MAX_RANGE, RANGE_GAP, pack_ranges
from vaultline.repository.packs import BlobEntry


def blob(offset: int, length: int) -> BlobEntry:
    return BlobEntry(
        id=offset.to_bytes(32, "big"), type=0, compression=0, offset=offset, stored_length=length, raw_length=length
    )


def test_adjacent_blobs_and_small_gaps_share_one_range() -> None:
    blobs = [blob(0, 100), blob(100, 100), blob(200 + RANGE_GAP, 100)]
    assert [[b.offset for b in group] for group in pack_ranges(blobs)] == [[0, 100, 200 + RANGE_GAP]]


def test_a_gap_longer_than_reading_it_is_worth_starts_another_range() -> None:
    blobs = [blob(0, 100), blob(101 + RANGE_GAP, 100)]
    assert [[b.offset for b in group] for group in pack_ranges(blobs)] == [[0], [101 + RANGE_GAP]]


def test_no_range_grows_past_the_maximum() -> None:
    size = MAX_RANGE // 4
    blobs = [blob(i * size, size) for i in range(9)]
    groups = list(pack_ranges(blobs))
    assert [len(group) for group in groups] == [4, 4, 1]
    assert all(g[-1].offset + g[-1].stored_length - g[0].offset <= MAX_RANGE for g in groups)
    assert list(pack_ranges([])) == []
