"""Every index row of a vault, gathered for compaction in bounded memory and handed back sorted, a key range at a time.

Compaction must see every row once, in key order. Holding them all (34 bytes each, a gigabyte at 30 million chunks)
put it beyond a 1 GB Lambda; here rows are kept in memory up to a budget, and past it each of 64 key ranges (the
first 6 bits of the key) is appended to a temporary file of its own, as an external sort's runs. Reading back, one
range is loaded and sorted at a time: a sixty-fourth of the rows, plus a Python ``bytes`` per row while it sorts.

Held throughout: the pack table (32 bytes per pack and a dict entry each, for the pack numbers), the rows below the
budget, and one range being sorted. On disk: 34 bytes per row, in the process's temporary directory (Lambda's
``/tmp``, whose size the compact function's ``EphemeralStorage`` sets).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from vaultline.repository.compact_index import BUCKET_BITS, KEY_SIZE, ROW_SIZE, CompactIndexBuilder
from vaultline.repository.index_codec import IndexTable

RANGE_BITS = 6
RANGES = 1 << RANGE_BITS
_BUCKETS_PER_RANGE = 1 << (BUCKET_BITS - RANGE_BITS)
# 64 MiB of rows (about 2 million) stay in memory: a vault that small never touches the disk.
DEFAULT_MEMORY_BUDGET = 64 * 2**20


class SpilledRows:
    """Collects the rows of index objects (:meth:`add_table`), then yields them sorted (:meth:`sorted_ranges`). Use it
    as a context manager: leaving it deletes the spill files."""

    def __init__(self, memory_budget: int = DEFAULT_MEMORY_BUDGET, directory: Path | None = None) -> None:
        self._builder = CompactIndexBuilder()
        self._budget = memory_budget
        self._directory = directory
        self._spill: tempfile.TemporaryDirectory[str] | None = None
        self._files: list[BinaryIO] = []
        self._spilled_bytes = 0
        self.distinct = 0  # distinct keys, counted as the ranges are sorted

    def __enter__(self) -> SpilledRows:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the spill files."""
        for file in self._files:
            file.close()
        self._files = []
        if self._spill is not None:
            self._spill.cleanup()
            self._spill = None

    @property
    def rows(self) -> int:
        """Rows added so far (a blob listed in two packs is two rows)."""
        return (self._spilled_bytes + self._builder.row_bytes()) // ROW_SIZE

    @property
    def pack_table(self) -> bytes:
        """The raw pack ids in pack-number order (the numbers the rows carry)."""
        return self._builder.pack_table

    @property
    def pack_count(self) -> int:
        """How many distinct packs the rows name."""
        return self._builder.pack_count

    def add_table(self, table: IndexTable, what: str) -> None:
        """Add an index object's rows (packs added already are skipped, as :class:`CompactIndexBuilder` does)."""
        self._builder.add_table(table, what)
        if self._builder.row_bytes() > self._budget:
            self._spill_rows()

    def _spill_rows(self) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryDirectory(prefix="vaultline-compact-", dir=self._directory)
            root = Path(self._spill.name)
            self._files = [(root / f"{n:02x}").open("w+b") for n in range(RANGES)]
        for n, file in enumerate(self._files):
            rows = self._builder.take_rows(n * _BUCKETS_PER_RANGE, _BUCKETS_PER_RANGE)
            file.write(rows)
            self._spilled_bytes += len(rows)

    def sorted_ranges(self) -> Iterator[bytes]:
        """Each of the 64 key ranges' rows, sorted (by key, then pack number), in key order; consumes the rows.
        :attr:`distinct` is complete once the last range is out."""
        self.distinct = 0
        for n in range(RANGES):
            held = self._builder.take_rows(n * _BUCKETS_PER_RANGE, _BUCKETS_PER_RANGE)
            if self._files:
                file = self._files[n]
                file.seek(0)
                data = file.read() + held
                file.truncate(0)
            else:
                data = held
            del held
            rows = [data[at : at + ROW_SIZE] for at in range(0, len(data), ROW_SIZE)]
            del data
            rows.sort()
            self.distinct += len({row[:KEY_SIZE] for row in rows})
            yield b"".join(rows)


__all__ = ["DEFAULT_MEMORY_BUDGET", "RANGES", "SpilledRows"]
