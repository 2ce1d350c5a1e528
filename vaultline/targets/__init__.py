"""Restore targets: an S3 bucket (and prefix) with metadata and tags, or a local directory with safe paths."""

from vaultline.targets.base import Existing, Overwrite, Target
from vaultline.targets.directory import DirectoryTarget
from vaultline.targets.s3 import S3Target


def open_target(url: str) -> Target:
    """``s3://bucket[/prefix]`` or a directory path."""
    if url.startswith("s3://"):
        return S3Target(url)
    return DirectoryTarget(url)


__all__ = ["DirectoryTarget", "Existing", "Overwrite", "S3Target", "Target", "open_target"]
