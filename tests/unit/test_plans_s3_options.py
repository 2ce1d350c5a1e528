"""The S3 plan options (archived_objects, tags_refresh): validated in the plans file, carried into the backup
state machine's input only when set, and read back by the backup request model."""

from __future__ import annotations

import pytest

from vaultline.plans import PlansFileError, parse_plans
from vaultline.runs.models import BackupRequest
from vaultline.runs.requests import plan_input

PLAN = """
plans:
  - name: p
    sources: [{type: s3, bucket: some-bucket}, {type: dynamodb, table: some-table}]
    schedule: {expression: rate(1 day)}
    OPTIONS
"""


def test_s3_plan_options_reach_the_backup_input_only_when_set() -> None:
    plain = parse_plans(PLAN.replace("OPTIONS", "")).plans[0]
    assert "archived_objects" not in plan_input(plain, plain.sources[0])
    assert BackupRequest.model_validate(plan_input(plain, plain.sources[0])).archived_objects == "skip"

    plan = parse_plans(PLAN.replace("OPTIONS", "archived_objects: fail\n    tags_refresh: 7")).plans[0]
    sent = plan_input(plan, plan.sources[0])

    assert (sent["archived_objects"], sent["tags_refresh"]) == ("fail", 7)
    request = BackupRequest.model_validate(sent)
    assert (request.archived_objects, request.tags_refresh) == ("fail", 7)
    assert "tags_refresh" not in plan_input(plan, plan.sources[1])  # a table has no object tags


@pytest.mark.parametrize("option", ["tags_refresh: 0", "tags_refresh: sometimes", "archived_objects: restore"])
def test_a_bad_s3_plan_option_names_the_plan_and_the_field(option: str) -> None:
    with pytest.raises(PlansFileError, match=f"plan 'p': {option.split(':')[0]}"):
        parse_plans(PLAN.replace("OPTIONS", option))
