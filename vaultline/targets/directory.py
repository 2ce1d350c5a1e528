"""A local directory as a restore target: safe paths, atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from vaultline.errors import TargetError
from vaultline.repository.manifest import ObjectEntry
from vaultline.sources.local import path_of
from vaultline.targets.base import Existing, KeyMapper, RangedWrite, Rejected, Target

NAME_MAX = 255  # bytes per path component on Linux, macOS and Windows file systems


class DirectoryTarget(Target):
    """Writes objects as files under ``root``. Keys that cannot be a safe relative path are reported, not
    written: ``..`` or ``.`` components, absolute keys, empty components, NUL, components over 255 bytes, and keys
    that would collide with another key (``a`` and ``a/b``, or two keys equal after Unicode normalization)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TargetError(f"cannot create target directory {root}: {exc.strerror}") from None

    @staticmethod
    def unsafe_reason(key: str) -> str | None:
        """Why ``key`` cannot be a relative path under the target, or None if it can."""
        if not key:
            return "empty key"
        if "\x00" in key:
            return "contains a NUL character"
        if key.startswith("/"):
            return "absolute path"
        parts = key.rstrip("/").split("/")
        if any(p == "" for p in parts):
            return "empty path component (//)"
        if any(p in (".", "..") for p in parts):
            return "'.' or '..' path component"
        if any(len(os.fsencode(p)) > NAME_MAX for p in parts):
            return f"a path component is longer than {NAME_MAX} bytes"
        return None

    def key_mapper(self, entries: Iterable[ObjectEntry]) -> KeyMapper:
        """Each entry's own key, unless it is unsafe (:meth:`unsafe_reason`), a folder marker (left out: directories
        appear with the files under them), or a file that collides on a case- or normalization-insensitive disk with
        a directory or with a file earlier in key order (that one is restored).

        The collisions are between keys far apart in key order, so ``entries`` is read once first, as a stream,
        for the folded paths of every directory and file: 8-byte digests, the files' dropped before the restore
        begins but for the few that collide (a ceiling of about 70 bytes per file while that pass runs).
        """
        directories: set[int] = set()
        files: set[int] = set()
        colliding: set[int] = set()
        parent = None
        for entry in entries:
            if self.unsafe_reason(path_of(entry)) or entry.key.endswith("/"):
                continue
            folded = _digest(entry.key)
            (colliding if folded in files else files).add(folded)
            directory = entry.key.rpartition("/")[0]
            if directory != parent:  # a key-sorted stream: a directory's files come together
                parent = directory
                while directory:
                    directories.add(_digest(directory))
                    directory = directory.rpartition("/")[0]
        del files
        first_of: dict[int, str] = {}

        def mapper(entry: ObjectEntry) -> str | Rejected | None:
            reason = self.unsafe_reason(path_of(entry))
            if reason:
                return Rejected(reason)
            if entry.key.endswith("/"):
                return None
            folded = _digest(entry.key)
            if folded in directories:
                return Rejected("collides with a directory of the same name")
            if folded in colliding:
                if folded in first_of:
                    return Rejected(f"collides with {first_of[folded]!r} on case- or normalization-insensitive disks")
                first_of[folded] = entry.key
            return entry.key

        return mapper

    def _path(self, entry: ObjectEntry, key: str) -> Path:
        # A file name that was not UTF-8 is restored to its exact bytes (raw_key), not to its display key.
        relative = path_of(entry) if entry.raw_key else key
        return Path(os.path.normpath(self.root.joinpath(*relative.split("/"))))

    def existing(self, entry: ObjectEntry, key: str) -> Existing | None:
        path = self._path(entry, key)
        return Existing(size=path.stat().st_size) if path.is_file() else None

    def open_existing(self, entry: ObjectEntry, key: str) -> BinaryIO | None:
        try:
            return self._path(entry, key).open("rb")
        except OSError as exc:
            raise TargetError(f"cannot read {self._path(entry, key)}: {exc.strerror}") from None

    def _checked_path(self, entry: ObjectEntry, key: str) -> Path:
        path = self._path(entry, key)
        # Belt and braces: the key was vetted by plan(), but never write outside the root whatever happens.
        if self.root not in path.parents:
            raise TargetError(f"{key}: refuses to write outside {self.root}")
        return path

    def write_ranges(self, entry: ObjectEntry, key: str, size: int) -> RangedWrite | None:
        """A temporary file beside the object's path, ``size`` bytes preallocated, written with pwrite and renamed
        to the path when whole (as :meth:`write` does)."""
        path = self._checked_path(entry, key)
        try:
            fd, tmp = _temporary(path.parent)
        except OSError as exc:
            raise TargetError(f"cannot write {path}: {exc.strerror}") from None
        ranged = _RangedFile(fd, Path(tmp), path, entry)
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            ranged.abort()
            raise TargetError(f"cannot write {path}: {exc.strerror}") from None
        return ranged

    def write(self, entry: ObjectEntry, key: str, chunks: Iterable[bytes]) -> None:
        path = self._checked_path(entry, key)
        try:
            fd, tmp = _temporary(path.parent)
            try:
                # Bare writes on the descriptor, stamped through it: a restore of many small files spent a tenth
                # of its time building a buffered file object per file, and more on a mkdir and a stat per file.
                try:
                    for chunk in chunks:
                        _write_all(fd, chunk)
                    _stamp(fd, entry)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TargetError(f"cannot write {path}: {exc.strerror}") from None


def _temporary(directory: Path) -> tuple[int, str]:
    """A new temporary file in ``directory``, which is created (with its parents) only when it is missing: one
    mkdir per directory of the restore, not one per file."""
    try:
        return tempfile.mkstemp(dir=directory, prefix=".vaultline-")
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(dir=directory, prefix=".vaultline-")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _stamp(file: Path | int, entry: ObjectEntry) -> None:
    """Set the file's modification time (by path or by open descriptor) to the object's."""
    if isinstance(entry.last_modified, datetime):
        stamp = entry.last_modified.timestamp()
        os.utime(file, (stamp, stamp))


class _RangedFile(RangedWrite):
    """A temporary file written at offsets (pwrite needs no shared file position: threads write side by side)."""

    def __init__(self, fd: int, tmp: Path, path: Path, entry: ObjectEntry) -> None:
        self.fd, self.tmp, self.path, self.entry = fd, tmp, path, entry

    def write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(self.fd, view, offset)
                view, offset = view[written:], offset + written
        except OSError as exc:
            raise TargetError(f"cannot write {self.path}: {exc.strerror}") from None

    def commit(self) -> None:
        try:
            os.close(self.fd)
            os.replace(self.tmp, self.path)
            _stamp(self.path, self.entry)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise TargetError(f"cannot write {self.path}: {exc.strerror}") from None

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.tmp.unlink(missing_ok=True)


def _digest(path: str) -> int:
    """8 bytes of hash of ``path`` as a case- and normalization-insensitive disk sees it."""
    folded = unicodedata.normalize("NFC", path).casefold().encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(folded, digest_size=8).digest(), "big")
