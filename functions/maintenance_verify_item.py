"""Lambda handler: Verify one batch of packs or of recovery points, returning a cursor when time runs low."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import verify_steps
from vaultline.runs.maintenance_models import VerifyItemEvent, VerifyItemResult
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> VerifyItemResult:
    """Verify one batch of packs or of recovery points, returning a cursor when time runs low."""
    result = verify_steps.item(
        open_deployed_vault(settings),
        VerifyItemEvent.model_validate(event),
        remaining_ms=context.get_remaining_time_in_millis,
    )
    metrics.add_metric(name="VerifyItemLoops", unit=MetricUnit.Count, value=0 if result.done else 1)
    return result


handler = lambda_handler(step, with_context=True)
