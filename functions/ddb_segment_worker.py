"""Lambda handler: Back up one part of one DynamoDB scan segment (or one export file) into packs."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import table_models
from vaultline.runs import table_steps as dynamodb_steps
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any], context: Any) -> Any:
    """Back up one part of one DynamoDB scan segment (or one export file) into packs."""
    # The worker stops reading while enough of this invocation is left to flush its packs, and returns a cursor.
    result = dynamodb_steps.segment_worker(
        vault_from_environment(settings),
        table_models.SegmentWorkerEvent.model_validate(event),
        remaining_ms=context.get_remaining_time_in_millis,
    )
    metrics.add_metric(name="ItemsRead", unit=MetricUnit.Count, value=result.items)
    metrics.add_metric(name="ReadCapacityUnits", unit=MetricUnit.Count, value=result.read_units)
    return result


handler = lambda_handler(step, with_context=True)
