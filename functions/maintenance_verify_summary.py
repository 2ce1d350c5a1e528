"""Lambda handler: Prove every verify item reported, add up their findings, clear the run."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import verify_steps
from vaultline.runs.maintenance_models import VerifyResult, VerifySummaryEvent
from vaultline.runs.metrics import VERIFY_COMPLETED
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any]) -> VerifyResult:
    """Prove every verify item reported, add up their findings, clear the run."""
    result = verify_steps.summary(open_deployed_vault(settings), VerifySummaryEvent.model_validate(event))
    # Good news whatever it found: its absence past the maintenance schedule's period is what alarms.
    metrics.add_metric(name=VERIFY_COMPLETED, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="VerifyErrors", unit=MetricUnit.Count, value=result.error_count)
    metrics.add_metric(name="PacksVerified", unit=MetricUnit.Count, value=result.packs_read)
    metrics.add_metric(name="BytesVerified", unit=MetricUnit.Bytes, value=result.bytes_read)
    return result


handler = lambda_handler(step)
