"""What a restore target is: where restored objects go, and what it says about what is already there."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
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

    def plan(self, entries: list[ObjectEntry]) -> tuple[list[tuple[ObjectEntry, str]], list[tuple[str, str]]]:
        """Map entries to target keys; return (mapped, unmappable (key, reason))."""
        return [(e, e.key) for e in entries], []
