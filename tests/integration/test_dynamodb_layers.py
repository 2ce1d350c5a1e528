"""Layered DynamoDB recovery points (format version 2): deltas against the parent's key-sorted segments, re-bases
at the stated bounds, chains that forget and prune cannot break, and restores that refuse a missing link."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_dynamodb import NO_SLEEP, put_all, scan_all, simple_table
from vaultline.errors import IntegrityError
from vaultline.operations import table_backup
from vaultline.operations.forget_run import forget_staged
from vaultline.operations.prune import prune
from vaultline.operations.retention import RetentionPolicy
from vaultline.operations.table_backup import run_table_backup
from vaultline.operations.table_restore import iter_table_items, restore_table
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.chunking import Chunker
from vaultline.repository.manifest import (
    RecoveryPoint,
    commit_recovery_point,
    iter_entries,
    load_recovery_point,
    new_recovery_point_id,
    write_entries,
)
from vaultline.repository.vault import Vault
from vaultline.runs import table_models as models
from vaultline.runs import table_steps as steps
from vaultline.runs.models import PrepareEvent
from vaultline.sources.dynamodb import layers
from vaultline.sources.dynamodb.items import encode_item
from vaultline.sources.dynamodb.model import BackupOptions, table_info


@pytest.fixture(autouse=True)
def one_backup_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backups start a minute apart (from a day ago): recovery point ids sort by their second, and a parent is
    the latest id, so two backups in one second could pick either as the next one's parent."""
    ticks = itertools.count()
    start = datetime.now(UTC) - timedelta(days=1)

    class Ticking(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Ticking:
            moment = start + timedelta(minutes=next(ticks))
            return cls.fromtimestamp(moment.timestamp(), tz)

    monkeypatch.setattr(table_backup, "datetime", Ticking)


def layer_counts(vault: Vault, rp: RecoveryPoint) -> list[int]:
    """How many layers each segment of ``rp`` has."""
    info = table_info(rp)
    return [s.layers for s in layers.iter_segments(iter_entries(vault, rp), info.total_segments, rp.id)]


def restored(vault: Vault, rp: RecoveryPoint) -> list[bytes]:
    return sorted(encode_item(item) for item in iter_table_items(vault, rp))


def table_lines(ddb: Any, table: str) -> list[bytes]:
    return sorted(encode_item(item) for item in scan_all(ddb, table))


def item(n: int, version: int = 0) -> dict[str, Any]:
    return {"pk": {"S": f"k{n:05d}"}, "v": {"N": str(version)}, "pad": {"S": f"{n}-{version}-" + "x" * 150}}


TABLE_NUMBERS = itertools.count()
day_changes = st.lists(
    st.tuples(st.sampled_from(["put", "delete"]), st.integers(0, 399), st.integers(1, 10**6)), max_size=40
)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.lists(day_changes, min_size=1, max_size=5))
def test_a_chain_of_deltas_restores_every_day_bit_exact(
    ddb: Any, s3_vault: Vault, days: list[list[tuple[str, int, int]]]
) -> None:
    table = f"chain{next(TABLE_NUMBERS)}"  # a table (and a source) of its own per example
    simple_table(ddb, table)
    put_all(ddb, table, [item(n) for n in range(0, 300)])
    options = BackupOptions(segments=2)
    rp = run_table_backup(s3_vault, f"dynamodb://{table}", options, sleep=NO_SLEEP)
    assert table_info(rp).stream_layout == layers.LAYOUT and layer_counts(s3_vault, rp) == [1, 1]
    for day, changes in enumerate(days, start=1):
        for kind, n, version in changes:
            if kind == "put":
                ddb.put_item(TableName=table, Item=item(n, version))
            else:
                ddb.delete_item(TableName=table, Key={"pk": {"S": f"k{n:05d}"}})
        rp = run_table_backup(s3_vault, f"dynamodb://{table}", options, sleep=NO_SLEEP)
        info = table_info(rp)
        assert info.generation == day and info.items == len(scan_all(ddb, table))
        assert restored(s3_vault, rp) == table_lines(ddb, table)


def test_one_percent_changed_is_a_one_percent_delta_in_large_chunks(ddb: Any, s3_vault: Vault) -> None:
    simple_table(ddb, "big")
    rng = random.Random(3)
    items = [{"pk": {"S": f"b{n:05d}"}, "body": {"S": rng.randbytes(300).hex()}} for n in range(4000)]
    put_all(ddb, "big", items)
    day1 = run_table_backup(s3_vault, "dynamodb://big", sleep=NO_SLEEP)
    for changed in rng.sample(items, 40):
        ddb.put_item(TableName="big", Item={**changed, "body": {"S": rng.randbytes(300).hex()}})
    day2 = run_table_backup(s3_vault, "dynamodb://big", sleep=NO_SLEEP)
    assert layer_counts(s3_vault, day2) == [2]
    keys = [e.key for e in iter_entries(s3_vault, day2)]
    assert keys == [
        "segment/00000/layer/000/part/0000",
        "segment/00000/layer/001/delete",
        "segment/00000/layer/001/put",
    ]
    # 4000 items of ~620 bytes: 2.5 MB in chunks of >= 128 KiB; the delta holds the 40 changed items only.
    assert day1.stats.new_chunks <= 2.5e6 / (128 * 1024) + 2
    growth = day2.stats.bytes_stored / day1.stats.bytes_stored
    assert growth < 0.03, f"day 2 stored {growth:.1%} of day 1"
    assert restored(s3_vault, day2) == table_lines(ddb, "big")


