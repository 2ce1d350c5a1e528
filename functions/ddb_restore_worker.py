"""Lambda handler: Write the items of one segment part to the target table."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import table_models
from vaultline.runs import table_steps as dynamodb_steps
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Write the items of one segment part to the target table."""
    result = dynamodb_steps.restore_worker(
        vault_from_environment(settings), table_models.TableRestoreWorkerEvent.model_validate(event)
    )
    metrics.add_metric(name="ItemsRestored", unit=MetricUnit.Count, value=result.items)
    return result


handler = lambda_handler(step)
