"""DynamoDB sources through the real state machines: the backup's segment map (with its cursor loop) and the restore's
part map, synthesized by CDK and executed by moto's interpreter with our handlers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table_export import TableExport

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline.cli.stack import ExecutionFailed, follow, start
from vaultline.repository.manifest import list_recovery_points, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb.model import table_info
from vaultline_dev.embedded.lambdas import LambdaContext, invocations
from vaultline_dev.sample_tables import create_keyed_table, put_items

pytestmark = pytest.mark.e2e


def _items(n: int) -> list[dict[str, Any]]:
    """Mixed types: strings, integers and exact decimals, binary, sets, lists, maps, booleans and nulls."""
    items = []
    for i in range(n):
        item: dict[str, Any] = {
            "pk": {"S": f"user#{i % 37:03d}"},
            "sk": {"N": str(i)},
            "name": {"S": f"name {i} ü"},
            "price": {"N": f"{i}.{i:03d}0000000000000000000001"},
            "blob": {"B": bytes([i % 256, 0, 255]) * (i % 5 + 1)},
            "active": {"BOOL": i % 2 == 0},
        }
        if i % 3 == 0:
            item["tags"] = {"SS": [f"t{i}", "all"]}
            item["scores"] = {"NS": [str(i), "-1.5"]}
            item["bins"] = {"BS": [b"\x00", bytes([i % 256, 1])]}
        if i % 4 == 0:
            item["doc"] = {"M": {"nested": {"L": [{"S": "a"}, {"N": "1"}, {"NULL": True}]}, "n": {"NULL": True}}}
        items.append(item)
    return items


def _create_table(name: str, items: list[dict[str, Any]], pitr: bool = False) -> None:
    ddb = client("dynamodb")
    create_keyed_table(ddb, name, tags={"team": "data"}, pitr=pitr)
    put_items(ddb, name, items)


def _table_items(name: str) -> dict[tuple[str, Decimal], dict[str, Any]]:
    ddb = client("dynamodb")
    found: dict[tuple[str, Decimal], dict[str, Any]] = {}
    args: dict[str, Any] = {"TableName": name}
    while True:
        page = ddb.scan(**args)
        for item in page["Items"]:
            found[(item["pk"]["S"], Decimal(item["sk"]["N"]))] = _normalized(item)
        if "LastEvaluatedKey" not in page:
            return found
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _normalized(value: Any) -> Any:
    """Sets compare as sets; everything else exactly (numbers as DynamoDB's strings)."""
    if isinstance(value, dict):
        return {k: (sorted(v) if k in ("SS", "NS", "BS") else _normalized(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def _table_input(d: Deployment, table: str, **options: Any) -> dict[str, Any]:
    base = dict(d.stack.plans["demo"][1])
    assert base["source"]["type"] == "dynamodb"
    return {**base, "source": {"type": "dynamodb", "url": f"dynamodb://{table}", "options": options}}


def test_table_backs_up_through_the_segment_map_and_restores_item_for_item(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _items(300)
    _create_table("orders", items)
    # Every invocation's time budget is spent after its first page: each segment needs several worker invocations,
    # so the map item's cursor loop (DdbSegmentDone -> DdbNextPart -> DdbSegmentWorker) runs for real.
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: 1_000)

    execution = start(
        deployment.stack.backup_state_machine, _table_input(deployment, "orders", segments=2, page_size=60)
    )
    output = follow(execution, poll_seconds=0.05)

    committed = output["committed"]
    assert committed["source"] == "dynamodb://orders"
    assert output["prepared"]["segments"] == 2 and output["prepared"]["mode"] == "scan"
    worker_calls = sum(n for name, n in invocations.calls.items() if "SegmentWorker" in name)
    # moto walks the whole table for each segment: ~150 items per segment in pages of 60 -> at least 3 parts each.
    assert worker_calls >= 6, invocations.calls
    vault = Vault.open(deployment.stack.vault_url)
    assert [rp.id for rp in list_recovery_points(vault)] == [committed["recovery_point"]]
    assert _staging_keys(deployment) == []
    assert _lock_keys(deployment) == [], "the run's shared vault lock outlived it"

    restore = start(
        deployment.stack.restore_state_machine,
        {
            "recovery_point": committed["recovery_point"],
            "target": "dynamodb://vaultline-orders-restored",
            "worker_concurrency": 4,
        },
    )
    finished = follow(restore, poll_seconds=0.05)["finished"]

    assert finished["items"] == len(items) and finished["table_created"] is True
    assert finished["target"] == "dynamodb://vaultline-orders-restored"
    assert _table_items("vaultline-orders-restored") == _table_items("orders")
    assert len(_table_items("orders")) == len(items)
    assert _staging_keys(deployment) == []
    assert _lock_keys(deployment) == [], "the run's shared vault lock outlived it"


def test_a_missing_table_fails_the_execution_and_leaves_no_recovery_point(deployment: Deployment) -> None:
    execution = start(deployment.stack.backup_state_machine, _table_input(deployment, "no-such-table"))
    with pytest.raises(ExecutionFailed, match="no-such-table"):
        follow(execution, poll_seconds=0.05)
    history = client("stepfunctions").get_execution_history(executionArn=execution, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert entered[:2] == ["SourceType", "DdbPrepare"]
    assert "Abort" in entered and "BackupFailed" in entered
    assert list_recovery_points(Vault.open(deployment.stack.vault_url)) == []


def _staging_keys(d: Deployment) -> list[str]:
    listing = client("s3").list_objects_v2(Bucket=d.stack.vault_bucket, Prefix="staging/")
    return [o["Key"] for o in listing.get("Contents", [])]


def _lock_keys(d: Deployment) -> list[str]:
    listing = client("s3").list_objects_v2(Bucket=d.stack.vault_bucket, Prefix="locks/")
    return [o["Key"] for o in listing.get("Contents", [])]


def test_a_segment_failing_mid_table_aborts_and_cleans_its_staging(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create_table("halfway", _items(120))
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: 1_000)
    calls = {"worker": 0}

    def fail_after_first_part(function: str, event: dict[str, Any]) -> None:
        if "SegmentWorker" in function:
            calls["worker"] += 1
            if calls["worker"] > 1:
                raise RuntimeError("injected permanent failure")

    invocations.interceptors.append(fail_after_first_part)
    execution = start(deployment.stack.backup_state_machine, _table_input(deployment, "halfway", page_size=50))
    with pytest.raises(ExecutionFailed, match=r"FAILED \(BackupFailed\)"):
        follow(execution, poll_seconds=0.05)

    # Part 0 reached staging before the failure; Abort (or Commit's refusal, then Abort) leaves none of it behind.
    assert list_recovery_points(Vault.open(deployment.stack.vault_url)) == []
    assert _staging_keys(deployment) == []
    assert _lock_keys(deployment) == [], "the run's shared vault lock outlived it"


def _entered_states(execution: str) -> list[str]:
    history = client("stepfunctions").get_execution_history(executionArn=execution, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]


def test_export_mode_backs_up_a_pitr_table_through_the_export_poll_and_restores_item_for_item(
    deployment: Deployment,
) -> None:
    items = _items(120)
    _create_table("ledger", items, pitr=True)

    execution = start(deployment.stack.backup_state_machine, _table_input(deployment, "ledger", mode="export"))
    output = follow(execution, poll_seconds=0.05)

    prepared, committed = output["prepared"], output["committed"]
    assert prepared["mode"] == "export" and prepared["work_list_key"] is None and prepared["export_arn"]
    assert output["work"]["status"] == "COMPLETED" and output["work"]["files"] >= 1
    entered = _entered_states(execution)
    assert entered[:3] == ["SourceType", "DdbPrepare", "DdbMode"] and "DdbExportStatus" in entered[3:5]
    assert "DdbScanWorkList" not in entered and "Abort" not in entered
    # The workers run in the map's child executions: count their invocations, one per export data file.
    assert sum(n for name, n in invocations.calls.items() if "SegmentWorker" in name) == output["work"]["files"]
    assert committed["source"] == "dynamodb://ledger"

    vault = Vault.open(deployment.stack.vault_url)
    assert [rp.id for rp in list_recovery_points(vault)] == [committed["recovery_point"]]
    info = table_info(load_recovery_point(vault, committed["recovery_point"]))
    assert info.mode == "export" and info.export_type == "FULL_EXPORT"
    assert info.export_arn == prepared["export_arn"] and info.export_time is not None
    assert info.items == len(items) and info.read_capacity_units == 0
    assert info.total_segments == output["work"]["files"]
    assert info.table.name == "ledger"
    assert info.table.pitr_enabled
    assert {k["AttributeName"]: k["KeyType"] for k in info.table.description["KeySchema"]} == {
        "pk": "HASH",
        "sk": "RANGE",
    }
    assert {"Key": "team", "Value": "data"} in info.table.tags
    # The export's data files were written under staging/<rp>/export/; Commit cleaned them with the rest.
    assert _staging_keys(deployment) == []
    assert _lock_keys(deployment) == [], "the run's shared vault lock outlived it"

    # Started by hand with no worker_concurrency: the map takes Prepare's validated default, not the raw input.
    restore = start(
        deployment.stack.restore_state_machine,
        {"recovery_point": committed["recovery_point"], "target": "dynamodb://vaultline-ledger-restored"},
    )
    finished = follow(restore, poll_seconds=0.05)["finished"]

    assert finished["items"] == len(items) and finished["table_created"] is True
    assert _table_items("vaultline-ledger-restored") == _table_items("ledger")
    assert len(_table_items("ledger")) == len(items)
    restored_pitr = client("dynamodb").describe_continuous_backups(TableName="vaultline-ledger-restored")
    assert (
        restored_pitr["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"]
        == "ENABLED"
    )
    assert _staging_keys(deployment) == []
    assert _lock_keys(deployment) == [], "the run's shared vault lock outlived it"


def test_export_mode_without_pitr_fails_clearly_and_leaves_nothing_behind(deployment: Deployment) -> None:
    _create_table("no-pitr", _items(10))

    execution = start(deployment.stack.backup_state_machine, _table_input(deployment, "no-pitr", mode="export"))
    with pytest.raises(ExecutionFailed, match="point-in-time recovery is off"):
        follow(execution, poll_seconds=0.05)

    entered = _entered_states(execution)
    assert entered[:2] == ["SourceType", "DdbPrepare"]
    assert "DdbExportStatus" not in entered and "DdbSegments" not in entered
    assert "Abort" in entered and "BackupFailed" in entered
    assert list_recovery_points(Vault.open(deployment.stack.vault_url)) == []
    assert _staging_keys(deployment) == []
    assert _lock_keys(deployment) == [], "the failed run's shared vault lock outlived it"


class _SlowExport:
    """An export moto finished at once, described as still running: AWS exports take minutes."""

    def __init__(self, export: Any) -> None:
        self.export = export

    def response(self) -> dict[str, Any]:
        return {**self.export.response(), "ExportStatus": "IN_PROGRESS"}


def test_an_export_still_running_is_polled_again_after_the_wait(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    described: list[str] = []
    real_describe = DynamoDBBackend.describe_export

    def describe_export(backend: DynamoDBBackend, export_arn: str) -> Any:
        described.append(export_arn)
        export = real_describe(backend, export_arn)
        return _SlowExport(export) if len(described) == 1 else export

    monkeypatch.setattr(DynamoDBBackend, "describe_export", describe_export)
    items = _items(40)
    _create_table("slow-ledger", items, pitr=True)

    execution = start(deployment.stack.backup_state_machine, _table_input(deployment, "slow-ledger", mode="export"))
    output = follow(execution, poll_seconds=0.05)

    entered = _entered_states(execution)
    poll = ["DdbExportStatus", "DdbExportDone"]
    # The loop counts its rounds (bounded by the 25,000-event history: infra/constants.py MAX_EXPORT_POLLS).
    counted = ["DdbExportPollCount", "DdbExportPollsLeft", "DdbExportWait"]
    assert entered[3:12] == ["DdbExportPollsStart", *poll, *counted, *poll, "DdbSegments"]
    assert len(described) == 2 and output["work"]["status"] == "COMPLETED"
    assert output["export_polls"] == {"count": 1}
    vault = Vault.open(deployment.stack.vault_url)
    info = table_info(load_recovery_point(vault, output["committed"]["recovery_point"]))
    assert info.mode == "export" and info.items == len(items)
    assert _staging_keys(deployment) == [] and _lock_keys(deployment) == []


def test_a_second_export_within_a_day_is_incremental_and_merges_into_the_parent(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _items(90)
    _create_table("journal", items, pitr=True)
    # The first export is a copy as of an hour ago, as AWS's ExportTime says (the handlers run in their own
    # sandboxes with the real clock: only the embedded AWS's answer is changed, and only for the first run).
    earlier = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    response = TableExport.response
    monkeypatch.setattr(TableExport, "response", lambda self: {**response(self), "ExportTime": earlier.timestamp()})
    first = follow(start(deployment.stack.backup_state_machine, _table_input(deployment, "journal", mode="export")))
    monkeypatch.setattr(TableExport, "response", response)

    # Now, an hour after that copy: 3 items changed, 2 added.
    ddb = client("dynamodb")
    changed = [{**items[n], "name": {"S": "renamed"}} for n in (1, 40, 89)]
    added = [{**items[0], "pk": {"S": "user#new"}, "sk": {"N": str(n)}} for n in (1, 2)]
    for item in changed + added:
        ddb.put_item(TableName="journal", Item=item)

    execution = start(deployment.stack.backup_state_machine, _table_input(deployment, "journal", mode="export"))
    output = follow(execution, poll_seconds=0.05)

    vault = Vault.open(deployment.stack.vault_url)
    parent = table_info(load_recovery_point(vault, first["committed"]["recovery_point"]))
    info = table_info(load_recovery_point(vault, output["committed"]["recovery_point"]))
    assert parent.export_time == earlier
    assert info.export_type == "INCREMENTAL_EXPORT" and info.export_time > earlier + timedelta(minutes=59)
    # One merge worker per parent segment, and the items the parent did not have as one more segment.
    assert output["work"]["files"] >= 1 and info.total_segments == parent.total_segments + 1
    assert info.items == len(items) + len(added)
    assert sum(n for name, n in invocations.calls.items() if "SegmentWorker" in name) == 2 * parent.total_segments

    restore = start(
        deployment.stack.restore_state_machine,
        {"recovery_point": output["committed"]["recovery_point"], "target": "dynamodb://vaultline-journal-restored"},
    )
    follow(restore, poll_seconds=0.05)
    assert _table_items("vaultline-journal-restored") == _table_items("journal")
    assert _staging_keys(deployment) == [] and _lock_keys(deployment) == []
