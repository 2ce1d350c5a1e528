"""Lambda handler: After a commit, forget the source's recovery points the plan's keep rules do not keep."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import maintenance_models, maintenance_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any]) -> Any:
    """After a commit, forget the source's recovery points the plan's keep rules do not keep."""
    result = maintenance_steps.apply_retention(
        open_deployed_vault(settings),
        maintenance_models.RetentionEvent.model_validate(event),
    )
    metrics.add_metric(name="RecoveryPointsForgotten", unit=MetricUnit.Count, value=len(result.removed))
    return result


handler = lambda_handler(step)
