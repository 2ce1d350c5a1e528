"""What a restore target is: where restored objects go, and what it says about what is already there."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO, Literal

from vaultline.repository.manifest import ObjectEntry

Overwrite = Literal["never", "if-changed", "always"]
"""What a restore does with an object that already exists at the target (docs/cli.md, "restore")."""


@dataclass(frozen=True)
class Existing:
    """What is already at a target key: its size, and its ETag where the target has one."""

    size: int
    etag: str | None = None


@dataclass(frozen=True)
class Rejected:
    """An entry the target cannot hold, and why (a restore reports its key, and writes the rest)."""

    reason: str


class RangedWrite(ABC):
    """One object being written at known offsets, in any order and from several threads at once (a large object
    restored in parallel ranges); :meth:`commit` makes it visible whole, :meth:`abort` leaves nothing."""

    @abstractmethod
    def write_at(self, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset``; safe to call from several threads for ranges that do not overlap."""

    @abstractmethod
    def commit(self) -> None:
        """Make the object visible at its key, whole (after every range is written)."""

    @abstractmethod
    def abort(self) -> None:
        """Drop what was written: nothing appears at the key."""


KeyMapper = Callable[[ObjectEntry], "str | Rejected | None"]
"""A target's key for each entry: its key, Rejected, or None for an entry it leaves out silently (a folder
marker in a directory)."""


class Target(ABC):
    """Where restored objects go."""

    url: str

    @abstractmethod
    def existing(self, entry: ObjectEntry, key: str) -> Existing | None:
        """What is at ``key`` now, or None when nothing is."""

    def open_existing(self, entry: ObjectEntry, key: str) -> BinaryIO | None:
        """The bytes at ``key`` when reading them is cheap (a local file); None where it is not (S3)."""
        return None

    @abstractmethod
    def write(self, entry: ObjectEntry, key: str, chunks: Iterable[bytes]) -> None:
        """Write one object from its chunks in order."""

    def write_ranges(self, entry: ObjectEntry, key: str, size: int) -> RangedWrite | None:
        """Start writing the ``size`` bytes of one object at offsets, in parallel ranges, where this target can
        (a file written with pwrite); None where it cannot, and the object is written in order by :meth:`write`."""
        return None

    def key_mapper(self, entries: Iterable[ObjectEntry]) -> KeyMapper:
        """How this target names each of ``entries`` (the whole selection, re-iterable: a target whose rule
        depends on the other keys reads it once more, as a stream, before mapping any). Here: each its own key."""
        return lambda entry: entry.key

    def plan(self, entries: list[ObjectEntry]) -> tuple[list[tuple[ObjectEntry, str]], list[tuple[str, str]]]:
        """Map entries to target keys; return (mapped, unmappable (key, reason))."""
        mapper = self.key_mapper(entries)
        mapped: list[tuple[ObjectEntry, str]] = []
        rejected: list[tuple[str, str]] = []
        for entry in entries:
            key = mapper(entry)
            if isinstance(key, Rejected):
                rejected.append((entry.key, key.reason))
            elif key is not None:
                mapped.append((entry, key))
        return mapped, rejected