def test_a_segment_rebases_at_its_turn_when_its_chain_is_full_and_when_its_deltas_outgrow_the_base(
    ddb: Any, s3_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layers, "MAX_LAYERS", 3)
    simple_table(ddb, "cycle")
    put_all(ddb, "cycle", [item(n) for n in range(200)])
    options = BackupOptions(segments=3)
    counts = []
    for day in range(6):
        put_all(ddb, "cycle", [item(n, day) for n in range(day, 200, 10)])  # 10%: some in every segment
        rp = run_table_backup(s3_vault, "dynamodb://cycle", options, sleep=NO_SLEEP)
        counts.append(layer_counts(s3_vault, rp))
        assert restored(s3_vault, rp) == table_lines(ddb, "cycle")
    # Segment s re-bases when (generation + s) % 3 == 0: one segment in three each day, none past 3 layers.
    assert counts == [[1, 1, 1], [2, 2, 1], [3, 1, 2], [1, 2, 3], [2, 3, 1], [3, 1, 2]]
    # Without changes, segment 0 re-bases at its turn, 1 and 2 keep their chains as they are (no empty layer).
    rp = run_table_backup(s3_vault, "dynamodb://cycle", options, sleep=NO_SLEEP)
    assert layer_counts(s3_vault, rp) == [1, 1, 2]
    # Changing more than MAX_DELTA_SHARE of a segment re-bases it at once.
    put_all(ddb, "cycle", [item(n, 99) for n in range(200)])
    rp = run_table_backup(s3_vault, "dynamodb://cycle", options, sleep=NO_SLEEP)
    assert layer_counts(s3_vault, rp) == [1, 1, 1]
    assert restored(s3_vault, rp) == table_lines(ddb, "cycle")


def test_forgetting_the_base_keeps_every_chunk_its_deltas_need(ddb: Any, s3_vault: Vault) -> None:
    simple_table(ddb, "kept")
    put_all(ddb, "kept", [item(n) for n in range(300)])
    base = run_table_backup(s3_vault, "dynamodb://kept", sleep=NO_SLEEP)
    ddb.put_item(TableName="kept", Item=item(7, 1))
    ddb.delete_item(TableName="kept", Key={"pk": {"S": "k00008"}})
    delta = run_table_backup(s3_vault, "dynamodb://kept", sleep=NO_SLEEP)
    assert layer_counts(s3_vault, delta) == [2]
    report = forget_staged(s3_vault, [], every_source=RetentionPolicy(keep_last=1))
    assert report.removed == [base.id] and report.kept == 1
    prune(s3_vault)
    s3_vault.reload_index()
    # The delta names the base's chunks itself: prune kept them, and it restores bit-exact.
    restore_table(s3_vault, delta, "dynamodb://kept-copy", sleep=NO_SLEEP)
    assert table_lines(ddb, "kept-copy") == table_lines(ddb, "kept")


def _without(vault: Vault, rp: RecoveryPoint, drop: str) -> RecoveryPoint:
    """A copy of ``rp`` whose manifest lacks the entry ``drop`` (a writer bug or a damaged vault)."""
    entries = [e for e in iter_entries(vault, rp) if e.key != drop]
    with BlobWriter(vault) as writer:
        blobs, count = write_entries(writer, Chunker(vault.config.chunker), entries)
        writer.flush()
    broken = rp.model_copy(update={"id": new_recovery_point_id(rp.time), "entry_blobs": blobs, "entry_count": count})
    commit_recovery_point(vault, broken)
    return broken


