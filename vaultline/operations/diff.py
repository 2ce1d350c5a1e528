"""The diff of two recovery points: objects (or DynamoDB segment parts) added, removed and changed."""

from __future__ import annotations

from pydantic import BaseModel, Field

from vaultline.repository.manifest import ObjectEntry, RecoveryPoint, iter_entries
from vaultline.repository.vault import Vault


class ChangedObject(BaseModel):
    key: str
    old_size: int
    new_size: int
    size_delta: int


class DiffObject(BaseModel):
    key: str
    size: int


class RecoveryPointDiff(BaseModel):
    """Objects (or DynamoDB segment parts) added, removed and changed from ``old`` to ``new``."""

    old: str
    new: str
    added: list[DiffObject] = Field(default_factory=list)
    removed: list[DiffObject] = Field(default_factory=list)
    changed: list[ChangedObject] = Field(default_factory=list)
    unchanged: int = 0
    bytes_added: int = 0
    bytes_removed: int = 0
    size_delta: int = 0


def _differs(a: ObjectEntry, b: ObjectEntry) -> bool:
    # Same chunks means same content; metadata-only changes (tags, headers) count as changes too.
    return a.model_dump(exclude={"last_modified", "etag", "version_id"}) != b.model_dump(
        exclude={"last_modified", "etag", "version_id"}
    )


def diff_recovery_points(vault: Vault, old: RecoveryPoint, new: RecoveryPoint) -> RecoveryPointDiff:
    """Merge-walk both entry streams (both are sorted by key), so memory stays bounded by one entry each."""
    diff = RecoveryPointDiff(old=old.id, new=new.id)
    left, right = iter_entries(vault, old), iter_entries(vault, new)
    a, b = next(left, None), next(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key < b.key):
            assert a is not None
            diff.removed.append(DiffObject(key=a.key, size=a.size))
            diff.bytes_removed += a.size
            a = next(left, None)
        elif a is None or b.key < a.key:
            diff.added.append(DiffObject(key=b.key, size=b.size))
            diff.bytes_added += b.size
            b = next(right, None)
        else:
            if _differs(a, b):
                diff.changed.append(
                    ChangedObject(key=a.key, old_size=a.size, new_size=b.size, size_delta=b.size - a.size)
                )
            else:
                diff.unchanged += 1
            a, b = next(left, None), next(right, None)
    diff.size_delta = diff.bytes_added - diff.bytes_removed + sum(c.size_delta for c in diff.changed)
    return diff
