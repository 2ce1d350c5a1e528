"""Entry streams in key order: the one shape in which listings, parent manifests and batch results meet.

Every step that handles a recovery point's entries handles them as streams sorted by key (the order of S3's
listings and of the manifest), so none of them holds a whole listing or manifest: the parent comparison is a
merge-join of two sorted streams, a commit is a merge of sorted parts. Python orders ``str`` by code point, which is
the order of UTF-8 bytes, S3's listing order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator

from vaultline.repository.manifest import ObjectEntry, in_key_order

__all__ = ["in_key_order", "join_with_parent", "merge_by_key"]


def join_with_parent(
    listed: Iterable[ObjectEntry],
    parent: Iterable[ObjectEntry],
    what: str = "listing",
    on_changed: Callable[[ObjectEntry, ObjectEntry], None] | None = None,
) -> Iterator[tuple[ObjectEntry, ObjectEntry | None]]:
    """Each listed item with the parent's entry of the same object when it is unchanged (same key, version, size,
    ETag and mtime: not read again, its chunks reused), else None. A merge-join of two key-sorted streams: memory
    stays constant whatever the sizes of the listing and the parent. ``on_changed(item, before)`` is told of each
    changed object's parent entry before the item is yielded (whose chunks a worker need not look up: they are
    stored)."""
    parents = in_key_order(parent, "parent recovery point")
    before = next(parents, None)
    for item in in_key_order(listed, what):
        while before is not None and before.key < item.key:
            before = next(parents, None)
        if before is not None and before.key == item.key and before.same_content(item):
            yield item, before
        else:
            if on_changed is not None and before is not None and before.key == item.key:
                on_changed(item, before)
            yield item, None


def merge_by_key(streams: Iterable[Iterable[ObjectEntry]], what: str) -> Iterator[ObjectEntry]:
    """One key-sorted stream from several key-sorted streams of disjoint keys (the parts of one recovery point),
    checked to stay in order: two parts holding the same key is an error, not a silent duplicate."""
    return in_key_order(heapq.merge(*streams, key=lambda entry: entry.key), what)
