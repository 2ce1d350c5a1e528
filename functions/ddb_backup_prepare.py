"""Lambda handler: Describe a DynamoDB table and stage its scan segments (or start its export)."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import table_steps as dynamodb_steps
from vaultline.runs.models import PrepareEvent
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Describe a DynamoDB table and stage its scan segments (or start its export)."""
    result = dynamodb_steps.prepare(vault_from_environment(settings), PrepareEvent.model_validate(event))
    return result


handler = lambda_handler(step)
