"""What a DynamoDB recovery point records beside its entries (``RecoveryPoint.extra["dynamodb"]``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from vaultline.chunking import ChunkerParams
from vaultline.dynamodb.scan import ITEM_STREAM_CHUNKER
from vaultline.dynamodb.table import TableSnapshot
from vaultline.errors import UsageError
from vaultline.manifest import RecoveryPoint

EXTRA_KEY = "dynamodb"


class TableBackupInfo(BaseModel):
    """The table description and how its items were read. Stored under ``extra.dynamodb`` of the manifest."""

    table: TableSnapshot
    mode: Literal["scan", "export"] = "scan"
    total_segments: int = Field(ge=1)
    items: int = 0
    read_capacity_units: float = 0.0
    consistent_read: bool = False
    export_arn: str | None = None
    export_type: Literal["FULL_EXPORT", "INCREMENTAL_EXPORT"] | None = None
    export_time: datetime | None = None
    item_chunker: ChunkerParams = ITEM_STREAM_CHUNKER


class BackupOptions(BaseModel):
    """Per-plan options of a DynamoDB backup."""

    mode: Literal["scan", "export"] = "scan"
    segments: int | None = Field(default=None, ge=1, le=1_000_000)
    read_rate: float | None = Field(default=None, gt=0, description="read capacity units per second, all workers")
    consistent_read: bool = False
    page_size: int | None = Field(default=None, ge=1, description="scan Limit per page (default: 1 MB pages)")
    incremental: bool = Field(default=True, description="export mode: incremental since the parent's export time")


def table_info(rp: RecoveryPoint) -> TableBackupInfo:
    """The DynamoDB part of a recovery point; a usage error for recovery points of other sources."""
    if rp.source_kind != "dynamodb" or EXTRA_KEY not in rp.extra:
        raise UsageError(f"recovery point {rp.id} is a backup of {rp.source}, not of a DynamoDB table")
    return TableBackupInfo.model_validate(rp.extra[EXTRA_KEY])
