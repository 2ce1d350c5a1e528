"""The executions' inputs are the receivers' models, dumped with what the sender set."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vaultline.plans import parse_plans
from vaultline.runs.maintenance_models import MaintenanceInput
from vaultline.runs.models import RestoreRequest
from vaultline.runs.requests import (
    PlannedBackup,
    PlannedTableBackup,
    deployed_backup,
    execution_input,
    maintenance_input,
    plan_inputs,
    restore_input,
)
from vaultline.runs.table_models import TableRestoreRequest

PLANS = """
version: 1
plans:
  - name: mixed
    sources:
      - {type: s3, bucket: photos, role_arn: "arn:aws:iam::123456789012:role/read"}
      - {type: dynamodb, table: orders, read_rate: 20, role_arn: "arn:aws:iam::123456789012:role/read"}
    schedule: {expression: "rate(1 day)"}
    retention: {keep_last: 3}
"""


def test_a_deployed_plan_input_reads_back_as_the_model_and_dumps_as_deployed() -> None:
    (s3, table) = plan_inputs(parse_plans(PLANS))["mixed"]
    assert s3["source"]["role_arn"] == "arn:aws:iam::123456789012:role/read" and s3["retention"] == {"keep_last": 3}
    # A table's role travels in its URL, the only place the table steps read it.
    assert "role_arn" not in table["source"] and "role=" in table["source"]["url"]
    assert table["source"]["options"] == {"mode": "scan", "consistent_read": False, "read_rate": 20.0}
    read_back = [deployed_backup(s3), deployed_backup(table)]
    assert [type(request) for request in read_back] == [PlannedBackup, PlannedTableBackup]
    assert [execution_input(request) for request in read_back] == [s3, table]


def test_the_maintenance_input_is_the_maintenance_machines_model() -> None:
    sent = maintenance_input(parse_plans(PLANS), drill=True, scratch="s3://scratch/drill-scratch", verify_parts=7)
    assert sent == {
        "policies": [
            {"source": "s3://photos", "plan": "mixed", "rules": {"keep_last": 3}},
            {
                "source": "dynamodb://orders?role=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fread",
                "plan": "mixed",
                "rules": {"keep_last": 3},
            },
        ],
        "prune": True,
        "verify": {"parts": 7},
        "drill": {"enabled": True, "scratch": "s3://scratch/drill-scratch"},
    }
    assert MaintenanceInput.model_validate(sent).verify.parts == 7


def test_a_remote_restore_input_is_the_restore_request_of_its_target_kind() -> None:
    s3 = restore_input("rp1", "s3://target", include=["a/*"], overwrite=None, write_rate=None, worker_concurrency=4)
    assert RestoreRequest.model_validate(s3) == RestoreRequest(
        recovery_point="rp1", target="s3://target", include=["a/*"], overwrite="never", worker_concurrency=4
    )
    table = restore_input("rp1", "dynamodb://copy", include=[], overwrite=None, write_rate=50, worker_concurrency=2)
    assert table == {"recovery_point": "rp1", "target": "dynamodb://copy", "worker_concurrency": 2, "write_rate": 50}
    assert TableRestoreRequest.model_validate(table).write_rate == 50
    unlimited = restore_input(
        "rp1", "dynamodb://copy", include=[], overwrite=None, write_rate=None, worker_concurrency=2
    )
    assert "write_rate" not in unlimited
    with pytest.raises(ValidationError):
        restore_input("rp1", "s3://target", include=[], overwrite=None, write_rate=None, worker_concurrency=0)
