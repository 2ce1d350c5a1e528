"""The Maintenance Drill stage's steps (plan, items, summary) on a vault in moto S3, driven as the map drives them."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from vaultline.errors import IntegrityError
from vaultline.operations import drill as drill_operation
from vaultline.operations.backup import run_backup
from vaultline.repository import layout
from vaultline.repository.layout import pack_key
from vaultline.repository.packs import list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.runs import drill_steps
from vaultline.runs.maintenance_models import (
    DrillItemEvent,
    DrillPlanned,
    DrillResult,
    DrillSummaryEvent,
    DrillWorkItem,
    MaintenanceInput,
)
from vaultline.runs.protocol import StagedRun
from vaultline.sources import open_source

SCRATCH = "s3://scratch/drill-scratch"


@pytest.fixture
def vault(s3_vault: Vault, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Vault:
    """One recovery point of ten files; drills cut it into items of four entries, restored two at a time."""
    s3.create_bucket(Bucket="scratch")
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}").write_bytes(random.Random(i).randbytes(30_000 + i))
    run_backup(s3_vault, open_source(str(src)))
    monkeypatch.setattr(drill_operation, "ENTRIES_PER_ITEM", 4)
    monkeypatch.setattr(drill_operation, "SLICE_ENTRIES", 2)
    return Vault.open(s3_vault.storage)


def _drill(vault: Vault, remaining_ms: Any = None, skip: int | None = None) -> tuple[DrillPlanned, int]:
    planned = drill_steps.plan(vault, MaintenanceInput.model_validate({"drill": {"enabled": True, "scratch": SCRATCH}}))
    staged = StagedRun(vault, planned.run_id, DrillPlanned)
    work = [DrillWorkItem.model_validate(w) for w in json.loads(vault.storage.get(staged.key(layout.WORK_LIST)))]
    invocations = 0
    for item in work:
        if item.item == skip:
            continue
        event = DrillItemEvent(run_id=planned.run_id, item=item)
        while True:
            invocations += 1
            result = drill_steps.item(vault, DrillItemEvent.model_validate_json(event.model_dump_json()), remaining_ms)
            if result.done:
                break
            assert result.next is not None
            event = result.next
    return planned, invocations


def _summary(vault: Vault, planned: DrillPlanned) -> DrillResult:
    return drill_steps.summary(vault, DrillSummaryEvent(drilling=planned))


def test_a_drill_restores_every_object_into_scratch_compares_and_cleans_up(vault: Vault, s3: Any) -> None:
    planned, invocations = _drill(vault)
    result = _summary(vault, planned)

    assert planned.items == 3 and invocations == 3
    assert result.ok and result.verified == result.objects == 10 and result.mismatches == [], result
    assert result.cleaned_up and s3.list_objects_v2(Bucket="scratch").get("KeyCount", 0) == 0
    assert not list(vault.storage.list(layout.STAGING_PREFIX))


def test_a_tiny_time_budget_loops_each_item_a_slice_at_a_time_to_the_same_result(vault: Vault) -> None:
    planned, invocations = _drill(vault, remaining_ms=lambda: 0)
    result = _summary(vault, planned)

    assert invocations == 5  # items of 4, 4 and 2 entries, two entries a slice
    assert result.ok and result.verified == 10


def test_a_damaged_pack_is_a_mismatch_not_a_failed_step(vault: Vault) -> None:
    victim = sorted(list_pack_ids(vault.storage))[0]
    data = bytearray(vault.storage.get(pack_key(victim)))
    data[5] ^= 0xFF
    vault.storage.put(pack_key(victim), bytes(data))

    result = _summary(vault, _drill(vault)[0])

    assert not result.ok and result.mismatch_count >= 1 and result.mismatches, result


def test_a_missing_result_fails_the_summary(vault: Vault) -> None:
    planned, _ = _drill(vault, skip=2)

    with pytest.raises(IntegrityError, match=r"results of 1 work items \['000002'\] are missing"):
        _summary(vault, planned)
