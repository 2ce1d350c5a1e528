"""Lambda handler: Forget the recovery points each plan's keep rules do not keep."""

from aws_lambda_powertools.metrics import MetricUnit
from maintenance_handler import maintenance_handler
from observability import metrics

from vaultline.runs import maintenance_steps
from vaultline.runs.maintenance_models import ForgetResult


def record(result: ForgetResult) -> None:
    """The metrics of one forget run."""
    metrics.add_metric(name="RecoveryPointsForgotten", unit=MetricUnit.Count, value=result.removed_count)
    metrics.add_metric(name="RecoveryPointsHeld", unit=MetricUnit.Count, value=result.held_count)


handler = maintenance_handler(maintenance_steps.forget, record)
