"""A local directory as a source: regular files as objects, relative POSIX paths as keys."""

from __future__ import annotations

import base64
import itertools
import mimetypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from vaultline.errors import SourceError
from vaultline.repository.chunking import Readable
from vaultline.repository.manifest import ObjectEntry
from vaultline.sources.base import KeyFilter, Source


def key_of(relative: str) -> tuple[str, str | None]:
    """(key, raw_key) of a relative path as ``os`` gives it: for a name that is not valid UTF-8 the key shows each
    undecodable byte as ``\\xNN`` and ``raw_key`` holds the exact bytes, base64 (docs/vault-format.md, 10.2)."""
    raw = os.fsencode(relative)
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), base64.b64encode(raw).decode("ascii")


def path_of(entry: ObjectEntry) -> str:
    """The relative path (``/``-separated, in ``os``'s surrogateescape form) that ``entry`` was read from."""
    return os.fsdecode(base64.b64decode(entry.raw_key)) if entry.raw_key else entry.key


@dataclass(frozen=True, slots=True)
class _Child:
    """A file or subdirectory met in the walk, with its key."""

    key: str
    raw_key: str | None
    directory: Path  # one object shared by all the children of a directory
    name: str
    is_dir: bool

    @property
    def order(self) -> str:
        """What it sorts by among its siblings: its key, and a directory's with the ``/`` its files' keys go on
        with."""
        return self.key + "/" if self.is_dir else self.key

    @property
    def path(self) -> Path:
        return self.directory / self.name


def _children(root: Path, directory: Path) -> list[_Child]:
    """The subdirectories and regular files of ``directory``, in reverse key order (the walk pops the next).

    Sorted as their keys and their files' keys compare: ``a-b`` (``-`` is below ``/``) comes before everything
    under ``a/``, and ``a0`` after it. Keys, not names: a name that is not UTF-8 sorts by its display form
    (``\\xNN``), as its key compares in the manifest.
    """
    try:
        with os.scandir(directory) as found:
            listed = [
                (entry.name, entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False))
                for entry in found
            ]
    except OSError as exc:
        raise SourceError(f"cannot read {exc.filename or directory}: {exc.strerror}") from None
    relative = directory.relative_to(root).as_posix()
    prefix = "" if relative == "." else relative + "/"
    children = []
    for name, is_dir, is_file in listed:
        if not (is_dir or is_file):
            continue  # a symbolic link, a socket, a FIFO, a device
        # Python decodes file names with surrogateescape: a name that is not UTF-8 holds lone surrogates.
        key, raw_key = key_of(prefix + name)
        children.append(_Child(key, raw_key, directory, name, is_dir))
    children.sort(key=lambda child: child.order, reverse=True)
    for before, after in itertools.pairwise(children):
        if before.order == after.order:
            raise SourceError(
                f"{before.path}: its name and {after.name!r} have the same key {before.key!r}; rename one"
            )
    return children


class LocalSource(Source):
    kind: Literal["s3", "local"] = "local"

    def __init__(self, root: str | Path, key_filter: KeyFilter | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise SourceError(f"source directory {root} does not exist or is not a directory")
        self.url = str(self.root)
        self.filter = key_filter or KeyFilter()

    def list(self) -> Iterator[ObjectEntry]:
        """Regular files under the root (symbolic links and special files are left out), in key order: the order
        of the parent's manifest, so that a backup merge-joins the two as streams. One directory's names are held
        (sorted) at a time per level of the walk, never the whole tree."""
        # A stack of the directories being walked: each level's remaining children, sorted, in reverse (pop()).
        stack = [_children(self.root, self.root)]
        while stack:
            if not stack[-1]:
                stack.pop()
                continue
            child = stack[-1].pop()
            if child.is_dir:
                stack.append(_children(self.root, child.path))
                continue
            if not self.filter(child.key):
                continue
            try:
                st = child.path.stat()
            except OSError as exc:
                raise SourceError(f"cannot read {child.path}: {exc.strerror}") from None
            yield ObjectEntry(
                key=child.key,
                raw_key=child.raw_key,
                size=st.st_size,
                # No ETag on a file system: mtime and size stand in for it in the unchanged-object test.
                etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
                last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
            )

    @contextmanager
    def open(self, listed: ObjectEntry) -> Iterator[tuple[Readable, ObjectEntry]]:
        path = self.root / path_of(listed)
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror}") from None
        with handle:
            entry = listed.model_copy()
            entry.content_type = mimetypes.guess_type(listed.key)[0]
            yield handle, entry
