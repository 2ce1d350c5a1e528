"""What a DynamoDB recovery point records beside its entries (``RecoveryPoint.extra["dynamodb"]``)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from vaultline.errors import SourceError, UsageError
from vaultline.model import VaultlineModel
from vaultline.repository.chunking import ChunkerParams
from vaultline.repository.manifest import RecoveryPoint
from vaultline.sources.dynamodb.scan import ITEM_STREAM_CHUNKER
from vaultline.sources.dynamodb.table import TableSnapshot

EXTRA_KEY = "dynamodb"


class TableBackupInfo(VaultlineModel):
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
    # Format version 2: "key-sorted-layers" (vaultline.sources.dynamodb.layers); absent in older recovery points.
    stream_layout: Literal["scan-order", "key-sorted-layers"] = "scan-order"
    # Layered recovery points: the parent's generation + 1 (0 for a first or re-based table): staggers re-bases.
    generation: int = Field(default=0, ge=0)


class ReadOptions(VaultlineModel):
    """How a table is read: the options a plan sets (the plans file spells them beside the table, see
    ``vaultline.plans.DynamoDBSourcePlan``), the CLI's flags and the state machine's ``source.options``."""

    mode: Literal["scan", "export"] = "scan"
    read_rate: float | None = Field(default=None, gt=0, description="read capacity units per second, all workers")
    read_share: float | None = Field(
        default=None, gt=0, le=1, description="share of the table's provisioned RCU per second, all workers"
    )
    consistent_read: bool = False

    @model_validator(mode="after")
    def _one_read_limit(self) -> ReadOptions:
        if self.read_rate is not None and self.read_share is not None:
            raise ValueError("give read_rate (RCU/s, any table) or read_share (of provisioned RCU), not both")
        return self

    def read_units_per_second(self, snapshot: TableSnapshot) -> float | None:
        """The scan's read limit for all workers together, in RCU/s; None for no limit.

        A share needs provisioned capacity to be a share of: on an on-demand table it is an error that says to
        give a rate instead, never a silent "no limit".
        """
        if self.read_share is None:
            return self.read_rate
        provisioned = snapshot.provisioned_read_units
        if provisioned <= 0:
            raise SourceError(
                f"table {snapshot.name} is on-demand: it has no provisioned read capacity to take a share of; "
                "give read_rate in RCU/s instead"
            )
        return self.read_share * provisioned


class BackupOptions(ReadOptions):
    """Every option of a DynamoDB backup: the read options and the tuning that only the CLI and the state machine's
    input expose (plans do not)."""

    segments: int | None = Field(default=None, ge=1, le=1_000_000)
    page_size: int | None = Field(default=None, ge=1, description="scan Limit per page (default: 1 MB pages)")
    incremental: bool = Field(default=True, description="export mode: incremental since the parent's export time")


def table_info(rp: RecoveryPoint) -> TableBackupInfo:
    """The DynamoDB part of a recovery point; a usage error for recovery points of other sources."""
    if rp.source_kind != "dynamodb" or EXTRA_KEY not in rp.extra:
        raise UsageError(f"recovery point {rp.id} is a backup of {rp.source}, not of a DynamoDB table")
    return TableBackupInfo.model_validate(rp.extra[EXTRA_KEY])