def test_restore_with_a_missing_link_fails_clearly_before_writing(ddb: Any, s3_vault: Vault) -> None:
    simple_table(ddb, "links")
    put_all(ddb, "links", [item(n) for n in range(100)])
    run_table_backup(s3_vault, "dynamodb://links", sleep=NO_SLEEP)
    ddb.put_item(TableName="links", Item=item(1, 1))
    run_table_backup(s3_vault, "dynamodb://links", sleep=NO_SLEEP)
    ddb.put_item(TableName="links", Item=item(2, 1))
    day3 = run_table_backup(s3_vault, "dynamodb://links", sleep=NO_SLEEP)
    assert layer_counts(s3_vault, day3) == [3]
    broken = _without(s3_vault, day3, "segment/00000/layer/001/put")
    with pytest.raises(IntegrityError, match=r"segment 0 is incomplete \(missing: layer 1 put\)"):
        restore_table(s3_vault, broken, "dynamodb://links-copy", sleep=NO_SLEEP)
    with pytest.raises(IntegrityError, match="segment 0 is incomplete"):
        list(iter_table_items(s3_vault, broken))
    assert "links-copy" not in ddb.list_tables()["TableNames"]
    # A chunk that no pack holds any more (a base pruned by a tool that ignored this manifest) is refused alike.
    entries = list(iter_entries(s3_vault, day3))
    gone = entries[0].model_copy(update={"chunks": ["ab" * 32, *entries[0].chunks[1:]]})
    with BlobWriter(s3_vault) as writer:
        blobs, _ = write_entries(writer, Chunker(s3_vault.config.chunker), [gone, *entries[1:]])
        writer.flush()
    damaged = day3.model_copy(update={"id": new_recovery_point_id(day3.time), "entry_blobs": blobs})
    commit_recovery_point(s3_vault, damaged)
    with pytest.raises(IntegrityError, match="in no pack of the vault"):
        restore_table(s3_vault, damaged, "dynamodb://links-copy", sleep=NO_SLEEP)
    with pytest.raises(IntegrityError, match="segment 0 is incomplete"):
        steps.restore_prepare(
            s3_vault, PrepareEvent(request={"recovery_point": broken.id, "target": "dynamodb://links-copy"})
        )
    assert "links-copy" not in ddb.list_tables()["TableNames"]


def test_the_state_machine_steps_write_and_restore_deltas(ddb: Any, s3_vault: Vault) -> None:
    simple_table(ddb, "steps")
    put_all(ddb, "steps", [item(n) for n in range(120)])
    staged_layers: list[int] = []

    def backup() -> RecoveryPoint:
        request = {"source": {"type": "dynamodb", "url": "dynamodb://steps", "options": {"segments": 2}}}
        prepared = steps.prepare(s3_vault, PrepareEvent(request=request))
        # Prepare stages each segment's parent layers: a worker reads its own, not the parent's whole manifest.
        staged_layers.append(len(list(s3_vault.storage.list(f"staging/{prepared.recovery_point}/parent-layers/"))))
        work = json.loads(s3_vault.storage.get(str(prepared.work_list_key).split("vaults/main/", 1)[1]))
        for work_item in work:
            event = models.SegmentWorkerEvent(recovery_point=prepared.recovery_point, item=work_item)
            assert steps.segment_worker(s3_vault, event, sleep=NO_SLEEP).done
        committed = steps.commit(s3_vault, models.TableCommitEvent(prepared=prepared))
        return load_recovery_point(s3_vault, committed.recovery_point)

    backup()
    ddb.put_item(TableName="steps", Item=item(3, 1))
    ddb.delete_item(TableName="steps", Key={"pk": {"S": "k00004"}})
    rp = backup()
    assert 2 in layer_counts(s3_vault, rp)  # a delta on the segment that changed (an unchanged one keeps 1 layer)
    assert staged_layers == [0, 2] and not list(s3_vault.storage.list(f"staging/{rp.id}/"))
    prepared = steps.restore_prepare(
        s3_vault, PrepareEvent(request={"recovery_point": rp.id, "target": "dynamodb://steps-copy"})
    )
    work = json.loads(s3_vault.storage.get(prepared.work_list_key.split("vaults/main/", 1)[1]))
    assert [w["entry_key"] for w in work] == ["segment/00000/", "segment/00001/"]
    for work_item in work:
        steps.restore_worker(s3_vault, models.TableRestoreWorkerEvent(restore_id=prepared.restore_id, item=work_item))
    finished = steps.restore_finish(s3_vault, models.TableRestoreFinishEvent(prepared=prepared))
    assert finished.items == 119
    assert table_lines(ddb, "steps-copy") == table_lines(ddb, "steps")


def test_a_version_1_vault_keeps_scan_order_streams_and_a_first_layered_backup_is_a_base(
    ddb: Any, s3_vault: Vault
) -> None:
    simple_table(ddb, "old")
    put_all(ddb, "old", [item(n) for n in range(50)])
    current = s3_vault.config.version
    s3_vault.config = s3_vault.config.model_copy(update={"version": 1})
    v1 = run_table_backup(s3_vault, "dynamodb://old", sleep=NO_SLEEP)
    assert table_info(v1).stream_layout == "scan-order"
    assert [e.key for e in iter_entries(s3_vault, v1)] == ["segment/00000/part/0000"]
    s3_vault.config = s3_vault.config.model_copy(update={"version": current})
    ddb.put_item(TableName="old", Item=item(1, 1))
    v2 = run_table_backup(s3_vault, "dynamodb://old", sleep=NO_SLEEP)
    assert v2.parent == v1.id and layer_counts(s3_vault, v2) == [1]
    assert restored(s3_vault, v2) == table_lines(ddb, "old")
    restore_table(s3_vault, v1, "dynamodb://old-copy", sleep=NO_SLEEP)
    assert len(scan_all(ddb, "old-copy")) == 50
