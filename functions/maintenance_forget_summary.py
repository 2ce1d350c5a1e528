"""Lambda handler: Add up a forget, clean its staging."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import forget_models, forget_steps
from vaultline.runs.maintenance_models import ForgetResult
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any]) -> ForgetResult:
    """Add up a forget (recovery points removed and held), clean its staging."""
    result = forget_steps.summary(open_deployed_vault(settings), forget_models.ForgetRunEvent.model_validate(event))
    metrics.add_metric(name="RecoveryPointsForgotten", unit=MetricUnit.Count, value=result.removed_count)
    metrics.add_metric(name="RecoveryPointsHeld", unit=MetricUnit.Count, value=result.held_count)
    return result


handler = lambda_handler(step)
