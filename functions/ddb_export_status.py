"""Lambda handler: Poll a DynamoDB export; once complete, stage its data files as the work list."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import table_models
from vaultline.runs import table_steps as dynamodb_steps
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Poll a DynamoDB export; once complete, stage its data files as the work list."""
    result = dynamodb_steps.export_status(
        vault_from_environment(settings), table_models.ExportStatusEvent.model_validate(event)
    )
    return result


handler = lambda_handler(step)
