"""Prune inside the Maintenance state machine: Start, three Distributed Maps, Decide and a looping Finish, with
Abort releasing the lock on any failure after Start."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import Synth, resolve
from tests.infra.test_maintenance import _function_ref

TO_ABORT = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "PruneAbort"}]


@pytest.fixture(scope="module")
def states(synth: Synth) -> dict[str, Any]:
    _, machine = synth.only("AWS::StepFunctions::StateMachine", "Maintenance")
    return dict(json.loads(resolve(machine["Properties"]["DefinitionString"]))["States"])


def test_prune_runs_start_mark_plan_decide_sweep_finish_in_order(states: dict[str, Any]) -> None:
    chain = ["PruneStart", "PruneMark", "PrunePlan", "PruneDecide", "PruneSweep", "PruneFinish", "PruneFinishDone"]
    assert [states[a]["Next"] for a in chain[:-1]] == chain[1:]
    done = states["PruneFinishDone"]
    assert done["Choices"] == [{"Variable": "$.prune_finish.done", "BooleanEquals": True, "Next": "PruneResult"}]
    assert done["Default"] == "PruneFinish"  # Finish loops on its cursor
    assert states["PruneResult"] == {
        "Type": "Pass",
        "InputPath": "$.prune_finish.result",
        "ResultPath": "$.results.prune",
        "Next": "LockPlan",
    }


def test_a_failure_after_start_releases_the_lock_through_abort(synth: Synth, states: dict[str, Any]) -> None:
    for name in ("PruneMark", "PrunePlan", "PruneDecide", "PruneSweep", "PruneFinish"):
        assert states[name]["Catch"] == TO_ABORT, name
    assert states["PruneStart"]["Catch"][0]["Next"] == "MaintenanceFailed"  # Start undoes itself
    abort = states["PruneAbort"]
    assert abort["Resource"] == _function_ref(synth, "MaintenancePruneAbort")
    assert abort["ResultPath"] is None and abort["Next"] == "MaintenanceFailed"
    assert abort["Catch"][0]["Next"] == "MaintenanceFailed"
    assert states["PruneStart"]["Retry"][1]["ErrorEquals"] == ["VaultLocked"]


@pytest.mark.parametrize(
    ("state", "work_list", "worker"),
    [
        ("PruneMark", "$.prune_run.mark_work_list_key", "PruneMarkItem"),
        ("PrunePlan", "$.prune_run.plan_work_list_key", "PrunePlanPartition"),
        ("PruneSweep", "$.prune_decided.sweep_work_list_key", "PruneSweepItem"),
    ],
)
def test_each_map_reads_its_staged_work_list_and_hands_each_item_the_run(
    states: dict[str, Any], state: str, work_list: str, worker: str
) -> None:
    item_map = states[state]
    assert item_map["ItemReader"]["Parameters"]["Key.$"] == work_list
    assert item_map["ItemSelector"] == {"run_id.$": "$.prune_run.run_id", "item.$": "$$.Map.Item.Value"}
    assert item_map["ToleratedFailureCount"] == 0 and item_map["MaxConcurrencyPath"] == "$.prune_run.concurrency"
    assert item_map["ResultPath"] is None and "ResultWriter" in item_map
    assert item_map["ItemProcessor"]["StartAt"] == worker


@pytest.mark.parametrize("name", ["Mark", "Sweep"])
def test_mark_and_sweep_items_loop_on_their_cursor(states: dict[str, Any], name: str) -> None:
    inner = states[f"Prune{name}"]["ItemProcessor"]["States"]
    worker = inner[f"Prune{name}Item"]
    assert worker["ResultPath"] == "$.part" and worker["Next"] == f"Prune{name}Finished"
    assert inner[f"Prune{name}Finished"]["Default"] == f"Prune{name}Next"
    assert inner[f"Prune{name}Next"]["Parameters"] == {"run_id.$": "$.run_id", "item.$": "$.part.next"}
    assert inner[f"Prune{name}Next"]["Next"] == f"Prune{name}Item"
    assert inner[f"Prune{name}Done"] == {"Type": "Succeed", "OutputPath": "$.part"}
