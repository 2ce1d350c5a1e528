"""Lambda handler: Delete unreferenced data and repack mostly-empty packs (VaultLocked while a backup runs)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import maintenance_models, maintenance_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any]) -> Any:
    """Delete unreferenced data and repack mostly-empty packs (VaultLocked while a backup runs)."""
    result = maintenance_steps.prune(
        open_deployed_vault(settings),
        maintenance_models.MaintenanceInput.model_validate(event),
    )
    metrics.add_metric(name="PacksDeleted", unit=MetricUnit.Count, value=result.packs_deleted)
    metrics.add_metric(name="PacksRepacked", unit=MetricUnit.Count, value=result.packs_repacked)
    metrics.add_metric(name="BytesReclaimed", unit=MetricUnit.Bytes, value=result.bytes_freed)
    return result


handler = lambda_handler(step)
