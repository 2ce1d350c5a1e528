"""Lambda handler: Check every segment's parts, merge them and write the manifest last."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import table_models
from vaultline.runs import table_steps as dynamodb_steps
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Check every segment's parts, merge them and write the manifest last."""
    result = dynamodb_steps.commit(
        vault_from_environment(settings), table_models.TableCommitEvent.model_validate(event)
    )
    return result


handler = lambda_handler(step)
