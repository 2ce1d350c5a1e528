"""Lambda handler: Extend the retention of one partition's referenced packs that lapse soon (loops on its cursor)."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import lock_models, lock_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> Any:
    """Extend the retention of one partition's referenced packs that lapse soon (loops on its cursor)."""
    return lock_steps.extend(
        open_deployed_vault(settings),
        lock_models.LockExtendEvent.model_validate(event),
        remaining_ms=context.get_remaining_time_in_millis,
    )


handler = lambda_handler(step, with_context=True)
