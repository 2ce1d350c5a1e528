"""Backup sources: S3 buckets and local directories (DynamoDB tables come with their own issue).

``S3Source`` is imported on first use (``open_source`` of an ``s3://`` URL, or its name imported from here): it
brings botocore and the S3 listing and inventory readers, which a directory backup never needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vaultline.errors import UsageError
from vaultline.sources.base import KeyFilter, Source
from vaultline.sources.local import LocalSource

if TYPE_CHECKING:
    from vaultline.sources.s3 import S3Source


def open_source(
    url: str, include: Sequence[str] = (), exclude: Sequence[str] = (), role_arn: str | None = None
) -> Source:
    """``s3://bucket[/prefix]`` (read through ``role_arn`` when given) or a directory path."""
    key_filter = KeyFilter(include, exclude)
    if url.startswith("s3://"):
        from vaultline.sources.s3 import S3Source  # the S3 modules only for an S3 source (see the docstring)

        return S3Source(url, key_filter, role_arn=role_arn)
    if role_arn:
        raise UsageError(f"{url}: --role-arn applies to s3:// and dynamodb:// sources, not to a directory")
    return LocalSource(url, key_filter)


def __getattr__(name: str) -> Any:
    # PEP 562: ``from vaultline.sources import S3Source`` loads the S3 source then, not with this package.
    if name == "S3Source":
        from vaultline.sources.s3 import S3Source

        return S3Source
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["KeyFilter", "LocalSource", "S3Source", "Source", "open_source"]
