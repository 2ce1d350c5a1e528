"""Lambda handler: Merge one partition'\''s live and located runs into per-pack partials."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import prune_models, prune_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> Any:
    """Merge one partition'\''s live and located runs into per-pack partials."""
    return prune_steps.plan(open_deployed_vault(settings), prune_models.PrunePlanEvent.model_validate(event))


handler = lambda_handler(step, with_context=True)
