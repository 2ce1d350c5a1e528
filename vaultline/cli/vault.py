"""The vault commands: init, list, ls, check."""

from __future__ import annotations

import argparse

from pydantic import ValidationError
from rich.table import Table

from vaultline.cli.context import open_vault, vault_url
from vaultline.cli.output import Column, emit_json, err, human_bytes, out, print_rows, transfer_progress
from vaultline.errors import UsageError
from vaultline.operations.check import PackSubset, check_vault
from vaultline.repository.manifest import ObjectEntry, entries_under, iter_recovery_points, resolve_recovery_point
from vaultline.repository.object_lock import ObjectLockSettings, create_object_lock
from vaultline.repository.vault import Vault
from vaultline.storage import open_storage


def _lock_settings(args: argparse.Namespace) -> ObjectLockSettings | None:
    """The bounded settings ``--object-lock`` and the ``--lock-*`` days ask for (UsageError when they disagree)."""
    days = (args.lock_days, args.lock_min_days, args.lock_max_days)
    if args.object_lock is None:
        if any(d is not None for d in days):
            raise UsageError("--lock-days, --lock-min-days and --lock-max-days need --object-lock")
        return None
    if args.lock_days is None:
        raise UsageError("--object-lock needs --lock-days N")
    try:
        return ObjectLockSettings.bounded(args.object_lock.upper(), *days)
    except ValidationError as exc:
        raise UsageError(f"--lock-days: {exc.errors()[0]['msg']}") from None


def cmd_init(args: argparse.Namespace) -> int:
    storage = open_storage(vault_url(args))
    lock = _lock_settings(args)
    if lock is not None:
        # Before anything is written: a vault must not come into being without the protection it was asked for.
        storage.require_object_lock("lock the vault's objects (--object-lock)")
    vault = Vault.init(storage, args.encryption, args.kms_key_id, args.compression_level)
    if lock is not None:
        create_object_lock(storage, lock)
    if args.json:
        emit_json(
            {
                "vault": vault.url,
                "vault_id": vault.config.vault_id,
                "encryption": args.encryption,
                "object_lock": lock.model_dump(mode="json") if lock else None,
            }
        )
    else:
        locking = f", Object Lock {lock.mode} for {lock.days} days" if lock else ""
        out.print(f"created vault {vault.config.vault_id} at {vault.url} (encryption: {args.encryption}{locking})")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    points = iter_recovery_points(open_vault(args))  # one header at a time: a large one names many blobs
    if args.json:
        emit_json(
            {
                "id": rp.id,
                "source": rp.source,
                "source_kind": rp.source_kind,
                "time": rp.time.isoformat(),
                "finished": rp.finished.isoformat(),
                "parent": rp.parent,
                "plan": rp.plan,
                "tags": rp.tags,
                "objects": rp.stats.objects,
                "bytes": rp.stats.bytes,
                "bytes_stored": rp.stats.bytes_stored,
                "status": rp.status,
                "issues": {"archived": rp.issues.archived, "vanished": rp.issues.vanished},
            }
            for rp in points
        )
        return 0
    table = Table("id", "time", "source", "objects", "size", "added", "status")
    for rp in points:
        table.add_row(
            rp.id,
            rp.time.strftime("%Y-%m-%d %H:%M:%S"),
            rp.source,
            str(rp.stats.objects),
            human_bytes(rp.stats.bytes),
            human_bytes(rp.stats.bytes_stored),
            f"with issues: {rp.issues.summary()}" if rp.issues.total else "completed",
        )
    out.print(table)
    return 0


LS_COLUMNS = (Column("last modified", 19), Column("size", 12, right=True), Column("etag", 34), Column("key"))


def cmd_ls(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    rp = resolve_recovery_point(vault, args.recovery_point)
    entries = entries_under(vault, rp, args.prefix or "")
    if args.json:
        emit_json(e.model_dump(mode="json", exclude={"chunks"}, exclude_defaults=True) for e in entries)
        return 0
    print_rows(LS_COLUMNS, (_ls_row(e) for e in entries))
    return 0


def _ls_row(entry: ObjectEntry) -> tuple[str, str, str, str]:
    modified = entry.last_modified.strftime("%Y-%m-%d %H:%M:%S") if entry.last_modified else ""
    return modified, str(entry.size), entry.etag or "", entry.key


def cmd_check(args: argparse.Namespace) -> int:
    subset = None if args.read_data_subset is None else PackSubset.parse(args.read_data_subset)
    vault = open_vault(args)
    reading = args.read_data or subset is not None
    with transfer_progress(not args.json and reading, "read data") as progress:
        report = check_vault(vault, read_data=args.read_data, progress=progress, read_data_subset=subset)
    if args.json:
        emit_json({"ok": report.ok, **report.model_dump()})
    else:
        for warning in report.warnings:
            err.print(f"[yellow]warning[/] {warning}")
        for error in report.errors:
            err.print(f"[red]error[/] {error}")
        unlisted = report.error_count - len(report.errors) + report.warning_count - len(report.warnings)
        if unlisted:
            err.print(f"[yellow]{unlisted} more errors and warnings not listed[/]")
        verdict = "no errors" if report.ok else f"{report.error_count} errors"
        detail = f", read {report.packs_read} packs ({human_bytes(report.bytes_read)})" if reading else ""
        out.print(
            f"checked {report.recovery_points} recovery points, {report.objects} objects, "
            f"{report.packs} packs, {report.blobs} blobs{detail}: {verdict}"
        )
    return 0 if report.ok else 1
