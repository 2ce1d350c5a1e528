"""The Maintenance state machine's input model and the plans' keep rules as the engine's policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vaultline.errors import UsageError
from vaultline.operations.check import PackSubset
from vaultline.operations.retention import Duration
from vaultline.plans import KeepRules
from vaultline.runs.maintenance_models import MaintenanceInput
from vaultline.runs.maintenance_steps import retention_policy


def test_plan_rules_become_the_engine_policy_with_weeks_as_days() -> None:
    rules = KeepRules(keep_last=2, keep_within="1y2w3d4h").rules()
    policy = retention_policy(rules)
    assert policy is not None
    assert policy.keep_last == 2 and policy.keep_daily == 0
    assert policy.keep_within == Duration(years=1, days=17, hours=4)


def test_no_rules_means_nothing_to_apply_not_forget_everything() -> None:
    assert retention_policy(KeepRules().rules()) is None
    assert retention_policy({}) is None


def test_maintenance_input_defaults_and_ignores_results_of_earlier_steps() -> None:
    parsed = MaintenanceInput.model_validate({"policies": [], "results": {"forget": {"removed": []}}})
    assert parsed.prune is True and parsed.verify.parts == 7 and parsed.drill.enabled is False


@pytest.mark.parametrize("subset", ["2/7", "10%", "100%"])
def test_verify_subset_accepts_parts_and_percentages(subset: str) -> None:
    assert str(MaintenanceInput.model_validate({"verify": {"subset": subset}}).verify.subset) == subset


def test_verify_subset_refuses_anything_else() -> None:
    with pytest.raises(ValidationError, match=r"expected n/m .* or a percentage"):
        MaintenanceInput.model_validate({"verify": {"subset": "half"}})


@pytest.mark.parametrize("subset", ["3/2", "0/3", "0%", "101%"])
def test_verify_subset_refuses_what_check_refuses_when_the_input_is_read(subset: str) -> None:
    # One parser for the CLI, check and the Maintenance input: a spec the check cannot read fails validation,
    # before the step opens the vault.
    with pytest.raises(ValidationError, match=r"expected n/m"):
        MaintenanceInput.model_validate({"verify": {"subset": subset}})
    with pytest.raises(UsageError, match=r"--read-data-subset"):
        PackSubset.parse(subset)


def test_without_a_subset_verify_rotates_over_the_parts_by_run() -> None:
    verify = MaintenanceInput.model_validate({"verify": {"parts": 3}}).verify
    assert [str(verify.model_copy(update={"run": run}).pack_subset()) for run in range(4)] == [
        "1/3",
        "2/3",
        "3/3",
        "1/3",
    ]
    assert MaintenanceInput.model_validate({"verify": {"subset": "2/7", "run": 5}}).verify.pack_subset() == PackSubset(
        part=2, parts=7
    )
