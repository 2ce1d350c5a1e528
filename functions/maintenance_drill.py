"""Lambda handler: Restore a sampled recovery point into scratch space, compare it with its manifest, clean up."""

from aws_lambda_powertools.metrics import MetricUnit
from maintenance_handler import maintenance_handler
from observability import metrics

from vaultline.runs import maintenance_steps
from vaultline.runs.maintenance_models import DrillResult


def record(result: DrillResult) -> None:
    """The metrics of one drill run."""
    metrics.add_metric(name="DrillFailures", unit=MetricUnit.Count, value=0 if result.ok else 1)
    metrics.add_metric(name="DrillObjectsVerified", unit=MetricUnit.Count, value=result.verified)


handler = maintenance_handler(maintenance_steps.drill, record)
