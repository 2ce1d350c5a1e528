"""DynamoDB backups and restores against moto: fidelity, schema, bad input, dedup, time budget, throttling."""

from __future__ import annotations

import gzip
import json
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models.table_export import TableExport

from tests.integration.conftest import Run
from vaultline.operations import table_backup
from vaultline.operations.table_backup import run_table_backup
from vaultline.operations.table_restore import iter_table_items, restore_table
from vaultline.repository.manifest import iter_entries, load_recovery_point
from vaultline.repository.vault import Vault
from vaultline.runs import table_models as models
from vaultline.runs import table_steps as steps
from vaultline.runs.models import PrepareEvent
from vaultline.sources.dynamodb.export import data_file_keys
from vaultline.sources.dynamodb.items import encode_item
from vaultline.sources.dynamodb.model import BackupOptions, table_info

NO_SLEEP: Callable[[float], None] = lambda _: None  # noqa: E731


def finish_moto_exports(_: float = 0.0) -> None:
    """Instead of sleeping between export polls: let moto's export threads (it runs each export in one) finish."""
    for thread in threading.enumerate():
        if isinstance(thread, TableExport):
            thread.join()


def put_all(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
        ddb.batch_write_item(RequestItems={table: requests})


def scan_all(ddb: Any, table: str) -> list[dict[str, Any]]:
    items, args = [], {"TableName": table}
    while True:
        page = ddb.scan(**args)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=encode_item)
        args["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def simple_table(ddb: Any, name: str, key_type: str = "S", sort: str | None = None) -> None:
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": key_type}]
    if sort:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "sk", "AttributeType": sort})
    ddb.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST")


def every_type_item(n: int) -> dict[str, Any]:
    deep: dict[str, Any] = {"S": "bottom"}
    for level in range(30):  # DynamoDB allows 32 levels of nesting
        deep = {"L": [deep, {"N": str(level)}]} if level % 2 else {"M": {f"l{level}": deep, "n": {"NULL": True}}}
    return {
        "pk": {"S": f"item-{n:04d}"},
        "sk": {"N": str(n)},
        "s": {"S": 'héllo ✓ \u2028 "quoted" \\ line\nbreak'},
        "empty": {"S": ""},
        "n38": {"N": "1234567890123456789012345678901234567.8"},
        "big": {"N": "1E+125"},
        "tiny": {"N": "1E-130"},
        "neg": {"N": "-9.9999999999999999999999999999999999999E+125"},
        "b": {"B": bytes(range(256))},
        "empty_b": {"B": b""},
        "ss": {"SS": ["a", "b", "ç"]},
        "ns": {"NS": ["1", "-0.5", "1E+100"]},
        "bs": {"BS": [b"\x00", b"\xff\xfe"]},
        "m": {"M": {"inner": {"L": [{"NULL": True}, {"BOOL": False}, {"S": ""}]}, "empty_map": {"M": {}}}},
        "l": {"L": [{"N": "0"}, {"L": []}, {"BOOL": True}]},
        "null": {"NULL": True},
        "t": {"BOOL": True},
        "deep": deep,
        "gsi_pk": {"S": f"g{n % 3}"},
        "lsi_sk": {"S": f"l{n}"},
        "expires": {"N": str(1_900_000_000 + n)},
    }


def rich_table(ddb: Any, name: str) -> None:
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
            {"AttributeName": "gsi_pk", "AttributeType": "S"},
            {"AttributeName": "lsi_sk", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-gsi",
                "KeySchema": [
                    {"AttributeName": "gsi_pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["s", "n38"]},
                "ProvisionedThroughput": {"ReadCapacityUnits": 7, "WriteCapacityUnits": 3},
            }
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by-lsi",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "lsi_sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 11, "WriteCapacityUnits": 5},
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        Tags=[{"Key": "team", "Value": "payments"}, {"Key": "env", "Value": "prod"}],
    )
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})


