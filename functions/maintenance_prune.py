"""Lambda handler: Delete unreferenced data and repack mostly-empty packs (VaultLocked while a backup runs)."""

from aws_lambda_powertools.metrics import MetricUnit
from maintenance_handler import maintenance_handler
from observability import metrics

from vaultline.runs import maintenance_steps
from vaultline.runs.maintenance_models import PruneResult


def record(result: PruneResult) -> None:
    """The metrics of one prune run."""
    metrics.add_metric(name="PacksDeleted", unit=MetricUnit.Count, value=result.packs_deleted)
    metrics.add_metric(name="PacksRepacked", unit=MetricUnit.Count, value=result.packs_repacked)
    metrics.add_metric(name="BytesReclaimed", unit=MetricUnit.Bytes, value=result.bytes_freed)


handler = maintenance_handler(maintenance_steps.prune, record)
