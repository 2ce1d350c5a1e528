"""Lambda handler: Forget the recovery points each plan's keep rules do not keep."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import maintenance_models, maintenance_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any]) -> Any:
    """Forget the recovery points each plan's keep rules do not keep."""
    result = maintenance_steps.forget(
        open_deployed_vault(settings),
        maintenance_models.MaintenanceInput.model_validate(event),
    )
    metrics.add_metric(name="RecoveryPointsForgotten", unit=MetricUnit.Count, value=result.removed_count)
    metrics.add_metric(name="RecoveryPointsHeld", unit=MetricUnit.Count, value=result.held_count)
    return result


handler = lambda_handler(step)
