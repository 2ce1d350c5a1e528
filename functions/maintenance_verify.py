"""Lambda handler: Check the vault's structure and read a subset of its packs."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import maintenance_models, maintenance_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any]) -> Any:
    """Check the vault's structure and read a subset of its packs."""
    result = maintenance_steps.verify(
        open_deployed_vault(settings),
        maintenance_models.MaintenanceInput.model_validate(event),
    )
    metrics.add_metric(name="VerifyErrors", unit=MetricUnit.Count, value=result.error_count)
    metrics.add_metric(name="PacksVerified", unit=MetricUnit.Count, value=result.packs_read)
    metrics.add_metric(name="BytesVerified", unit=MetricUnit.Bytes, value=result.bytes_read)
    return result


handler = lambda_handler(step)
