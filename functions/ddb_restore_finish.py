"""Lambda handler: Check every part reported and clean staging."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import table_models
from vaultline.runs import table_steps as dynamodb_steps
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Check every part reported and clean staging."""
    result = dynamodb_steps.restore_finish(
        vault_from_environment(settings), table_models.TableRestoreFinishEvent.model_validate(event)
    )
    return result


handler = lambda_handler(step)
