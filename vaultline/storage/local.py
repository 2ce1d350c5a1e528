"""A vault in a local directory, laid out exactly like the S3 one (so `aws s3 sync` copies either way)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vaultline.errors import ObjectMissing, VaultError
from vaultline.storage.base import Storage, StoredObject


class LocalStorage(Storage):
    """Keys map to files under ``root``; writes go through a temporary file and an atomic rename."""

    # A pack written to a local disk is stored long before the next one fills (tens of ms against a tenth of a
    # second): a second write in flight would only hold another pack in memory.
    put_concurrency = 1

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise VaultError(f"{self.url}: invalid vault key {key!r}")
        return self.root.joinpath(*parts)

    @staticmethod
    def _written_beside(path: Path, data: bytes) -> str:
        """Write ``data`` to a temporary file in ``path``'s directory (made if needed) and return its name."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._written_beside(path, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def create(self, key: str, data: bytes) -> bool:
        # Write a temporary file, then hard-link it to the name: link(2) fails if the name exists, and a reader
        # never sees a partial file (the O_EXCL of a whole object).
        path = self._path(key)
        tmp = self._written_beside(path, data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(f"{self.url}: {key} does not exist") from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        # One pread on a bare descriptor: a restore reads every blob so, and a buffered file object per read (its
        # buffer, its seek) cost more than the read itself out of the page cache.
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectMissing(f"{self.url}: {key} does not exist") from None
        try:
            return os.pread(fd, length, start)
        finally:
            os.close(fd)

    def get_tail(self, key: str, length: int) -> bytes:
        try:
            with self._path(key).open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - length))
                return handle.read()
        except FileNotFoundError:
            raise ObjectMissing(f"{self.url}: {key} does not exist") from None

    def list(self, prefix: str) -> Iterator[StoredObject]:
        # Walk only the directory the prefix names, then filter: prefixes here always end at a '/' or a name.
        directory, _, _ = prefix.rpartition("/")
        base = self.root.joinpath(*directory.split("/")) if directory else self.root
        if not base.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(".tmp-"):
                    continue
                full = Path(dirpath, name)
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield StoredObject(key=key, size=full.stat().st_size)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()
