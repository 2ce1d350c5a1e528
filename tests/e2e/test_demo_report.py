"""`make demo`'s executions report: what the Step Functions console shows, read from real executions."""

from __future__ import annotations

import pytest
from rich.console import Console

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline.cli.stack import ExecutionFailed, follow, start
from vaultline_dev.demo import execution_rows, executions_table

pytestmark = pytest.mark.e2e


def test_report_lists_each_execution_with_status_map_items_and_duration(deployment: Deployment) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket="report-source")
    for i in range(5):
        s3.put_object(Bucket="report-source", Key=f"k/{i}", Body=b"x" * (i + 1))
    backup = start(deployment.stack.backup_state_machine, deployment.plan_input("s3://report-source"))
    follow(backup, poll_seconds=0.05)
    failed = start(deployment.stack.restore_state_machine, {"recovery_point": "no-such-point", "target": "s3://x"})
    with pytest.raises(ExecutionFailed):
        follow(failed, poll_seconds=0.05)

    rows = execution_rows([deployment.stack.backup_state_machine, deployment.stack.restore_state_machine])

    assert [(r.name, r.status) for r in rows] == [
        (backup.rsplit(":", 1)[-1], "SUCCEEDED"),
        (failed.rsplit(":", 1)[-1], "FAILED"),
    ]
    assert rows[0].map_items_succeeded is not None and rows[0].map_items_succeeded >= 1
    assert rows[0].map_items_failed == 0
    assert rows[0].seconds is not None and rows[0].seconds > 0
    console = Console(record=True, width=200)
    console.print(executions_table(rows))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "state machine" in line)
    for column in ("execution", "state machine", "status", "map items succeeded", "map items failed", "duration"):
        assert column in header
    backup_line = next(line for line in text.splitlines() if rows[0].name[:20] in line)
    assert "SUCCEEDED" in backup_line and f"{rows[0].seconds:.1f} s" in backup_line
    assert str(rows[0].map_items_succeeded) in backup_line
