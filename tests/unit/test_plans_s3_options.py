"""The S3 plan options (archived_objects, tags_refresh): validated in the plans file, carried into the backup
state machine's input only when set, and read back by the backup request model."""

from __future__ import annotations

import re

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


INVENTORY_PLAN = """
plans:
  - name: p
    sources:
      - type: s3
        bucket: some-bucket
        INVENTORY
    schedule: {expression: rate(1 day)}
"""


def test_a_sources_inventory_reaches_the_backup_input_and_only_when_given() -> None:
    given = 'inventory: {destination: "s3://inventories/reports", configuration: daily}'
    plan = parse_plans(INVENTORY_PLAN.replace("INVENTORY", given)).plans[0]

    sent = plan_input(plan, plan.sources[0])

    inventory = {"destination": "s3://inventories/reports", "configuration": "daily", "max_age_hours": 48}
    assert sent["source"]["inventory"] == inventory
    report = BackupRequest.model_validate(sent).source.inventory
    assert report is not None and report.folder("some-bucket") == ("inventories", "reports/some-bucket/daily/")
    plain = parse_plans(INVENTORY_PLAN.replace("INVENTORY", "")).plans[0]
    assert "inventory" not in plan_input(plain, plain.sources[0])["source"]


@pytest.mark.parametrize(
    ("inventory", "field"),
    [
        ('{destination: "inventories", configuration: daily}', "sources[0].inventory.destination"),
        ('{destination: "s3://inventories", configuration: "a/b"}', "sources[0].inventory.configuration"),
        (
            '{destination: "s3://inventories", configuration: daily, max_age_hours: 0}',
            "sources[0].inventory.max_age_hours",
        ),
        ('{destination: "s3://inventories", configuration: daily, format: ORC}', "sources[0].inventory.format"),
    ],
)
def test_a_bad_inventory_names_the_plan_and_the_field(inventory: str, field: str) -> None:
    with pytest.raises(PlansFileError, match=re.escape(f"plan 'p': {field}: ")):
        parse_plans(INVENTORY_PLAN.replace("INVENTORY", f"inventory: {inventory}"))
