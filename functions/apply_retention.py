"""Lambda handler: After a commit, forget the source's recovery points the plan's keep rules do not keep."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import maintenance_steps


def step(event: dict[str, Any]) -> Any:
    """After a commit, forget the source's recovery points the plan's keep rules do not keep."""
    result = maintenance_steps.apply_retention(settings.require_vault_url(), event)
    metrics.add_metric(name="RecoveryPointsForgotten", unit=MetricUnit.Count, value=len(result.removed))
    return result


handler = lambda_handler(step)
