"""Restore targets: an S3 bucket (and prefix) with metadata and tags, or a local directory with safe paths.

``S3Target`` is imported on first use (``open_target`` of an ``s3://`` URL, or its name imported from here): it
brings botocore and the S3 source's modules, which a restore into a directory never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vaultline.targets.base import Existing, Overwrite, Target
from vaultline.targets.directory import DirectoryTarget

if TYPE_CHECKING:
    from vaultline.targets.s3 import S3Target


def open_target(url: str) -> Target:
    """``s3://bucket[/prefix]`` or a directory path."""
    if url.startswith("s3://"):
        from vaultline.targets.s3 import S3Target  # the S3 modules only for an S3 target (see the docstring)

        return S3Target(url)
    return DirectoryTarget(url)


def __getattr__(name: str) -> Any:
    # PEP 562: ``from vaultline.targets import S3Target`` loads the S3 target then, not with this package.
    if name == "S3Target":
        from vaultline.targets.s3 import S3Target

        return S3Target
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DirectoryTarget", "Existing", "Overwrite", "S3Target", "Target", "open_target"]
