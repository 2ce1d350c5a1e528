"""Lambda handler: Release a failed prune'\''s lock and delete its staging."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import prune_models, prune_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> Any:
    """Release a failed prune'\''s lock and delete its staging."""
    return prune_steps.abort(open_deployed_vault(settings), prune_models.PruneRunEvent.model_validate(event))


handler = lambda_handler(step, with_context=True)
