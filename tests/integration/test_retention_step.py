"""The backup's Retention step: the committed source's keep rules, applied within a bounded number of header reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import count_manifest_reads
from vaultline.operations.backup import run_backup
from vaultline.repository.manifest import list_recovery_points
from vaultline.repository.vault import Vault
from vaultline.runs import maintenance_steps
from vaultline.runs.maintenance_models import RetentionEvent
from vaultline.sources import open_source
from vaultline.storage import LocalStorage


@pytest.fixture
def vault_of_four(tmp_path: Path) -> tuple[Vault, str]:
    vault = Vault.init(LocalStorage(tmp_path / "vault"))
    src = tmp_path / "src"
    src.mkdir()
    for n in range(4):
        (src / "f").write_bytes(f"version {n}".encode())
        rp = run_backup(vault, open_source(str(src)))
    return vault, rp.source


def _event(source: str, rules: dict[str, int]) -> RetentionEvent:
    return RetentionEvent(retention=rules, committed={"source": source})


def test_the_committed_sources_rules_are_applied(vault_of_four: tuple[Vault, str]) -> None:
    vault, source = vault_of_four
    result = maintenance_steps.apply_retention(vault, _event(source, {"keep_last": 2}))
    assert (result.applied, result.deferred, len(result.removed), result.kept) == (True, False, 2, 2)
    assert len(list_recovery_points(vault)) == 2


def test_a_vault_past_the_steps_reach_defers_to_the_maintenance_reading_no_header(
    vault_of_four: tuple[Vault, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    vault, source = vault_of_four
    monkeypatch.setattr(maintenance_steps, "RETENTION_STEP_MAX_POINTS", 3)
    reads = count_manifest_reads(monkeypatch, LocalStorage)
    result = maintenance_steps.apply_retention(vault, _event(source, {"keep_last": 2}))
    assert (result.applied, result.deferred, result.recovery_points, result.removed) == (False, True, 4, [])
    assert reads == [] and len(list_recovery_points(vault)) == 4


def test_a_plan_without_rules_applies_nothing_and_counts_nothing(vault_of_four: tuple[Vault, str]) -> None:
    vault, source = vault_of_four
    result = maintenance_steps.apply_retention(vault, _event(source, {}))
    assert (result.applied, result.deferred, result.recovery_points) == (False, False, 0)
