"""Lambda handler: Resolve the recovery point and stage restore batches."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import restore_steps
from vaultline.runs.models import PrepareEvent
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Resolve the recovery point and stage restore batches."""
    result = restore_steps.prepare(
        vault_from_environment(settings), PrepareEvent.model_validate(event), settings.access_log_bucket
    )
    return result


handler = lambda_handler(step)
