"""The Maintenance Verify stage's steps (plan, items, summary) on a vault in moto S3, driven as the map drives them."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import set_pack_size
from vaultline.errors import IntegrityError
from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.prune import PruneOptions
from vaultline.operations.prune import prune as prune_vault
from vaultline.repository import layout, locks
from vaultline.repository.layout import pack_key
from vaultline.repository.locks import VaultLocked
from vaultline.repository.packs import BlobType, list_pack_ids
from vaultline.repository.vault import Vault
from vaultline.runs import verify_steps
from vaultline.runs.backup_steps import abort
from vaultline.runs.maintenance_models import (
    MaintenanceInput,
    VerifyItemEvent,
    VerifyPlanned,
    VerifyResult,
    VerifySummaryEvent,
    VerifyWorkItem,
)
from vaultline.runs.models import AbortEvent
from vaultline.runs.protocol import StagedRun
from vaultline.sources import open_source


@pytest.fixture
def vault(s3_vault: Vault, tmp_path: Path) -> Vault:
    """Three recovery points of a churning directory, in packs of about three files each."""
    vault = set_pack_size(s3_vault, 60_000)
    src = tmp_path / "src"
    src.mkdir()
    for generation in range(3):
        for i in range(9):
            if generation == 0 or i % 3 == generation:
                (src / f"f{i}").write_bytes(random.Random(generation * 10 + i).randbytes(20_000))
        run_backup(vault, open_source(str(src)))
    return Vault.open(vault.storage)


def _input(subset: str = "100%") -> MaintenanceInput:
    return MaintenanceInput.model_validate({"verify": {"subset": subset}})


def _work(vault: Vault, planned: VerifyPlanned) -> list[VerifyWorkItem]:
    """The work list as the map's ItemReader reads it."""
    staged = StagedRun(vault, planned.run_id, VerifyPlanned)
    return [VerifyWorkItem.model_validate(w) for w in json.loads(vault.storage.get(staged.key(layout.WORK_LIST)))]


def _map(
    vault: Vault, planned: VerifyPlanned, remaining_ms: Callable[[], int] | None = None, skip: int | None = None
) -> int:
    """Run every item as the map does, looping an item on its ``next`` until done; return the invocations."""
    invocations = 0
    for work in _work(vault, planned):
        if work.item == skip:
            continue
        event = VerifyItemEvent(run_id=planned.run_id, item=work)
        while True:
            invocations += 1
            # Through JSON, as the state machine hands the cursor back in.
            result = verify_steps.item(
                vault, VerifyItemEvent.model_validate_json(event.model_dump_json()), remaining_ms
            )
            if result.done:
                break
            assert result.next is not None
            event = result.next
    return invocations


def _verify(vault: Vault, subset: str = "100%", remaining_ms: Callable[[], int] | None = None) -> VerifyResult:
    planned = verify_steps.plan(vault, _input(subset))
    _map(vault, planned, remaining_ms)
    return verify_steps.summary(vault, VerifySummaryEvent(verifying=planned))


def _staging(vault: Vault) -> list[str]:
    return [obj.key for obj in vault.storage.list(layout.STAGING_PREFIX)]


def test_a_sound_vault_verifies_every_pack_and_recovery_point_and_leaves_no_staging(vault: Vault) -> None:
    result = _verify(vault)

    assert result.ok and result.error_count == 0 and result.errors == [], result
    assert result.packs_read == len(list_pack_ids(vault.storage)) > 3
    assert result.recovery_points == 3 and result.objects == 27
    assert result.subset == "100%" and result.items >= 2
    assert _staging(vault) == []


def test_a_subset_reads_only_its_part_and_the_parts_add_up_to_every_pack(vault: Vault) -> None:
    parts = [_verify(vault, f"{n}/3").packs_read for n in (1, 2, 3)]

    assert sum(parts) == len(list_pack_ids(vault.storage))


def test_an_item_finds_a_corrupt_pack_and_the_summary_reports_it_without_failing(vault: Vault) -> None:
    victim = sorted(list_pack_ids(vault.storage))[1]
    data = bytearray(vault.storage.get(pack_key(victim)))
    data[10] ^= 0xFF
    vault.storage.put(pack_key(victim), bytes(data))

    result = _verify(vault)

    assert not result.ok and result.error_count >= 2, result  # the pack's hash and the blob it holds
    assert all(victim[:16] in error for error in result.errors), result.errors


