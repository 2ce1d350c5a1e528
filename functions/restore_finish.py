"""Lambda handler: Check every batch reported and clean staging."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import restore_steps
from vaultline.runs.models import RestoreFinishEvent
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Check every batch reported and clean staging."""
    result = restore_steps.finish(vault_from_environment(settings), RestoreFinishEvent.model_validate(event))
    metrics.add_metric(name="ObjectsRestored", unit=MetricUnit.Count, value=result.objects)
    return result


handler = lambda_handler(step)
