"""Lambda handler: Write the replacement index objects, delete the replaced ones and the removed packs."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import prune_models, prune_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> Any:
    """Write the replacement index objects, delete the replaced ones and the removed packs, release the lock."""
    result = prune_steps.finish(
        open_deployed_vault(settings),
        prune_models.PruneFinishEvent.model_validate(event),
        remaining_ms=context.get_remaining_time_in_millis,
    )
    if result.result is not None:
        metrics.add_metric(name="PacksDeleted", unit=MetricUnit.Count, value=result.result.packs_deleted)
        metrics.add_metric(name="BytesReclaimed", unit=MetricUnit.Bytes, value=result.result.bytes_freed)
    return result


handler = lambda_handler(step, with_context=True)
