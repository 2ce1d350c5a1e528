"""One Vaultline engine step per process, so each step's peak RSS is its own.

Usage: ``engine_steps.py {init-backup,backup,restore,check} VAULT_DIR [SOURCE_OR_TARGET_DIR]``, or
``engine_steps.py verify-item VAULT_DIR BATCH_JSON`` (one Maintenance verify item over a pack batch). Prints one
JSON line: the step's own seconds (measured around the step, interpreter start-up excluded), its peak RSS (VmHWM)
and what the engine reported.

The backup and restore steps run the ``vaultline`` command itself (``vaultline.cli.main.main``, with ``--json``, in
this process), so they import what a user's ``vaultline backup`` or ``restore`` imports, not less: an earlier
runner that called the operations directly skipped the CLI's own imports (its consoles, the stack client) and
measured a start-up no user had. ``main()`` is also an interface every tree has, which lets ``engine_ab.py`` run
this one runner against another checkout. check and verify-item call the operations, as the Maintenance steps do.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Nothing of the engine at module level: each step imports what it runs, as the CLI's subcommands do (a restore
# process never imported the backup's chunker or the checker: 0.1-0.2 s of a 256 MiB restore's wall time, measured).


def vm_hwm_mib() -> float:
    """Peak resident set size of this process so far, from /proc (MiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def vaultline(*argv: str) -> dict[str, Any]:
    """Run ``vaultline ARGV --json`` in this process; return the JSON document it printed."""
    from vaultline.cli.main import main

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main([*argv, "--json"])
    if code != 0:
        raise SystemExit(f"vaultline {' '.join(argv)} exited with {code}")
    doc: dict[str, Any] = json.loads(printed.getvalue())
    return doc


def backup(vault_dir: str, source_dir: str) -> dict[str, Any]:
    """``vaultline --vault VAULT_DIR backup SOURCE_DIR``; return the recovery point's statistics."""
    doc = vaultline("--vault", vault_dir, "backup", source_dir)
    names = ("objects", "bytes", "bytes_read", "bytes_stored", "new_chunks", "duplicate_chunks", "packs")
    return {"rp": doc["recovery_point"], **{name: doc[name] for name in names}}


def step_init_backup(vault_dir: str, source_dir: str) -> dict[str, Any]:
    vaultline("--vault", vault_dir, "init")
    return backup(vault_dir, source_dir)


def step_backup(vault_dir: str, source_dir: str) -> dict[str, Any]:
    return backup(vault_dir, source_dir)


def step_restore(vault_dir: str, source_dir: str, target_dir: str) -> dict[str, Any]:
    """``vaultline --vault VAULT_DIR restore latest --to TARGET_DIR``: the bench's vaults hold recovery points of
    ``source_dir`` alone, so the latest is that source's (the benches compare the target with it afterwards)."""
    doc = vaultline("--vault", vault_dir, "restore", "latest", "--to", target_dir)
    return {"objects": doc["objects"], "bytes": doc["bytes"], "unmappable": len(doc["unmappable_keys"])}


def step_check(vault_dir: str) -> dict[str, Any]:
    """``check --read-data``: every pack read, every blob decoded and verified."""
    from vaultline.operations.check import check_vault
    from vaultline.repository.vault import Vault
    from vaultline.storage.local import LocalStorage

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
    from vaultline.repository.vault import Vault
    from vaultline.storage.local import LocalStorage

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
