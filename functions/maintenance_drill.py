"""Lambda handler: Restore a sampled recovery point into scratch space, compare it with its manifest, clean up."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import maintenance_steps


def step(event: dict[str, Any]) -> Any:
    """Restore a sampled recovery point into scratch space, compare it with its manifest, clean up."""
    result = maintenance_steps.drill(settings.require_vault_url(), event)
    metrics.add_metric(name="DrillFailures", unit=MetricUnit.Count, value=0 if result.ok else 1)
    metrics.add_metric(name="DrillObjectsVerified", unit=MetricUnit.Count, value=result.verified)
    return result


handler = lambda_handler(step)
