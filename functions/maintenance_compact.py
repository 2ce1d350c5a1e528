"""Lambda handler: Compact the dedup index into a new sharded generation (nothing written when it is complete)."""

from aws_lambda_powertools.metrics import MetricUnit
from maintenance_handler import maintenance_handler
from observability import metrics

from vaultline.runs import maintenance_steps
from vaultline.runs.maintenance_models import CompactResult


def record(result: CompactResult) -> None:
    """The metrics of one compaction: shards written (0 when the current generation was complete) and bytes."""
    shards = 0 if result.up_to_date else result.shards
    metrics.add_metric(name="IndexShardsWritten", unit=MetricUnit.Count, value=shards)
    metrics.add_metric(name="IndexBytesWritten", unit=MetricUnit.Bytes, value=result.bytes_written)


handler = maintenance_handler(maintenance_steps.compact, record)
