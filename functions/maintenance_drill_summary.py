"""Lambda handler: Prove every drill item reported, add them up, delete the scratch copy."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import drill_steps
from vaultline.runs.maintenance_models import DrillResult, DrillSummaryEvent
from vaultline.runs.metrics import DRILL_COMPLETED
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any]) -> DrillResult:
    """Prove every drill item reported, add them up, delete the scratch copy."""
    result = drill_steps.summary(open_deployed_vault(settings), DrillSummaryEvent.model_validate(event))
    metrics.add_metric(name=DRILL_COMPLETED, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="DrillFailures", unit=MetricUnit.Count, value=0 if result.ok else 1)
    metrics.add_metric(name="DrillObjectsVerified", unit=MetricUnit.Count, value=result.verified)
    return result


handler = lambda_handler(step)
