"""Lambda handler: Open a recovery point: list the source and stage the work list."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import backup_steps
from vaultline.runs.models import PrepareEvent
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Open a recovery point: list the source and stage the work list."""
    result = backup_steps.prepare(vault_from_environment(settings), PrepareEvent.model_validate(event))
    return result


handler = lambda_handler(step)
