"""DynamoDB read limits in the plans file: one of a rate or a share, scan mode only, carried into the run's input."""

from __future__ import annotations

import pytest

from vaultline.plans import PlansFileError, parse_plans
from vaultline.runs.requests import plan_input

PLAN = """
version: 1
plans:
  - name: tables
    sources:
      - {{type: dynamodb, table: orders, {options}}}
    schedule: {{expression: "rate(1 day)"}}
"""


def test_a_read_share_reaches_the_state_machine_input() -> None:
    plans = parse_plans(PLAN.format(options="read_share: 0.25"))
    plan = plans.get("tables")
    assert plan_input(plan, plan.sources[0])["source"]["options"] == {
        "mode": "scan",
        "consistent_read": False,
        "read_share": 0.25,
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("read_share: 1.5", "sources[0].read_share: Input should be less than or equal to 1"),
        ("read_share: 0.5, read_rate: 10", "read_rate (RCU/s, any table) or read_share"),
        ("mode: export, read_share: 0.5", "apply to mode scan only"),
    ],
)
def test_bad_read_limits_name_the_plan_and_the_problem(options: str, message: str) -> None:
    with pytest.raises(PlansFileError) as raised:
        parse_plans(PLAN.format(options=options), where="plans.yaml")
    text = str(raised.value)
    assert text.startswith("plans.yaml: plan 'tables'") and message in text