def comparable(ddb: Any, name: str) -> dict[str, Any]:
    """What must survive a restore: schema, indexes, billing, capacity, stream, TTL, tags."""
    t = ddb.describe_table(TableName=name)["Table"]
    strip = lambda idx: sorted(  # noqa: E731
        (
            {
                "IndexName": i["IndexName"],
                "KeySchema": i["KeySchema"],
                "Projection": i["Projection"],
                "Throughput": {k: v for k, v in i.get("ProvisionedThroughput", {}).items() if k.endswith("Units")},
            }
            for i in idx
        ),
        key=lambda i: i["IndexName"],
    )
    arn = t["TableArn"]
    return {
        "KeySchema": t["KeySchema"],
        "AttributeDefinitions": sorted(t["AttributeDefinitions"], key=lambda a: a["AttributeName"]),
        "GSI": strip(t.get("GlobalSecondaryIndexes", [])),
        "LSI": [
            {k: i[k] for k in ("IndexName", "KeySchema", "Projection")} for i in t.get("LocalSecondaryIndexes", [])
        ],
        "Billing": t.get("BillingModeSummary", {}).get("BillingMode"),
        "Throughput": {k: v for k, v in t["ProvisionedThroughput"].items() if k.endswith("Units")},
        "Stream": t.get("StreamSpecification"),
        "TTL": ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"],
        "Tags": sorted(ddb.list_tags_of_resource(ResourceArn=arn)["Tags"], key=lambda x: x["Key"]),
    }


def test_every_attribute_type_indexes_ttl_and_tags_survive_a_restore_into_a_new_table(
    ddb: Any, s3_vault: Vault
) -> None:
    rich_table(ddb, "orders")
    items = [every_type_item(n) for n in range(24)]
    put_all(ddb, "orders", items)
    rp = run_table_backup(s3_vault, "dynamodb://orders", BackupOptions(segments=3), sleep=NO_SLEEP)
    info = table_info(rp)
    assert info.items == 24 and info.total_segments == 3
    assert [t["Key"] for t in info.table.tags] == ["team", "env"] or len(info.table.tags) == 2
    assert info.table.time_to_live["AttributeName"] == "expires"
    stats = restore_table(s3_vault, load_recovery_point(s3_vault, rp.id), "dynamodb://orders-copy", sleep=NO_SLEEP)
    assert stats.table_created and stats.items == 24
    assert scan_all(ddb, "orders-copy") == scan_all(ddb, "orders") == sorted(items, key=encode_item)
    assert comparable(ddb, "orders-copy") == comparable(ddb, "orders")


@pytest.mark.parametrize(
    ("key_type", "make_key"),
    [("B", lambda n: {"B": n.to_bytes(4, "big") + b"\x00"}), ("N", lambda n: {"N": f"{n}.5E-3"})],
)
def test_binary_and_numeric_keys_round_trip(
    ddb: Any, s3_vault: Vault, key_type: str, make_key: Callable[[int], dict[str, Any]]
) -> None:
    simple_table(ddb, "keys", key_type)
    put_all(ddb, "keys", [{"pk": make_key(n), "v": {"N": str(n)}} for n in range(40)])
    rp = run_table_backup(s3_vault, "dynamodb://keys", sleep=NO_SLEEP)
    restore_table(s3_vault, rp, "dynamodb://keys-copy", sleep=NO_SLEEP)
    assert scan_all(ddb, "keys-copy") == scan_all(ddb, "keys")


def test_items_near_the_400_kb_limit_round_trip(ddb: Any, s3_vault: Vault) -> None:
    simple_table(ddb, "big")
    rng = random.Random(4)
    items = [{"pk": {"S": f"k{n}"}, "blob": {"B": rng.randbytes(395_000)}, "s": {"S": "x" * 1000}} for n in range(4)]
    for item in items:
        ddb.put_item(TableName="big", Item=item)
    rp = run_table_backup(s3_vault, "dynamodb://big", sleep=NO_SLEEP)
    assert sorted(iter_table_items(s3_vault, rp), key=encode_item) == sorted(items, key=encode_item)
    restore_table(s3_vault, rp, "dynamodb://big-copy", sleep=NO_SLEEP)
    assert scan_all(ddb, "big-copy") == scan_all(ddb, "big")


