"""A restore's Prepare cuts its selection into batches as the selection streams by: it never holds the selection,
only one batch and the look-ahead that spreads a small restore over its workers."""

from __future__ import annotations

from collections.abc import Iterator

from vaultline.repository.manifest import ObjectEntry
from vaultline.runs.backup_parts import BATCH_MAX_BYTES, BATCH_MAX_OBJECTS, SPREAD_WORKERS
from vaultline.runs.restore_steps import restore_batches


class Drawn:
    """A one-shot stream of entries that counts how many have been drawn from it."""

    def __init__(self, count: int, size: int = 1000) -> None:
        self.count, self.size, self.drawn = count, size, 0

    def __iter__(self) -> Iterator[ObjectEntry]:
        for number in range(self.count):
            self.drawn += 1
            yield ObjectEntry(key=f"k/{number:08d}", size=self.size)


def test_a_large_selection_is_drawn_one_batch_ahead_not_whole() -> None:
    workers = 10
    selection = Drawn(50_000)
    look_ahead = min(workers, SPREAD_WORKERS) * BATCH_MAX_OBJECTS
    drawn_at_each_batch = []
    total = 0
    for batch in restore_batches(selection, workers):
        drawn_at_each_batch.append(selection.drawn)
        total += len(batch)
        # What has been drawn but not yet handed out is what Prepare holds: at most the look-ahead and one batch.
        assert selection.drawn - total <= look_ahead + 1
    assert total == 50_000
    assert drawn_at_each_batch[0] <= look_ahead + 1
    assert len(drawn_at_each_batch) == 50_000 // BATCH_MAX_OBJECTS


def test_batches_keep_the_selection_order_and_the_backups_limits() -> None:
    keys = [entry.key for entry in Drawn(2_345)]
    batches = list(restore_batches(Drawn(2_345), workers=1))
    assert [entry.key for batch in batches for entry in batch] == keys
    assert all(len(batch) <= BATCH_MAX_OBJECTS for batch in batches)


def test_a_small_selection_is_spread_over_the_workers() -> None:
    batches = list(restore_batches(Drawn(1_000), workers=10))
    assert len(batches) == 10 and {len(batch) for batch in batches} == {100}


def test_large_objects_are_cut_by_bytes() -> None:
    batches = list(restore_batches(Drawn(6, size=BATCH_MAX_BYTES // 2), workers=1))
    assert [len(batch) for batch in batches] == [2, 2, 2]


def test_an_empty_selection_stages_no_batch() -> None:
    assert list(restore_batches(Drawn(0), workers=10)) == []
