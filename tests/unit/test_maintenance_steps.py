"""The Maintenance state machine's input model and the plans' keep rules as the engine's policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vaultline.operations.retention import Duration
from vaultline.plans import KeepRules
from vaultline.runs.maintenance_steps import MaintenanceInput, retention_policy


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
    assert MaintenanceInput.model_validate({"verify": {"subset": subset}}).verify.subset == subset


def test_verify_subset_refuses_anything_else() -> None:
    with pytest.raises(ValidationError, match="neither n/m nor a percentage"):
        MaintenanceInput.model_validate({"verify": {"subset": "half"}})
