"""Lambda handler: Mark one batch of recovery points or index objects into sorted runs (loops on its cursor)."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import prune_models, prune_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> Any:
    """Mark one batch of recovery points or index objects into sorted runs (loops on its cursor)."""
    return prune_steps.mark(
        open_deployed_vault(settings),
        prune_models.PruneMarkEvent.model_validate(event),
        remaining_ms=context.get_remaining_time_in_millis,
    )


handler = lambda_handler(step, with_context=True)
