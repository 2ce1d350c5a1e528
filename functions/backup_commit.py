"""Lambda handler: Merge batch results and write the manifest last."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, publish_count, settings

from vaultline.runs import backup_steps
from vaultline.runs.metrics import RECOVERY_POINT_CREATED, recovery_point_dimensions
from vaultline.runs.models import CommitEvent
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Merge batch results and write the manifest last."""
    result = backup_steps.commit(vault_from_environment(settings), CommitEvent.model_validate(event))
    metrics.add_metric(name="RecoveryPointsCommitted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="SourceBytes", unit=MetricUnit.Bytes, value=result.stats.bytes)
    if result.plan:
        # The good news a plan source's freshness alarm waits for (infra/freshness.py).
        dimensions = recovery_point_dimensions(settings.service_name, result.plan, result.source)
        publish_count(RECOVERY_POINT_CREATED, dimensions)
    return result


handler = lambda_handler(step)
