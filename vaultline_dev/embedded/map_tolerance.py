"""Distributed Map failure thresholds, which moto 5.2 reads and never applies.

moto's Distributed Map counts the items whose child execution failed or timed out, then ends the map run
SUCCEEDED whatever the count, with ``null`` for each failed item's result. AWS fails the map run once more items
fail than ``ToleratedFailureCount`` allows or a larger share than ``ToleratedFailurePercentage`` (either one, when
both are set; an unset threshold is 0): the Map state fails with ``States.ExceedToleratedFailureThreshold``, which
its Catch then routes. Our maps tolerate no failure, so on moto a failed worker went unnoticed until Commit found
its results missing; on AWS the map itself fails first.

Here the thresholds are applied when the items have run (AWS stops the run as soon as one is exceeded, so on AWS
fewer items may run after the first failures; nothing of ours depends on how many). moto cannot tell an unset
threshold from one set to 0, so a threshold of 0 applies only when the other is 0 too: a map setting
``ToleratedFailurePercentage: 10`` alone tolerates 10% here, as on AWS, and one setting both a count of 0 and a
percentage of 10 (which AWS fails at the first failure) tolerates 10% here too; our stack sets neither that way.
"""

from __future__ import annotations

from typing import Any

from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import StatesErrorNameType
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.distributed_iteration_component import (
    DistributedIterationComponent,
)
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

EXCEEDED = StatesErrorNameType.StatesExceedToleratedFailureThreshold
# AWS's words for it in the MapRunFailed event and the Map state's failure.
CAUSE = "The specified tolerated failure threshold was exceeded"

_original_map_run = DistributedIterationComponent._map_run


def exceeds(failed: int, total: int, count: int, percentage: float) -> bool:
    """Whether ``failed`` of ``total`` items exceed the thresholds (see the module's note on zeros)."""
    if failed == 0:
        return False
    over_count = failed > count
    over_percentage = failed * 100.0 > percentage * total
    if count == 0 and percentage > 0:
        return over_percentage
    if percentage == 0 and count > 0:
        return over_count
    return over_count or over_percentage


def _map_run(self: DistributedIterationComponent, env: Any, eval_input: Any) -> None:
    _original_map_run(self, env, eval_input)
    counter = eval_input.map_run_record.item_counter
    failed = counter.failed.get() + counter.timed_out.get()
    total = counter.total.get()
    if exceeds(failed, total, eval_input.tolerated_failure_count, eval_input.tolerated_failure_percentage):
        env.stack.pop()  # the run's results: a failed map run has none
        raise FailureEventException(
            failure_event=FailureEvent(
                env=env,
                error_name=StatesErrorName(typ=EXCEEDED),
                event_type=HistoryEventType.MapRunFailed,
                # moto's EventDetails TypedDict is total; AWS's events carry one detail each.
                event_details=EventDetails(  # type: ignore[typeddict-item]
                    mapRunFailedEventDetails=MapRunFailedEventDetails(error=EXCEEDED.to_name(), cause=CAUSE)
                ),
            )
        )


def install() -> None:
    """Apply the thresholds (idempotent)."""
    DistributedIterationComponent._map_run = _map_run  # type: ignore[method-assign]


def uninstall() -> None:
    """Give moto its own map runs back."""
    DistributedIterationComponent._map_run = _original_map_run  # type: ignore[method-assign]
