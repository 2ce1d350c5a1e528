"""Lambda handler: Classify every pack, find the index objects to replace, stage the sweep."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import prune_models, prune_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> Any:
    """Classify every pack, find the index objects to replace, stage the sweep."""
    return prune_steps.decide(open_deployed_vault(settings), prune_models.PruneRunEvent.model_validate(event))


handler = lambda_handler(step, with_context=True)
