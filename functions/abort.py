"""Lambda handler: Clean a failed backup or restore run's staging area."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import backup_steps
from vaultline.runs.models import AbortEvent
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Clean a failed backup or restore run's staging area."""
    result = backup_steps.abort(vault_from_environment(settings), AbortEvent.model_validate(event))
    return result


handler = lambda_handler(step)
