"""Lambda handler: Apply the keep rules to a partition of the sources, delete the manifests they drop (loops)."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import forget_models, forget_steps
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> Any:
    """Apply the keep rules to a partition of the sources, delete what they drop (loops on its cursor)."""
    return forget_steps.decide(
        open_deployed_vault(settings),
        forget_models.ForgetDecideEvent.model_validate(event),
        remaining_ms=context.get_remaining_time_in_millis,
    )


handler = lambda_handler(step, with_context=True)
