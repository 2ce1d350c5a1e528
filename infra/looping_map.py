"""The looping map item, one builder for every Distributed Map whose item may outlive one Lambda invocation: the
worker returns ``done: false`` and ``next`` (the item from its cursor on) when its time budget runs low, and a
Choice sends ``next`` back into it until it returns ``done: true``. So a work item of any size fits 15-minute
invocations. Used by the backup's DynamoDB segment workers, the verify and drill items, and the prune and lock
extension maps; docs/state-machines.md names each one's states.

::

    <worker> (result at $.part) -> <choice> -(part.done)-> <done> (Succeed, OutputPath $.part)
        ^                            \\-(otherwise)-> <again> (Pass: the carried fields + the next item) -+
        +-------------------------------------------------------------------------------------------------+
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct
from pydantic import BaseModel

from infra.paths import fields_of, path
from infra.tasks import StrictDistributedMap, WorkList, invoke, work_list_map
from infra.vault import Vault

PART = "$.part"
MAP_ITEM = "$$.Map.Item.Value"


@dataclass(frozen=True)
class LoopStates:
    """The construct ids of the loop's four states; each ASL state name is ``prefix`` + its id unless the worker's
    is given (``worker_state``), which keeps the names the docs and tests already use."""

    worker: str
    again: str
    done: str
    choice: str
    prefix: str = ""
    worker_state: str | None = None


def looping_item(
    scope: Construct,
    function: lambda_.IFunction,
    *,
    states: LoopStates,
    event: type[BaseModel],
    result: type[BaseModel],
    carry: tuple[str, ...],
    resume: Mapping[str, tuple[str, ...]],
) -> sfn.TaskStateBase:
    """The item processor's first state: ``function`` invoked until its ``result`` says done. The re-invocation's
    ``event`` keeps the ``carry`` fields of the item as they came in and sets each ``resume`` field to the given
    path under the result's ``next`` (an empty path: ``next`` itself)."""
    worker = invoke(
        scope,
        states.worker,
        function,
        state_name=states.worker_state or f"{states.prefix}{states.worker}",
        result_path=PART,
        idempotent=True,
    )
    again = sfn.Pass(
        scope,
        states.again,
        state_name=f"{states.prefix}{states.again}",
        parameters=fields_of(
            event,
            **{field: sfn.JsonPath.string_at(path(event, field)) for field in carry},
            **{field: sfn.JsonPath.object_at(path(result, "next", *under, at=PART)) for field, under in resume.items()},
        ),
    )
    done = sfn.Succeed(scope, states.done, state_name=f"{states.prefix}{states.done}", output_path=PART)
    worker.next(
        sfn.Choice(scope, states.choice, state_name=f"{states.prefix}{states.choice}")
        .when(sfn.Condition.boolean_equals(path(result, "done", at=PART), True), done)
        .otherwise(again)
    )
    again.next(worker)
    return worker


def run_map(
    scope: Construct,
    name: str,
    *,
    state_name: str,
    vault: Vault,
    key: str,
    run: type[BaseModel],
    at: str,
    processor: sfn.IChainable,
) -> StrictDistributedMap:
    """A Distributed Map over a work list a run staged (its ``run`` result kept at ``at`` has ``run_id`` and
    ``concurrency``), every item carrying the run id; no item may fail, and the map's output is discarded."""
    work = WorkList(
        key=key,
        concurrency=path(run, "concurrency", at=at),
        item_selector={"run_id": path(run, "run_id", at=at), "item": MAP_ITEM},
    )
    return work_list_map(
        scope,
        name,
        state_name=state_name,
        vault=vault,
        work=work,
        processor=processor,
        result_path=sfn.JsonPath.DISCARD,
    )


class RunMaps:
    """The Distributed Maps of one staged run inside a chain (forget, prune, lock extension): ``<prefix><name>``
    maps over work lists the run staged (:func:`run_map`; the run's step result, a ``run`` model kept at ``at``,
    has ``run_id`` and ``concurrency``), and their items that loop on a cursor, states named ``<prefix><name>...``."""

    def __init__(self, scope: Construct, *, prefix: str, vault: Vault, run: type[BaseModel], at: str) -> None:
        self.scope, self.prefix, self.vault, self.run, self.at = scope, prefix, vault, run, at

    def map(self, name: str, *, key: str, processor: sfn.IChainable) -> StrictDistributedMap:
        """``<prefix><name>``: a map over the work list at ``key`` (a state path)."""
        return run_map(
            self.scope,
            name,
            state_name=f"{self.prefix}{name}",
            vault=self.vault,
            key=key,
            run=self.run,
            at=self.at,
            processor=processor,
        )

    def looping(
        self, name: str, function: lambda_.IFunction, event: type[BaseModel], result: type[BaseModel]
    ) -> sfn.TaskStateBase:
        """A map item that invokes ``function`` until done, its ``next`` item handed back in: ``<prefix><name>Item``,
        ``...Finished`` (the choice), ``...Next`` and ``...Done``."""
        states = LoopStates(f"{name}Item", f"{name}Next", f"{name}Done", f"{name}Finished", prefix=self.prefix)
        return looping_item(
            self.scope, function, states=states, event=event, result=result, carry=("run_id",), resume={"item": ()}
        )


__all__ = ["PART", "LoopStates", "RunMaps", "looping_item", "run_map"]
