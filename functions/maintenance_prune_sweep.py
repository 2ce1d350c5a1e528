"""Lambda handler: Repack one batch of packs and find what Object Lock holds of it (loops on its cursor)."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import prune_models, prune_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> Any:
    """Repack one batch of packs and find what Object Lock holds of it (loops on its cursor)."""
    result = prune_steps.sweep(
        open_deployed_vault(settings),
        prune_models.PruneSweepEvent.model_validate(event),
        remaining_ms=context.get_remaining_time_in_millis,
    )
    metrics.add_metric(name="PacksRepacked", unit=MetricUnit.Count, value=result.packs_repacked)
    return result


handler = lambda_handler(step, with_context=True)
