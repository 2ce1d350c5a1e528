"""The Maintenance state machine's input model and the plans' keep rules as the engine's policy."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from vaultline.errors import UsageError
from vaultline.operations.check import PackSubset
from vaultline.operations.retention import Duration
from vaultline.plans import KeepRules
from vaultline.repository.layout import LOCK_PREFIX
from vaultline.repository.locks import VaultLocked, acquire
from vaultline.repository.packs import BlobEntry
from vaultline.repository.sharded_index import ShardedIndex, list_generations
from vaultline.repository.vault import Vault
from vaultline.runs.maintenance_models import MaintenanceInput
from vaultline.runs.maintenance_steps import compact, retention_policy


def test_plan_rules_become_the_engine_policy_with_weeks_as_days() -> None:
    rules = KeepRules(keep_last=2, keep_within="1y2w3d4h").rules()
    policy = retention_policy(rules)
    assert policy is not None
    assert policy.keep_last == 2 and policy.keep_daily == 0
    assert policy.keep_within == Duration(years=1, days=17, hours=4)


def test_no_rules_means_nothing_to_apply_not_forget_everything() -> None:
    assert retention_policy(KeepRules().rules()) is None
    assert retention_policy({}) is None


def test_maintenance_input_defaults_and_ignores_results_of_earlier_steps() -> None:
    parsed = MaintenanceInput.model_validate({"policies": [], "results": {"forget": {"removed": []}}})
    assert parsed.prune is True and parsed.verify.parts == 7 and parsed.drill.enabled is False


@pytest.mark.parametrize("subset", ["2/7", "10%", "100%"])
def test_verify_subset_accepts_parts_and_percentages(subset: str) -> None:
    assert str(MaintenanceInput.model_validate({"verify": {"subset": subset}}).verify.subset) == subset


def test_verify_subset_refuses_anything_else() -> None:
    with pytest.raises(ValidationError, match=r"expected n/m .* or a percentage"):
        MaintenanceInput.model_validate({"verify": {"subset": "half"}})


@pytest.mark.parametrize("subset", ["3/2", "0/3", "0%", "101%"])
def test_verify_subset_refuses_what_check_refuses_when_the_input_is_read(subset: str) -> None:
    # One parser for the CLI, check and the Maintenance input: a spec the check cannot read fails validation,
    # before the step opens the vault.
    with pytest.raises(ValidationError, match=r"expected n/m"):
        MaintenanceInput.model_validate({"verify": {"subset": subset}})
    with pytest.raises(UsageError, match=r"--read-data-subset"):
        PackSubset.parse(subset)


def test_without_a_subset_verify_rotates_over_the_parts_by_run() -> None:
    verify = MaintenanceInput.model_validate({"verify": {"parts": 3}}).verify
    assert [str(verify.model_copy(update={"run": run}).pack_subset()) for run in range(4)] == [
        "1/3",
        "2/3",
        "3/3",
        "1/3",
    ]
    assert MaintenanceInput.model_validate({"verify": {"subset": "2/7", "run": 5}}).verify.pack_subset() == PackSubset(
        part=2, parts=7
    )


def _index_objects(vault: Vault, count: int) -> list[bytes]:
    ids = []
    for _ in range(count):
        blob_id = os.urandom(32)
        ids.append(blob_id)
        vault.write_index([(os.urandom(32).hex(), [BlobEntry(blob_id, 0, 0, 0, 10, 10)])])
    return ids


def test_compact_writes_a_generation_the_next_worker_uses_then_nothing_while_it_is_complete(s3_vault: Vault) -> None:
    ids = _index_objects(s3_vault, 3)
    first = compact(s3_vault, MaintenanceInput())
    assert not first.up_to_date and first.generation is not None
    assert (first.index_objects, first.blobs, first.packs) == (3, 3, 3) and first.bytes_written > 0
    reopened = Vault.open(s3_vault.storage)
    lookup = reopened.lookup
    assert isinstance(lookup, ShardedIndex) and lookup.catalog.generation == first.generation
    assert all(lookup.get(blob_id) is not None for blob_id in ids)
    # Its shared lock is released: nothing of the compaction is left under locks/.
    assert list(s3_vault.storage.list(LOCK_PREFIX)) == []

    written = sorted(o.key for o in s3_vault.storage.list(""))
    again = compact(reopened, MaintenanceInput())
    assert again.up_to_date and again.generation == first.generation and again.bytes_written == 0
    assert sorted(o.key for o in s3_vault.storage.list("")) == written


def test_compact_supersedes_the_generation_once_a_backup_adds_an_index_object(s3_vault: Vault) -> None:
    _index_objects(s3_vault, 2)
    first = compact(s3_vault, MaintenanceInput())
    _index_objects(s3_vault, 1)
    second = compact(Vault.open(s3_vault.storage), MaintenanceInput())
    assert not second.up_to_date and second.index_objects == 3 and second.generation != first.generation
    # Compaction deletes nothing: the superseded generation stays until a prune retires it.
    assert list_generations(s3_vault.storage) == sorted([first.generation, second.generation])


def test_compact_waits_for_a_prune_holding_the_exclusive_lock_and_writes_nothing(s3_vault: Vault) -> None:
    _index_objects(s3_vault, 1)
    held = acquire(s3_vault.storage, "prune", exclusive=True)
    with pytest.raises(VaultLocked):
        compact(s3_vault, MaintenanceInput())
    assert list_generations(s3_vault.storage) == []
    assert [o.key for o in s3_vault.storage.list(LOCK_PREFIX)] == [held.key]


def test_compact_runs_beside_a_backup_holding_the_shared_lock(s3_vault: Vault) -> None:
    _index_objects(s3_vault, 1)
    backup = acquire(s3_vault.storage, "backup", exclusive=False)
    assert compact(s3_vault, MaintenanceInput()).generation is not None
    assert [o.key for o in s3_vault.storage.list(LOCK_PREFIX)] == [backup.key]
