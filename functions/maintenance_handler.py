"""The one shape of the maintenance handlers: open the deployed vault, run one maintenance step on the maintenance
input, publish that step's own metrics. Each ``maintenance_*.py`` names its step and its metrics only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from observability import lambda_handler, settings
from pydantic import BaseModel

from vaultline.runs.maintenance_models import MaintenanceInput
from vaultline.runs.staging import open_deployed_vault

Result = TypeVar("Result", bound=BaseModel)


def maintenance_handler(
    operation: Callable[[Any, MaintenanceInput], Result], record: Callable[[Result], None]
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda handler of ``operation`` (a ``maintenance_steps`` function): ``record`` publishes its result's
    metrics before the result is returned."""

    def step(event: dict[str, Any]) -> Result:
        result = operation(open_deployed_vault(settings), MaintenanceInput.model_validate(event))
        record(result)
        return result

    step.__doc__ = operation.__doc__
    return lambda_handler(step)
