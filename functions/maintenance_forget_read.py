"""Lambda handler: Read a batch of recovery point headers, stage what the keep rules read of them (loops)."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import forget_models, forget_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> Any:
    """Read a batch of recovery point headers, stage their sources' points (loops on its cursor)."""
    return forget_steps.read(
        open_deployed_vault(settings),
        forget_models.ForgetReadEvent.model_validate(event),
        remaining_ms=context.get_remaining_time_in_millis,
    )


handler = lambda_handler(step, with_context=True)
