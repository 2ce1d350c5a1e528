"""Backup sources: S3 buckets and local directories (DynamoDB tables come with their own issue)."""

from collections.abc import Sequence

from vaultline.errors import UsageError
from vaultline.sources.base import KeyFilter, Source
from vaultline.sources.local import LocalSource
from vaultline.sources.s3 import S3Source


def open_source(
    url: str, include: Sequence[str] = (), exclude: Sequence[str] = (), role_arn: str | None = None
) -> Source:
    """``s3://bucket[/prefix]`` (read through ``role_arn`` when given) or a directory path."""
    key_filter = KeyFilter(include, exclude)
    if url.startswith("s3://"):
        return S3Source(url, key_filter, role_arn=role_arn)
    if role_arn:
        raise UsageError(f"{url}: --role-arn applies to s3:// and dynamodb:// sources, not to a directory")
    return LocalSource(url, key_filter)


__all__ = ["KeyFilter", "LocalSource", "S3Source", "Source", "open_source"]
