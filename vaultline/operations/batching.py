"""Cutting a stream of ids into lists of a bounded size (itertools.batched arrives with Python 3.12)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def batches(ids: Iterable[str], size: int) -> Iterator[list[str]]:
    """``ids`` in order, as lists of at most ``size``; the stream is never held whole."""
    batch: list[str] = []
    for item in ids:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