def test_cli_backup_restore_get_and_item_level_restore(ddb: Any, s3: Any, run: Run) -> None:
    s3.create_bucket(Bucket="vaults")
    simple_table(ddb, "users", sort="N")
    put_all(ddb, "users", [{"pk": {"S": f"u{n % 5}"}, "sk": {"N": str(n)}, "v": {"S": f"v{n}"}} for n in range(50)])
    vault = ("--vault", "s3://vaults/v")
    assert run(*vault, "init")[0] == 0
    code, out, err = run(*vault, "backup", "dynamodb://users", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["recovery_point"] and doc["items"] == 50 and doc["stats"]["objects"] == 50
    rp = doc["recovery_point"]
    ddb.put_item(TableName="users", Item={"pk": {"S": "u1"}, "sk": {"N": "1"}, "v": {"S": "changed"}})

    code, out, _ = run(*vault, "get", rp, "--key", '{"pk":"u1","sk":1}', "--json")
    assert code == 0 and json.loads(out) == {"pk": {"S": "u1"}, "sk": {"N": "1"}, "v": {"S": "v1"}}

    code, out, err = run(*vault, "restore", rp, "--to", "dynamodb://users", "--key", '{"pk":{"S":"u1"},"sk":{"N":"1"}}')
    assert code == 0, err
    assert ddb.get_item(TableName="users", Key={"pk": {"S": "u1"}, "sk": {"N": "1"}})["Item"]["v"] == {"S": "v1"}

    code, out, err = run(*vault, "restore", rp, "--to", "dynamodb://users-2", "--json")
    assert code == 0, err
    assert json.loads(out)["items"] == 50
    assert len(scan_all(ddb, "users-2")) == 50


def test_missing_table_is_a_clear_error(ddb: Any, s3: Any, run: Run) -> None:
    s3.create_bucket(Bucket="vaults")
    run("--vault", "s3://vaults/v", "init")
    code, out, err = run("--vault", "s3://vaults/v", "backup", "dynamodb://nope", "--json")
    assert code == 1 and "table nope does not exist" in err and out == ""
    assert run("--vault", "s3://vaults/v", "list", "--json")[1].strip() == "[]"


def test_restore_onto_another_key_schema_or_with_a_bad_key_writes_nothing(ddb: Any, s3: Any, run: Run) -> None:
    s3.create_bucket(Bucket="vaults")
    simple_table(ddb, "src")
    put_all(ddb, "src", [{"pk": {"S": f"k{n}"}} for n in range(10)])
    simple_table(ddb, "other", key_type="N")
    vault = ("--vault", "s3://vaults/v")
    run(*vault, "init")
    run(*vault, "backup", "dynamodb://src")
    code, _, err = run(*vault, "restore", "latest", "--to", "dynamodb://other")
    assert code == 1 and "table other has key schema" in err and "nothing was written" in err
    assert scan_all(ddb, "other") == []
    for bad in ('{"id":"k1"}', '{"pk":1}', '{"pk":"k1","sk":"x"}'):
        code, _, err = run(*vault, "restore", "latest", "--to", "dynamodb://fresh", "--key", bad)
        assert code == 1 and "table src" in err and bad in err, err
        code, _, err = run(*vault, "get", "latest", "--key", bad)
        assert code == 1 and "table src" in err
    code, _, err = run(*vault, "restore", "latest", "--to", "dynamodb://fresh", "--key", '{"pk":"absent"}')
    assert code == 1 and "absent" in err
    assert "fresh" not in ddb.list_tables()["TableNames"]


def test_one_percent_changed_items_grow_the_vault_a_little(ddb: Any, s3_vault: Vault) -> None:
    simple_table(ddb, "events")
    rng = random.Random(7)
    items = [{"pk": {"S": f"e{n:05d}"}, "body": {"S": rng.randbytes(700).hex()}} for n in range(3000)]
    put_all(ddb, "events", items)
    day1 = run_table_backup(s3_vault, "dynamodb://events", sleep=NO_SLEEP)
    for item in rng.sample(items, 30):
        ddb.put_item(TableName="events", Item={**item, "body": {"S": rng.randbytes(700).hex()}})
    day2 = run_table_backup(s3_vault, "dynamodb://events", sleep=NO_SLEEP)
    assert day2.parent == day1.id and day2.stats.objects == 3000
    # 30 of 3000 items: stored bytes (data and manifest) grow about as the share of small chunks holding one of them.
    # FastCDC over the stream bytes (before item anchors) stored 17% here; item anchors store under 5%.
    growth = day2.stats.bytes_stored / day1.stats.bytes_stored
    assert growth < 0.08, f"day-2 stored {growth:.0%} of day 1"
    assert day2.stats.new_chunks <= 2 * 30 + 10


class Throttling:
    """A DynamoDB client whose scan and batch_write_item fail with throttling on some calls."""

    def __init__(self, inner: Any, every: int = 3) -> None:
        self.inner, self.every, self.calls, self.throttled, self.unprocessed = inner, every, 0, 0, 0

    def _maybe(self, op: str) -> None:
        self.calls += 1
        if self.calls % self.every == 1:
            self.throttled += 1
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}
            raise ClientError({"Error": error}, op)

    def scan(self, **kwargs: Any) -> Any:
        self._maybe("Scan")
        return self.inner.scan(**kwargs)

    def batch_write_item(self, **kwargs: Any) -> Any:
        self._maybe("BatchWriteItem")
        ((table, requests),) = kwargs["RequestItems"].items()
        if len(requests) < 2:
            return self.inner.batch_write_item(**kwargs)
        # Write half and hand the rest back as unprocessed, as a throttled table does.
        half = len(requests) // 2
        response = self.inner.batch_write_item(**{**kwargs, "RequestItems": {table: requests[:half]}})
        self.unprocessed += len(requests) - half
        return {**response, "UnprocessedItems": {table: requests[half:]}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_throttled_pages_and_writes_lose_and_duplicate_nothing(ddb: Any, s3_vault: Vault) -> None:
    simple_table(ddb, "hot")
    items = [{"pk": {"S": f"h{n:04d}"}, "v": {"N": str(n)}} for n in range(400)]
    put_all(ddb, "hot", items)
    slow = Throttling(ddb)
    options = BackupOptions(segments=2, read_rate=50, page_size=30)
    rp = run_table_backup(s3_vault, "dynamodb://hot", options, sleep=NO_SLEEP, ddb=slow)
    assert slow.throttled > 0
    restored = list(iter_table_items(s3_vault, rp))
    assert len(restored) == 400 and sorted(restored, key=encode_item) == sorted(items, key=encode_item)
    writes = Throttling(ddb, every=2)
    restore_table(s3_vault, rp, "dynamodb://hot-copy", write_rate=20, sleep=NO_SLEEP, ddb=writes)
    assert writes.throttled > 0 and writes.unprocessed > 0
    assert scan_all(ddb, "hot-copy") == scan_all(ddb, "hot")


def test_segment_worker_out_of_time_returns_a_cursor_and_resuming_reads_every_item_once(
    ddb: Any, s3_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    simple_table(ddb, "long")
    items = [{"pk": {"S": f"l{n:04d}"}, "pad": {"S": "p" * 200}} for n in range(600)]
    put_all(ddb, "long", items)
    request = {"source": {"type": "dynamodb", "url": "dynamodb://long", "options": {"segments": 2, "page_size": 50}}}
    prepared = steps.prepare(s3_vault, PrepareEvent(request=request))
    work = json.loads(s3_vault.storage.get(prepared.work_list_key.split("vaults/main/", 1)[1]))
    assert [w["segment"] for w in work] == [0, 1]
    monkeypatch.setattr(steps, "RESERVE_MS", 1000)
    invocations = 0
    for item in work:
        event = models.SegmentWorkerEvent(recovery_point=prepared.recovery_point, item=item)
        while True:
            pages = iter([5000, 5000, 10])  # two pages fit, then the budget is spent
            invocations += 1
            summary = steps.segment_worker(s3_vault, event, remaining_ms=lambda p=pages: next(p, 0), sleep=NO_SLEEP)
            if summary.done:
                break
            assert summary.next is not None and summary.next.cursor.start_key
            event = models.SegmentWorkerEvent(recovery_point=prepared.recovery_point, item=summary.next)
    assert invocations >= 4  # 600 items, 50 a page, two pages an invocation
    committed = steps.commit(s3_vault, models.TableCommitEvent(prepared=prepared))
    rp = load_recovery_point(s3_vault, committed.recovery_point)
    got = [encode_item(i) for i in iter_table_items(s3_vault, rp)]
    assert len(got) == len(set(got)) == 600 and sorted(got) == sorted(encode_item(i) for i in items)
    assert not list(s3_vault.storage.list(f"staging/{rp.id}/"))


def test_commit_refuses_a_segment_whose_last_part_is_missing(ddb: Any, s3_vault: Vault) -> None:
    simple_table(ddb, "tab1")
    put_all(ddb, "tab1", [{"pk": {"S": f"k{n}"}} for n in range(5)])
    request = {"source": {"type": "dynamodb", "url": "dynamodb://tab1", "options": {"segments": 2}}}
    prepared = steps.prepare(s3_vault, PrepareEvent(request=request))
    steps.segment_worker(
        s3_vault, models.SegmentWorkerEvent(recovery_point=prepared.recovery_point, item={"segment": 0})
    )
    with pytest.raises(Exception, match=r"segments \[1\] are incomplete"):
        steps.commit(s3_vault, models.TableCommitEvent(prepared=prepared))


def test_export_mode_and_serverless_restore(ddb: Any, s3_vault: Vault) -> None:
    simple_table(ddb, "pitr")
    items = [every_type_item(n) | {"pk": {"S": f"p{n}"}} for n in range(30)]
    put_all(ddb, "pitr", items)
    with pytest.raises(Exception, match="point-in-time recovery is off"):
        run_table_backup(s3_vault, "dynamodb://pitr", BackupOptions(mode="export"), sleep=NO_SLEEP)
    ddb.update_continuous_backups(
        TableName="pitr", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    rp = run_table_backup(s3_vault, "dynamodb://pitr", BackupOptions(mode="export"), sleep=finish_moto_exports)
    info = table_info(rp)
    assert info.mode == "export" and info.export_arn and info.items == 30 and info.read_capacity_units == 0
    assert not list(s3_vault.storage.list(f"staging/{rp.id}/"))

    prepared = steps.restore_prepare(
        s3_vault, PrepareEvent(request={"recovery_point": rp.id, "target": "dynamodb://pitr-copy"})
    )
    assert prepared.table_created
    for part in range(prepared.parts):
        work = json.loads(s3_vault.storage.get(prepared.work_list_key.split("vaults/main/", 1)[1]))[part]
        steps.restore_worker(s3_vault, models.TableRestoreWorkerEvent(restore_id=prepared.restore_id, item=work))
    finished = steps.restore_finish(s3_vault, models.TableRestoreFinishEvent(prepared=prepared))
    assert finished.items == 30
    assert scan_all(ddb, "pitr-copy") == scan_all(ddb, "pitr")


def _export_through_the_steps(vault: Vault, url: str, rewrite: Callable[[list[str]], None] | None = None) -> str:
    """One export-mode backup driven step by step as the state machine does; ``rewrite`` may replace the export's
    data files (moto writes one full dump whatever was asked) before the workers read them."""
    request = {"source": {"type": "dynamodb", "url": url, "options": {"mode": "export"}}, "worker_concurrency": 2}
    prepared = steps.prepare(vault, PrepareEvent(request=request))
    finish_moto_exports()
    if rewrite:
        rewrite(data_file_keys(vault, prepared.recovery_point))
    status = steps.export_status(vault, models.ExportStatusEvent(prepared=prepared))
    assert status.status == "COMPLETED" and status.work_list_key
    work = json.loads(vault.storage.get(status.work_list_key.split("vaults/main/", 1)[1]))
    for item in work:
        event = models.SegmentWorkerEvent(recovery_point=prepared.recovery_point, item=item)
        assert steps.segment_worker(vault, event).done
    return steps.commit(vault, models.TableCommitEvent(prepared=prepared)).recovery_point


def _export_through_the_cli(vault: Vault, url: str, rewrite: Callable[[list[str]], None] | None = None) -> str:
    """The same backup by the CLI's loop in one process; ``rewrite`` replaces the data files at the same moment."""
    stored_work = table_backup.export_work

    def rewritten_work(vault: Vault, run: table_backup.TableRun) -> list[table_backup.SegmentWork]:
        if rewrite:
            rewrite(data_file_keys(vault, run.recovery_point))
        return stored_work(vault, run)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(table_backup, "export_work", rewritten_work)
        return run_table_backup(vault, url, BackupOptions(mode="export"), sleep=finish_moto_exports).id


def _write_export_files(vault: Vault, keys: list[str], records: list[dict[str, Any]], files: int) -> None:
    folder = keys[0].rsplit("/", 1)[0]
    for key in keys:
        vault.storage.delete(key)
    for n in range(files):
        lines = b"".join(json.dumps(r).encode() + b"\n" for r in records[n::files])
        vault.storage.put(f"{folder}/part-{n}.json.gz", gzip.compress(lines))


@pytest.mark.parametrize("export", [_export_through_the_steps, _export_through_the_cli], ids=["steps", "cli"])
def test_incremental_export_merges_changes_into_the_parent_segments(
    ddb: Any, s3_vault: Vault, monkeypatch: pytest.MonkeyPatch, export: Callable[..., str]
) -> None:
    """The state machine's steps and the CLI's loop store the same shape: each parent segment merged, then one
    segment of the new items."""
    simple_table(ddb, "ledger")
    ddb.update_continuous_backups(
        TableName="ledger", PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    put_all(ddb, "ledger", [{"pk": {"S": f"k{n:04d}"}, "v": {"S": f"{n}" * 200}} for n in range(300)])

    def as_three_full_files(keys: list[str]) -> None:
        # AWS splits an export into many data files; moto writes one. Three make three parent segments.
        items = [{"Item": item} for item in scan_all(ddb, "ledger")]
        _write_export_files(s3_vault, keys, items, files=3)

    first = export(s3_vault, "dynamodb://ledger", as_three_full_files)
    day1 = load_recovery_point(s3_vault, first)
    assert table_info(day1).export_type == "FULL_EXPORT" and table_info(day1).total_segments == 3

    # Twenty minutes later (an incremental window is 15 minutes to 24 hours): 3 updates, 2 deletions, 4 new items.
    later = datetime.now(UTC) + timedelta(minutes=20)
    clock = type("Later", (datetime,), {"now": staticmethod(lambda tz=None: later)})
    monkeypatch.setattr(table_backup, "datetime", clock)
    updated = [{"pk": {"S": f"k{n:04d}"}, "v": {"S": "changed"}} for n in (5, 150, 299)]
    deleted = [{"pk": {"S": f"k{n:04d}"}} for n in (0, 200)]
    created = [{"pk": {"S": f"new{n}"}, "v": {"N": str(n)}} for n in range(4)]
    put_all(ddb, "ledger", updated + created)
    for key in deleted:
        ddb.delete_item(TableName="ledger", Key=key)

    def as_aws_change_records(keys: list[str]) -> None:
        # What an incremental export with NEW_IMAGE holds: the key, and the new image unless the item was deleted.
        records = [{"Keys": {"pk": i["pk"]}, "NewImage": i} for i in updated + created]
        records += [{"Keys": key} for key in deleted]
        _write_export_files(s3_vault, keys, records, files=2)

    second = export(s3_vault, "dynamodb://ledger", as_aws_change_records)
    day2 = load_recovery_point(s3_vault, second)
    info = table_info(day2)
    assert info.export_type == "INCREMENTAL_EXPORT" and info.export_time == later
    assert info.total_segments == 4  # the parent's three, merged, and the new items
    assert [e.key for e in iter_entries(s3_vault, day2)] == [f"segment/{n:05d}/part/0000" for n in range(4)]
    assert sorted(iter_table_items(s3_vault, day2), key=encode_item) == scan_all(ddb, "ledger")
    assert info.items == 300 - 2 + 4
    # Unchanged stretches of the parent's segments kept their chunks: 9 changed items touch a few chunks of 44.
    assert day2.stats.duplicate_chunks > 0 and day2.stats.new_chunks <= day1.stats.new_chunks // 4
    assert not list(s3_vault.storage.list("staging/")) and not list(s3_vault.storage.list("locks/"))
