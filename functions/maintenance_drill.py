"""Lambda handler: Restore a sampled recovery point into scratch space, compare it with its manifest, clean up."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import maintenance_models, maintenance_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any]) -> Any:
    """Restore a sampled recovery point into scratch space, compare it with its manifest, clean up."""
    result = maintenance_steps.drill(
        open_deployed_vault(settings),
        maintenance_models.MaintenanceInput.model_validate(event),
    )
    metrics.add_metric(name="DrillFailures", unit=MetricUnit.Count, value=0 if result.ok else 1)
    metrics.add_metric(name="DrillObjectsVerified", unit=MetricUnit.Count, value=result.verified)
    return result


handler = lambda_handler(step)
