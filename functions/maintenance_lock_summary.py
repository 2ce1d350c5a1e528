"""Lambda handler: Add up a lock extension, clean its staging."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import lock_models, lock_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any]) -> lock_models.LockExtensionReport:
    """Add up a lock extension (objects checked and extended), clean its staging."""
    report = lock_steps.summary(open_deployed_vault(settings), lock_models.LockRunEvent.model_validate(event))
    metrics.add_metric(name="LockObjectsChecked", unit=MetricUnit.Count, value=report.objects_checked)
    metrics.add_metric(name="LockObjectsExtended", unit=MetricUnit.Count, value=report.objects_extended)
    return report


handler = lambda_handler(step)
