"""Listing a bucket prefix in parallel, in key order: ListObjectsV2 (or ListObjectVersions) over prefix partitions.

One ListObjectsV2 request returns 1,000 keys, so a bucket of 10 million objects is 10,000 requests: listed one after
the other, longer than a Lambda may run. The key space is cut into partitions first, by delimiter listings (``/``):
a listing of prefix ``P`` with the delimiter returns the keys directly under ``P`` and the common prefixes below it,
and every key under a common prefix ``Q`` sorts after everything below ``Q`` and before everything above it
(anything that does not start with ``Q`` compares with all of ``Q``'s keys as it compares with ``Q``). So the
partitions, in order, are the direct keys and the common prefixes merged by name; each common prefix is expanded
again, breadth first, while there are few partitions and their listings are short. Then each partition is listed
whole in a thread, a few partitions ahead of the one being yielded, each a few pages ahead: the keys come out in
the bucket's order, and what is held stays within the threads' pages, whatever the bucket's size.

A prefix with no ``/`` structure below it (a flat bucket of millions of keys) is one partition, listed page after
page: its listing time grows with its size (about 1,000 keys per request).
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

DELIMITER = "/"
LIST_THREADS = 8  # partitions listed at once
PAGES_AHEAD = 2  # pages a partition's lister may read ahead of the consumer
PARTITIONS_WANTED = 64  # expand partitions while there are fewer
EXPAND_LEVELS = 4  # delimiter levels explored at most
EXPAND_PAGES = 2  # a delimiter listing longer than this is not expanded (its partition is listed whole)
PAGE_SIZE: int | None = None  # keys per request (S3's default, 1,000); tests make it small

Item = dict[str, Any]


@dataclass(frozen=True)
class Partition:
    """A stretch of the key space: keys already listed (directly under an expanded prefix), or a prefix still to
    list whole."""

    name: str  # the first key, or the prefix; partitions sort by it
    items: tuple[Item, ...] = ()
    prefix: bool = False
    expandable: bool = True  # False once a delimiter listing of the prefix was found too long to hold


class OrderedListing:
    """The current objects of ``bucket`` under ``prefix`` in key order, listed in parallel by partitions.

    ``versioned``: through ListObjectVersions, keeping each key's latest version (a key whose latest version is a
    delete marker is not listed). ``s3`` is a client that threads may share (boto3's are).
    """

    def __init__(self, s3: Any, bucket: str, prefix: str, versioned: bool) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.versioned = versioned

    def __iter__(self) -> Iterator[Item]:
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=LIST_THREADS, thread_name_prefix="vl-list") as pool:
            window: deque[_Pages | Partition] = deque()
            try:
                for partition in self.partitions(pool):
                    window.append(_Pages.start(pool, stop, self._lister(partition)) if partition.prefix else partition)
                    if len(window) > LIST_THREADS:
                        yield from _items(window.popleft())
                while window:
                    yield from _items(window.popleft())
            finally:
                # Stopped early (an error, or the consumer closed the listing): the listers still running give up.
                stop.set()

    # -- partitions ---------------------------------------------------------------------------------------------
    def partitions(self, pool: ThreadPoolExecutor) -> list[Partition]:
        """The partitions of the key space in key order, expanded level by level while there are few."""
        partitions = [Partition(self.prefix, prefix=True)]
        for _ in range(EXPAND_LEVELS):
            prefixes = [p.name for p in partitions if p.prefix and p.expandable]
            if not prefixes or len(partitions) >= PARTITIONS_WANTED:
                break
            expanded = dict(zip(prefixes, pool.map(self._expand, prefixes), strict=True))
            partitions = _grouped(
                [part for p in partitions for part in (expanded.get(p.name, [p]) if p.prefix else [p])]
            )
        return partitions

    def _expand(self, prefix: str) -> list[Partition]:
        """What a delimiter listing finds under ``prefix``, in key order; the prefix itself, not to be expanded
        again, when that listing is too long to hold."""
        found: list[Partition] = []
        for number, page in enumerate(self._pages(prefix, DELIMITER)):
            if number >= EXPAND_PAGES:
                return [Partition(prefix, prefix=True, expandable=False)]
            found += [Partition(item["Key"], (item,)) for item in self._current(page)]
            found += [Partition(common["Prefix"], prefix=True) for common in page.get("CommonPrefixes", [])]
        return sorted(found, key=lambda p: p.name)

    # -- listing --------------------------------------------------------------------------------------------------
    def _lister(self, partition: Partition) -> Callable[[], Iterator[list[Item]]]:
        return lambda: (self._current(page) for page in self._pages(partition.name, None))

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[Item]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        if PAGE_SIZE:
            args["PaginationConfig"] = {"PageSize": PAGE_SIZE}
        operation = "list_object_versions" if self.versioned else "list_objects_v2"
        yield from self.s3.get_paginator(operation).paginate(**args)

    def _current(self, page: Item) -> list[Item]:
        """The current objects of a page: every listed object, or each key's latest version."""
        if self.versioned:
            return [item for item in page.get("Versions", []) if item.get("IsLatest")]
        return list(page.get("Contents", []))


def _grouped(partitions: list[Partition]) -> list[Partition]:
    """Neighbouring partitions of listed keys as one (a prefix of many keys and few folders is not a thousand
    partitions)."""
    grouped: list[Partition] = []
    for partition in partitions:
        if grouped and not partition.prefix and not grouped[-1].prefix:
            grouped[-1] = Partition(grouped[-1].name, grouped[-1].items + partition.items)
        else:
            grouped.append(partition)
    return grouped


def _items(listed: _Pages | Partition) -> Iterator[Item]:
    if isinstance(listed, Partition):
        return iter(listed.items)
    return listed.drain()


class _Pages:
    """One partition's pages, read by a thread at most :data:`PAGES_AHEAD` ahead of the consumer."""

    _END = object()

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.pages: queue.Queue[object] = queue.Queue(maxsize=PAGES_AHEAD)

    @classmethod
    def start(
        cls, pool: ThreadPoolExecutor, stop: threading.Event, lister: Callable[[], Iterator[list[Item]]]
    ) -> _Pages:
        pages = cls(stop)
        pool.submit(pages._fill, lister)
        return pages

    def _fill(self, lister: Callable[[], Iterator[list[Item]]]) -> None:
        try:
            for page in lister():
                if not self._put(page):
                    return
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            self._put(exc)
            return
        self._put(self._END)

    def _put(self, value: object) -> bool:
        """Wait for room, unless the listing was stopped; whether the value was handed on."""
        while not self.stop.is_set():
            try:
                self.pages.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def drain(self) -> Iterator[Item]:
        while True:
            page = self.pages.get()
            if page is self._END:
                return
            if isinstance(page, BaseException):
                raise page
            assert isinstance(page, list)
            yield from page
