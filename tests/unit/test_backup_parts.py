"""Prepare cuts the joined listing into bounded batches and carried parts as it streams, never holding the whole."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from vaultline.repository.manifest import BackupStats, EntryLine, ObjectEntry
from vaultline.runs.backup_parts import BATCH_MAX_OBJECTS, CARRIED_PART_OBJECTS, SPREAD_WORKERS, cut_parts
from vaultline.runs.models import BackupBatch, BatchResult, CarriedPart

Joined = tuple[ObjectEntry, ObjectEntry | None]


def entry(number: int, size: int = 10) -> ObjectEntry:
    return ObjectEntry(key=f"k/{number:08d}", size=size, etag=f"e{number}")


def joined(kinds: str) -> Iterator[Joined]:
    """A joined listing: ``r`` an object to read (changed), ``u`` an unchanged one (its parent entry beside it)."""
    for number, kind in enumerate(kinds):
        item = entry(number)
        yield item, (item.model_copy(update={"chunks": ["c"]}) if kind == "u" else None)


def split(parts: list[BackupBatch | CarriedPart]) -> tuple[list[BackupBatch], list[CarriedPart]]:
    batches = [p for p in parts if isinstance(p, BackupBatch)]
    return batches, [p for p in parts if isinstance(p, CarriedPart)]


def carried_keys(part: CarriedPart) -> list[str]:
    return [e.key for e in part.entry_lines("part")]


@given(st.text(alphabet="ru", max_size=300), st.booleans(), st.integers(1, 12), st.integers(1, 40))
def test_parts_hold_every_listed_object_once_in_key_order_each_sequence_consecutive(
    kinds: str, retag: bool, workers: int, carried_part: int
) -> None:
    batches, carried = split(list(cut_parts(joined(kinds), retag, workers, carried_part)))

    assert [b.batch for b in batches] == list(range(len(batches)))
    assert [c.batch for c in carried] == list(range(len(carried)))
    worked = [e.key for b in batches for e in sorted([*b.read, *b.retag], key=lambda e: e.key)]
    kept = [key for c in carried for key in carried_keys(c)]
    assert worked == sorted(worked) and kept == sorted(kept)  # consecutive key ranges, each sorted
    assert sorted(worked + kept) == [entry(n).key for n in range(len(kinds))]
    assert all(len(carried_keys(c)) <= carried_part for c in carried)
    reads = [e.key for b in batches for e in b.read]
    assert reads == [entry(n).key for n, kind in enumerate(kinds) if kind == "r"]
    assert (kept == []) == (retag or "u" not in kinds)  # unchanged objects are retagged or carried, never both
    assert sum(c.stats.objects_unchanged for c in carried) == len(kept)


def test_a_small_backup_is_spread_over_its_workers() -> None:
    batches, _ = split(list(cut_parts(joined("r" * 100), retag=False, workers=4)))
    assert [len(b.read) for b in batches] == [25, 25, 25, 25]


def test_a_large_backup_gets_full_batches_and_bounded_carried_parts() -> None:
    objects = SPREAD_WORKERS * BATCH_MAX_OBJECTS * 2 + 7
    batches, carried = split(list(cut_parts(joined("ru" * objects), retag=False, workers=1000)))
    assert {len(b.read) for b in batches[:-1]} == {BATCH_MAX_OBJECTS}
    assert {len(carried_keys(c)) for c in carried[:-1]} == {CARRIED_PART_OBJECTS}


def test_parts_are_cut_as_the_listing_streams_by() -> None:
    """Each part leaves as soon as it is full: what is consumed but not yet handed on stays within one batch, one
    carried part and the look-ahead, however long the listing (here 40 carried parts' worth)."""
    consumed = 0

    def counted() -> Iterator[Joined]:
        nonlocal consumed
        for pair in joined(("u" * 99 + "r") * 800):
            consumed += 1
            yield pair

    handed_on = 0
    held = []
    for part in cut_parts(counted(), retag=False, workers=1):
        handed_on += len(part.read) if isinstance(part, BackupBatch) else part.stats.objects
        held.append(consumed - handed_on)
    assert len(held) > 40
    assert max(held) <= CARRIED_PART_OBJECTS + BATCH_MAX_OBJECTS * 2 + 1


def test_carried_entries_keep_the_parents_bytes_and_retagged_ones_are_decoded() -> None:
    parent = entry(1).model_copy(update={"chunks": ["c1", "c2"], "tags": {"team": "a"}})
    line = EntryLine.parse(parent.manifest_line())

    _, (carried,) = split(list(cut_parts([(entry(1), line)], retag=False, workers=1)))
    (retagged,), _ = split(list(cut_parts([(entry(1), line)], retag=True, workers=1)))

    assert carried.lines.encode() == parent.manifest_line()
    assert carried.stats.bytes == parent.size
    assert retagged.retag == [parent]


def test_a_carried_part_staged_before_entry_lines_still_reads() -> None:
    """A run under way across an upgrade: its Prepare staged carried parts with their entries decoded."""
    old = BatchResult(batch=0, entries=[entry(1), entry(2)], stats=BackupStats(objects=2))
    part = CarriedPart.model_validate_json(old.model_dump_json())
    assert list(part.entry_lines("part")) == [entry(1), entry(2)]
