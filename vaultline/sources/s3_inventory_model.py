"""Which S3 Inventory report a source is listed from: the model a plan, the backup's request and the source share
(:mod:`vaultline.sources.s3_inventory` reads the report)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from vaultline.model import VaultlineModel


class InventoryReport(VaultlineModel):
    """Which inventory to read for a source: the destination (bucket and prefix) of an inventory configuration on
    the source bucket, the configuration's id, and how old its newest complete report may be."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    destination: str = Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
    configuration: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    # A daily report lands within 48 hours of the previous one; an older one would back up a stale listing.
    max_age_hours: int = Field(default=48, ge=1, le=24 * 31)

    def folder(self, source_bucket: str) -> tuple[str, str]:
        """The bucket and key prefix under which the reports of ``source_bucket`` are delivered."""
        bucket, _, prefix = self.destination[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        return bucket, f"{prefix + '/' if prefix else ''}{source_bucket}/{self.configuration}/"
