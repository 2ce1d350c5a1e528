"""Lambda handler: Check every segment's parts, merge them and write the manifest last."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, publish_count, settings

from vaultline.runs import table_models
from vaultline.runs import table_steps as dynamodb_steps
from vaultline.runs.metrics import RECOVERY_POINT_CREATED, recovery_point_dimensions
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Check every segment's parts, merge them and write the manifest last."""
    result = dynamodb_steps.commit(
        vault_from_environment(settings), table_models.TableCommitEvent.model_validate(event)
    )
    metrics.add_metric(name="RecoveryPointsCommitted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="SourceBytes", unit=MetricUnit.Bytes, value=result.stats.bytes)
    if result.plan:
        # The good news a plan source's freshness alarm waits for (infra/freshness.py).
        dimensions = recovery_point_dimensions(settings.service_name, result.plan, result.source)
        publish_count(RECOVERY_POINT_CREATED, dimensions)
    return result


handler = lambda_handler(step)
