"""The one shape of the Copy handlers: open the deployed vault (the source) and the request's target (through its
role, if it names one), run one copy step on the event. Each ``copy_*.py`` names its step and event model only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from observability import lambda_handler, settings
from pydantic import BaseModel

from vaultline.runs.copy_models import CopyTarget
from vaultline.runs.copy_steps import open_copy_target
from vaultline.runs.staging import open_deployed_vault

Event = TypeVar("Event", bound=BaseModel)
Result = TypeVar("Result", bound=BaseModel)


def copy_handler(
    operation: Callable[[Any, Any, Event], Result], event_model: type[Event]
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda handler of ``operation`` (a ``copy_steps`` function of the source vault, the target vault and
    the event): every event carries ``target``."""

    def step(event: dict[str, Any]) -> Result:
        target = open_copy_target(CopyTarget.model_validate(event["target"]))
        return operation(open_deployed_vault(settings), target, event_model.model_validate(event))

    step.__doc__ = operation.__doc__
    return lambda_handler(step)
