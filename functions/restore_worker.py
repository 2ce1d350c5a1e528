"""Lambda handler: Restore one batch of objects to the target bucket."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import restore_steps
from vaultline.runs.models import RestoreWorkerEvent
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Restore one batch of objects to the target bucket."""
    result = restore_steps.work(vault_from_environment(settings), RestoreWorkerEvent.model_validate(event))
    return result


handler = lambda_handler(step)
