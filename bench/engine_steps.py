"""One Vaultline engine step per process, so each step's peak RSS is its own.

Usage: ``engine_steps.py {init-backup,backup,restore,check} VAULT_DIR [SOURCE_OR_TARGET_DIR]``, or
``engine_steps.py verify-item VAULT_DIR BATCH_JSON`` (one Maintenance verify item over a pack batch). Prints one
JSON line: the step's own seconds (measured around the engine call, interpreter start-up excluded), its peak RSS
(VmHWM) and what the engine reported.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vaultline.repository.vault import Vault
from vaultline.storage.local import LocalStorage

# Each step imports the operations it runs, as the CLI's subcommands do: a restore process never imported the
# backup's chunker or the checker (0.1-0.2 s of a 256 MiB restore's wall time on the bench box, measured).


def vm_hwm_mib() -> float:
    """Peak resident set size of this process so far, from /proc (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def backup(vault: Vault, source_dir: str) -> dict[str, Any]:
    """Back up ``source_dir`` into ``vault``; return the recovery point's statistics."""
    from vaultline.operations.backup import run_backup
    from vaultline.sources.local import LocalSource

    rp = run_backup(vault, LocalSource(source_dir))
    s = rp.stats
    return {
        "rp": rp.id,
        "objects": s.objects,
        "bytes": s.bytes,
        "bytes_read": s.bytes_read,
        "bytes_stored": s.bytes_stored,
        "new_chunks": s.new_chunks,
        "duplicate_chunks": s.duplicate_chunks,
        "packs": s.packs,
    }


def step_init_backup(vault_dir: str, source_dir: str) -> dict[str, Any]:
    return backup(Vault.init(LocalStorage(vault_dir)), source_dir)


def step_backup(vault_dir: str, source_dir: str) -> dict[str, Any]:
    return backup(Vault.open(LocalStorage(vault_dir)), source_dir)


def step_restore(vault_dir: str, source_dir: str, target_dir: str) -> dict[str, Any]:
    """Restore the latest recovery point of ``source_dir`` into ``target_dir``."""
    from vaultline.operations.restore import restore_entries, select_entries
    from vaultline.repository.manifest import latest_for_source
    from vaultline.targets import DirectoryTarget

    vault = Vault.open(LocalStorage(vault_dir))
    rp = latest_for_source(vault, str(Path(source_dir).resolve()))
    if rp is None:
        raise SystemExit(f"no recovery point for {source_dir}")
    outcome = restore_entries(vault, select_entries(vault, rp), DirectoryTarget(target_dir))
    return {"objects": outcome.stats.objects, "bytes": outcome.stats.bytes, "unmappable": outcome.stats.unmappable}


def step_check(vault_dir: str) -> dict[str, Any]:
    """``check --read-data``: every pack read, every blob decoded and verified."""
    from vaultline.operations.check import check_vault

    report = check_vault(Vault.open(LocalStorage(vault_dir)), read_data=True)
    return {
        "packs": report.packs,
        "blobs": report.blobs,
        "bytes_read": report.bytes_read,
        "errors": len(report.errors),
        "first_error": report.errors[0] if report.errors else None,
    }


def step_verify_item(vault_dir: str, batch_json: str) -> dict[str, Any]:
    """One verify item (``runs.verify_steps.item``'s work) over the pack batch in ``batch_json``: the item needs no
    index, so this is its whole footprint."""
    from vaultline.operations.check import PackBatch, verify_packs

    batch = PackBatch.model_validate_json(Path(batch_json).read_text())
    found = verify_packs(Vault.open(LocalStorage(vault_dir)), batch).findings
    return {
        "packs": found.packs_read,
        "bytes_read": found.bytes_read,
        "blobs": found.blobs_read,
        "errors": found.error_count,
    }


STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "init-backup": step_init_backup,
    "backup": step_backup,
    "restore": step_restore,
    "check": step_check,
    "verify-item": step_verify_item,
}


def main(argv: list[str]) -> int:
    step, *args = argv
    clock = time.perf_counter()
    result = STEPS[step](*args)
    result["seconds"] = time.perf_counter() - clock
    result["vm_hwm_mib"] = vm_hwm_mib()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
