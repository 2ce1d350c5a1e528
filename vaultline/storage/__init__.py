"""Vault storage backends: an S3 bucket (and prefix) or a local directory with the same layout.

``S3Storage`` is imported on first use (``open_storage`` of an ``s3://`` URL, or its name imported from here): the
S3 backend brings botocore, which a command on a local directory vault never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vaultline.storage.base import LockPolicy, ObjectRetention, Storage, StoredObject
from vaultline.storage.local import LocalStorage

if TYPE_CHECKING:
    from vaultline.storage.s3 import S3Storage


def open_storage(url: str) -> Storage:
    """Open ``s3://bucket[/prefix]`` or a directory path."""
    if url.startswith("s3://"):
        from vaultline.storage.s3 import S3Storage  # the S3 backend only for an S3 vault (see the docstring)

        bucket, _, prefix = url[len("s3://") :].partition("/")
        return S3Storage(bucket, prefix)
    return LocalStorage(url)


def __getattr__(name: str) -> Any:
    # PEP 562: ``from vaultline.storage import S3Storage`` loads the S3 backend then, not with this package.
    if name == "S3Storage":
        from vaultline.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["LocalStorage", "LockPolicy", "ObjectRetention", "S3Storage", "Storage", "StoredObject", "open_storage"]
