"""A local directory as a source: regular files as objects, relative POSIX paths as keys."""

from __future__ import annotations

import base64
import mimetypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
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


class LocalSource(Source):
    kind: Literal["s3", "local"] = "local"

    def __init__(self, root: str | Path, key_filter: KeyFilter | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise SourceError(f"source directory {root} does not exist or is not a directory")
        self.url = str(self.root)
        self.filter = key_filter or KeyFilter()

    def list(self) -> Iterator[ObjectEntry]:
        for dirpath, dirnames, filenames in os.walk(self.root, onerror=self._walk_error):
            dirnames.sort()
            seen: dict[str, str] = {}
            for name in sorted(filenames):
                path = Path(dirpath, name)
                if not path.is_file() or path.is_symlink():
                    continue
                # Python decodes file names with surrogateescape: a name that is not UTF-8 holds lone surrogates.
                key, raw_key = key_of(path.relative_to(self.root).as_posix())
                if key in seen:
                    raise SourceError(f"{path}: its name and {seen[key]!r} have the same key {key!r}; rename one")
                seen[key] = name
                if not self.filter(key):
                    continue
                st = path.stat()
                yield ObjectEntry(
                    key=key,
                    raw_key=raw_key,
                    size=st.st_size,
                    # No ETag on a file system: mtime and size stand in for it in the unchanged-object test.
                    etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
                    last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
                )

    @staticmethod
    def _walk_error(exc: OSError) -> None:
        raise SourceError(f"cannot read {exc.filename}: {exc.strerror}")

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
