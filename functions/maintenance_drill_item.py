"""Lambda handler: Restore one drill batch into scratch space and compare, returning a cursor when time runs low."""

from typing import Any

from observability import lambda_handler, settings

from vaultline.runs import drill_steps
from vaultline.runs.maintenance_models import DrillItemEvent, DrillItemResult
from vaultline.runs.staging import open_deployed_vault


def step(event: dict[str, Any], context: Any) -> DrillItemResult:
    """Restore one drill batch into scratch space and compare, returning a cursor when time runs low."""
    return drill_steps.item(
        open_deployed_vault(settings),
        DrillItemEvent.model_validate(event),
        remaining_ms=context.get_remaining_time_in_millis,
    )


handler = lambda_handler(step, with_context=True)
