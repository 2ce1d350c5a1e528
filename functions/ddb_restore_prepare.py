"""Lambda handler: Create or check the target table and stage one restore item per segment part."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import table_steps as dynamodb_steps
from vaultline.runs.models import PrepareEvent
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Create or check the target table and stage one restore item per segment part."""
    result = dynamodb_steps.restore_prepare(vault_from_environment(settings), PrepareEvent.model_validate(event))
    return result


handler = lambda_handler(step)
