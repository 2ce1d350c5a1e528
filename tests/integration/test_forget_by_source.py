"""Forget across many sources reads each manifest header once, and deletes what each source's rules drop."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaultline.operations.backup import run_backup
from vaultline.repository.layout import MANIFEST_PREFIX
from vaultline.repository.manifest import list_recovery_points
from vaultline.repository.vault import Vault
from vaultline.runs import maintenance_steps
from vaultline.runs.maintenance_models import MaintenanceInput, SourcePolicy
from vaultline.sources import open_source
from vaultline.storage import LocalStorage


def test_maintenance_forget_reads_every_header_once_whatever_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = Vault.init(LocalStorage(tmp_path / "vault"))
    sources = []
    for name in ("a", "b", "c"):
        src = tmp_path / name
        src.mkdir()
        for n in range(3):
            (src / "f").write_bytes(f"{name}{n}".encode())
            run_backup(vault, open_source(str(src)))
        sources.append(open_source(str(src)).url)
    reads: list[str] = []
    get = LocalStorage.get

    def counting(self: LocalStorage, key: str) -> bytes:
        if key.startswith(MANIFEST_PREFIX):
            reads.append(key)
        return get(self, key)

    monkeypatch.setattr(LocalStorage, "get", counting)
    event = MaintenanceInput(
        policies=[
            SourcePolicy(source=sources[0], rules={"keep_last": 1}),
            SourcePolicy(source=sources[1], rules={"keep_last": 2}),
            SourcePolicy(source=sources[2], rules={}),  # no rules: left alone
        ]
    )
    result = maintenance_steps.forget(Vault.open(vault.storage), event)
    assert sorted(reads) == sorted(set(reads)) and len(reads) == 9
    assert (result.sources, result.removed_count, result.kept, result.skipped) == (2, 3, 3, [sources[2]])
    left = [rp.source for rp in list_recovery_points(Vault.open(vault.storage))]
    assert sorted(left) == sorted([sources[0]] + [sources[1]] * 2 + [sources[2]] * 3)
