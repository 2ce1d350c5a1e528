"""Read limits of table scans: a rate in RCU/s for any table, or a share of a provisioned table's read capacity."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Run
from tests.integration.test_dynamodb import put_all, simple_table
from vaultline.errors import SourceError
from vaultline.operations.table_backup import run_table_backup
from vaultline.repository.vault import Vault
from vaultline.runs import table_steps as steps
from vaultline.runs.models import PrepareEvent
from vaultline.runs.protocol import StagedRun
from vaultline.runs.table_models import TableStagedRun
from vaultline.sources.dynamodb.model import BackupOptions, table_info


def provisioned_table(ddb: Any, name: str, read_units: int, items: int) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        ProvisionedThroughput={"ReadCapacityUnits": read_units, "WriteCapacityUnits": 5},
    )
    put_all(ddb, name, [{"pk": {"S": f"k{n:04d}"}, "v": {"N": str(n)}} for n in range(items)])


def test_a_share_of_provisioned_capacity_paces_the_scan(ddb: Any, s3_vault: Vault) -> None:
    provisioned_table(ddb, "paced", read_units=4, items=50)
    slept: list[float] = []

    # A quarter of 4 RCU is 1 RCU/s. moto charges 1 unit per Scan page, so ten pages of five items take one second
    # of burst and then about a second each: the limiter must ask to sleep some nine seconds in all.
    options = BackupOptions(segments=1, read_share=0.25, page_size=5)
    rp = run_table_backup(s3_vault, "dynamodb://paced", options, sleep=slept.append)

    assert table_info(rp).items == 50
    assert 8.0 <= sum(slept) <= 11.0


def test_a_read_rate_applies_to_an_on_demand_table_but_a_share_is_a_clear_error(ddb: Any, s3: Any, run: Run) -> None:
    simple_table(ddb, "on-demand")
    put_all(ddb, "on-demand", [{"pk": {"S": f"k{n}"}} for n in range(10)])
    s3.create_bucket(Bucket="vaults")
    vault = ("--vault", "s3://vaults/v")
    run(*vault, "init")

    code, _, err = run(*vault, "backup", "dynamodb://on-demand", "--read-share", "0.5")
    assert code == 1
    assert "table on-demand is on-demand" in err and "give read_rate in RCU/s" in err
    assert run(*vault, "list", "--json")[1].strip() == "[]"
    assert s3.list_objects_v2(Bucket="vaults", Prefix="v/locks/").get("KeyCount") == 0

    assert run(*vault, "backup", "dynamodb://on-demand", "--read-rate", "100")[0] == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--read-share", "1.5"], "--read-share: Input should be less than or equal to 1"),
        (["--read-share", "0.5", "--read-rate", "10"], "options: give read_rate (RCU/s, any table) or read_share"),
    ],
)
def test_bad_read_limits_are_usage_errors(s3: Any, run: Run, arguments: list[str], message: str) -> None:
    s3.create_bucket(Bucket="vaults")
    run("--vault", "s3://vaults/v", "init")
    code, _, err = run("--vault", "s3://vaults/v", "backup", "dynamodb://any-table", *arguments)
    assert code == 2 and message in err


def test_serverless_workers_split_the_limit_over_the_segments_running_at_once(ddb: Any, s3_vault: Vault) -> None:
    provisioned_table(ddb, "shared", read_units=40, items=5)
    request = {
        "source": {"type": "dynamodb", "url": "dynamodb://shared", "options": {"segments": 8, "read_share": 0.5}},
        "worker_concurrency": 4,
    }

    prepared = steps.prepare(s3_vault, PrepareEvent(request=request))

    run_doc = StagedRun(s3_vault, prepared.recovery_point, TableStagedRun).read()
    # 20 RCU/s for the table; 8 segments but only 4 run at once, so each worker may read 5 RCU/s.
    assert run_doc.read_rate_per_worker == 5.0


def test_serverless_prepare_refuses_a_share_of_an_on_demand_table_before_taking_the_lock(
    ddb: Any, s3_vault: Vault
) -> None:
    simple_table(ddb, "odt")
    request = {"source": {"type": "dynamodb", "url": "dynamodb://odt", "options": {"read_share": 0.5}}}
    with pytest.raises(SourceError, match="table odt is on-demand"):
        steps.prepare(s3_vault, PrepareEvent(request=request))
    assert list(s3_vault.storage.list("locks/")) == []