def _data_pack(vault: Vault) -> str:
    """A pack that holds object data only (no manifest blob: losing it leaves the manifests readable)."""
    return next(p for p in sorted(vault.index.packs) if all(e.type == BlobType.DATA for e in vault.index.packs[p]))


def test_a_missing_pack_is_named_by_the_plan_and_by_every_entry_that_needs_it(vault: Vault) -> None:
    victim = _data_pack(vault)
    vault.storage.delete(pack_key(victim))

    result = _verify(vault)

    assert f"pack {victim} is indexed but missing from storage" in result.errors
    assert any(f"pack {victim} is missing" in error for error in result.errors), result.errors
    assert result.error_count == len(check_vault(vault, read_data=True).errors)


def test_a_missing_result_fails_the_summary_and_keeps_the_run_for_a_look(vault: Vault) -> None:
    planned = verify_steps.plan(vault, _input())
    _map(vault, planned, skip=1)

    with pytest.raises(IntegrityError, match=r"results of 1 work items \['000001'\] are missing"):
        verify_steps.summary(vault, VerifySummaryEvent(verifying=planned))
    assert _staging(vault)


def test_a_tiny_time_budget_loops_the_items_on_their_cursors_to_the_same_result(vault: Vault) -> None:
    victim = sorted(list_pack_ids(vault.storage))[2]
    data = bytearray(vault.storage.get(pack_key(victim)))
    data[-20] ^= 0xFF
    vault.storage.put(pack_key(victim), bytes(data))
    unbudgeted = _verify(vault)

    planned = verify_steps.plan(vault, _input())
    invocations = _map(vault, planned, remaining_ms=lambda: 0)
    budgeted = verify_steps.summary(vault, VerifySummaryEvent(verifying=planned))

    # No time left: each invocation verifies one pack or one recovery point, and still gets there.
    assert invocations == budgeted.packs_read + budgeted.recovery_points > planned.items
    assert budgeted == unbudgeted
    assert not budgeted.ok


def test_the_cli_check_runs_the_same_pieces_and_finds_the_same(vault: Vault) -> None:
    victim = _data_pack(vault)
    vault.storage.delete(pack_key(victim))
    report = check_vault(vault, read_data=True)
    result = _verify(vault)

    assert (report.error_count, report.recovery_points, report.objects) == (
        result.error_count,
        result.recovery_points,
        result.objects,
    )
    assert sorted(report.errors) == sorted(result.errors)


def _locks(vault: Vault) -> list[str]:
    return [obj.key for obj in vault.storage.list(layout.LOCK_PREFIX)]


def test_a_running_verify_holds_the_shared_lock_so_prune_waits_and_the_summary_releases_it(vault: Vault) -> None:
    planned = verify_steps.plan(vault, _input())
    assert len(_locks(vault)) == 1
    # Prune would delete packs the verify's items are about to read (and report missing): it is refused.
    with pytest.raises(VaultLocked):
        prune_vault(vault, PruneOptions())
    _map(vault, planned)

    verify_steps.summary(vault, VerifySummaryEvent(verifying=planned))

    assert _locks(vault) == []


def test_a_failed_summary_leaves_the_lock_to_abort_which_releases_it_and_the_run(vault: Vault) -> None:
    planned = verify_steps.plan(vault, _input())
    _map(vault, planned, skip=1)
    with pytest.raises(IntegrityError):
        verify_steps.summary(vault, VerifySummaryEvent(verifying=planned))
    assert len(_locks(vault)) == 1

    # What the Maintenance machine's VerifyAbort hands the shared Abort function.
    abort(vault, AbortEvent(prepared={"run_id": planned.run_id}, error={"Error": "IntegrityError"}))

    assert _locks(vault) == [] and _staging(vault) == []


def test_a_plan_that_fails_releases_its_lock_and_what_it_staged(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise IntegrityError("the index is unreadable")

    monkeypatch.setattr(verify_steps, "CheckPlan", broken)
    with pytest.raises(IntegrityError):
        verify_steps.plan(vault, _input())
    assert _locks(vault) == [] and _staging(vault) == []


def test_the_cli_check_holds_the_shared_lock_and_is_refused_while_a_prune_holds_the_exclusive_one(
    vault: Vault,
) -> None:
    held = locks.acquire(vault.storage, "prune", exclusive=True)
    with pytest.raises(VaultLocked):
        check_vault(vault)
    locks.release(vault.storage, held.id)
    assert check_vault(vault).ok
    assert _locks(vault) == []
