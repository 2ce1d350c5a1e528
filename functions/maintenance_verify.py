"""Lambda handler: Check the vault's structure and read a subset of its packs."""

from aws_lambda_powertools.metrics import MetricUnit
from maintenance_handler import maintenance_handler
from observability import metrics

from vaultline.runs import maintenance_steps
from vaultline.runs.maintenance_models import VerifyResult


def record(result: VerifyResult) -> None:
    """The metrics of one verify run."""
    metrics.add_metric(name="VerifyErrors", unit=MetricUnit.Count, value=result.error_count)
    metrics.add_metric(name="PacksVerified", unit=MetricUnit.Count, value=result.packs_read)
    metrics.add_metric(name="BytesVerified", unit=MetricUnit.Bytes, value=result.bytes_read)


handler = maintenance_handler(maintenance_steps.verify, record)
