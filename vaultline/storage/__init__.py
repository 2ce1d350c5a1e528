"""Vault storage backends: an S3 bucket (and prefix) or a local directory with the same layout."""

from vaultline.storage.base import LockPolicy, ObjectRetention, Storage, StoredObject
from vaultline.storage.local import LocalStorage
from vaultline.storage.s3 import S3Storage


def open_storage(url: str) -> Storage:
    """Open ``s3://bucket[/prefix]`` or a directory path."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        return S3Storage(bucket, prefix)
    return LocalStorage(url)


__all__ = ["LocalStorage", "LockPolicy", "ObjectRetention", "S3Storage", "Storage", "StoredObject", "open_storage"]
