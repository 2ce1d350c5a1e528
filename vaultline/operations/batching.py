"""Cutting a stream (of ids, mostly) into lists of a bounded size (itertools.batched arrives with Python 3.12)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def batches(ids: Iterable[T], size: int) -> Iterator[list[T]]:
    """``ids`` in order, as lists of at most ``size``; the stream is never held whole."""
    batch: list[T] = []
    for item in ids:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
