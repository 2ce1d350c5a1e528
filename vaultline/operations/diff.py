"""The diff of two recovery points: objects (or DynamoDB segment parts) added, removed and changed.

Both entry streams are in key order, so a diff is one merge-walk of the two manifests: memory holds one entry of
each, whatever their sizes. :func:`iter_diff` yields the changes in key order; :func:`diff_by_kind` regroups them
by kind (what the CLI prints and its ``--json`` document lists) by spooling two of the kinds to temporary files.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Literal

from vaultline.model import VaultlineModel
from vaultline.repository.manifest import ObjectEntry, RecoveryPoint, iter_entries
from vaultline.repository.vault import Vault

ChangeKind = Literal["added", "removed", "changed"]


class ChangedObject(VaultlineModel):
    key: str
    old_size: int
    new_size: int
    size_delta: int


class DiffObject(VaultlineModel):
    key: str
    size: int


class DiffTotals(VaultlineModel):
    """The figures of a diff from ``old`` to ``new``, complete once its changes have all been read."""

    old: str
    new: str
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    bytes_added: int = 0
    bytes_removed: int = 0
    size_delta: int = 0


Change = tuple[Literal["added", "removed"], DiffObject] | tuple[Literal["changed"], ChangedObject]


def _differs(a: ObjectEntry, b: ObjectEntry) -> bool:
    # Same chunks means same content; metadata-only changes (tags, headers) count as changes too.
    return a.model_dump(exclude={"last_modified", "etag", "version_id"}) != b.model_dump(
        exclude={"last_modified", "etag", "version_id"}
    )


def iter_diff(vault: Vault, old: RecoveryPoint, new: RecoveryPoint, totals: DiffTotals) -> Iterator[Change]:
    """The changes from ``old`` to ``new`` in key order, ``totals`` counted as they go."""
    left, right = iter_entries(vault, old), iter_entries(vault, new)
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key < b.key):
            assert a is not None
            totals.removed += 1
            totals.bytes_removed += a.size
            totals.size_delta -= a.size
            yield "removed", DiffObject(key=a.key, size=a.size)
            a = next(left, None)
        elif a is None or b.key < a.key:
            totals.added += 1
            totals.bytes_added += b.size
            totals.size_delta += b.size
            yield "added", DiffObject(key=b.key, size=b.size)
            b = next(right, None)
        else:
            if _differs(a, b):
                totals.changed += 1
                totals.size_delta += b.size - a.size
                yield "changed", ChangedObject(key=a.key, old_size=a.size, new_size=b.size, size_delta=b.size - a.size)
            else:
                totals.unchanged += 1
            a, b = next(left, None), next(right, None)


@dataclass
class DiffByKind:
    """A diff's changes as three key-ordered streams, read in this order: :meth:`added` walks both manifests and
    spools the removed and changed objects (disk, not memory, grows with the diff); :meth:`removed` and
    :meth:`changed` read them back. ``totals`` is complete once :meth:`added` is exhausted."""

    changes: Iterator[Change]
    totals: DiffTotals
    spools: dict[str, IO[bytes]]
    _walked: bool = field(default=False)

    def added(self) -> Iterator[DiffObject]:
        for kind, item in self.changes:
            if kind == "added":
                assert isinstance(item, DiffObject)
                yield item
            else:
                self.spools[kind].write(item.model_dump_json().encode() + b"\n")
        self._walked = True

    def removed(self) -> Iterator[DiffObject]:
        return (DiffObject.model_validate_json(line) for line in self._replay("removed"))

    def changed(self) -> Iterator[ChangedObject]:
        return (ChangedObject.model_validate_json(line) for line in self._replay("changed"))

    def _replay(self, kind: ChangeKind) -> Iterator[bytes]:
        if not self._walked:
            raise RuntimeError("a diff's added objects are read first: they walk the manifests")
        spool = self.spools[kind]
        spool.seek(0)
        yield from spool


@contextmanager
def diff_by_kind(vault: Vault, old: RecoveryPoint, new: RecoveryPoint) -> Iterator[DiffByKind]:
    """The diff from ``old`` to ``new`` grouped by kind; its spools are deleted when the context ends."""
    totals = DiffTotals(old=old.id, new=new.id)
    with tempfile.TemporaryFile(prefix="vaultline-diff-") as removed, tempfile.TemporaryFile() as changed:
        yield DiffByKind(iter_diff(vault, old, new, totals), totals, {"removed": removed, "changed": changed})
