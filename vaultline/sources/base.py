"""What a backup reads from: a listing of objects and a way to open each one."""

from __future__ import annotations

import fnmatch
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Literal

from vaultline.errors import SourceError
from vaultline.repository.chunking import Readable
from vaultline.repository.manifest import ObjectEntry


class ObjectVanished(SourceError):
    """A listed object is gone when read (deleted, or its version removed, after the listing)."""


class ObjectArchived(SourceError):
    """A listed object sits in an archive tier (Glacier Flexible Retrieval, Deep Archive, Intelligent-Tiering's
    archive tiers) and must be restored from it before it can be read."""

    def __init__(self, key: str, storage_class: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.storage_class = storage_class


class KeyFilter:
    """Include/exclude globs over keys (fnmatch: ``*`` also matches ``/``). Excludes win over includes."""

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.include = list(include)
        self.exclude = list(exclude)

    def __call__(self, key: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(key, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(key, p) for p in self.exclude)


class Source(ABC):
    """A bucket prefix or a directory, listed in key order."""

    url: str
    kind: Literal["s3", "local"]
    has_tags: bool = False

    @abstractmethod
    def list(self) -> Iterator[ObjectEntry]:
        """Entries with listing fields only (key, size, etag, version, last-modified, storage class)."""

    @abstractmethod
    def open(self, listed: ObjectEntry) -> AbstractContextManager[tuple[Readable, ObjectEntry]]:
        """Open one object: its byte stream and its entry completed with metadata and tags."""

    def read_tags(self, entry: ObjectEntry) -> dict[str, str]:
        """The object's tags as they are now (raises ObjectVanished when it is gone). Only sources with tags."""
        raise NotImplementedError(f"{self.url}: this source has no tags")
