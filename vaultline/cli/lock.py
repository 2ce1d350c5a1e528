"""The Object Lock commands: ``lock status`` (what is locked until when), ``lock extend`` (what maintenance runs)
and ``lock set`` (raise the settings; lowering them is refused).

Exit codes as everywhere: 0 done, 1 failed (a bucket without Object Lock, a damaged vault), 2 bad usage.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from pydantic import ValidationError
from rich.table import Table

from vaultline.cli.context import open_vault
from vaultline.cli.output import emit_json, out
from vaultline.errors import UsageError
from vaultline.operations.lock_extension import Counts, LockExtendOptions, extend_locks, lock_status
from vaultline.repository.locks import vault_lock
from vaultline.repository.object_lock import ObjectLockSettings, change_object_lock, load_object_lock


def _options(args: argparse.Namespace) -> LockExtendOptions:
    return LockExtendOptions(period_hours=args.period_hours, margin_hours=args.margin_hours)


def _date(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


def cmd_lock_status(args: argparse.Namespace) -> int:
    status = lock_status(open_vault(args), _options(args))
    if args.json:
        emit_json(status.model_dump(mode="json"))
        return 0
    settings = status.settings
    if not status.object_lock_enabled:
        out.print("the vault's storage has no S3 Object Lock: nothing is locked")
        return 0
    if settings is None:
        out.print("Object Lock is enabled on the bucket, but the vault locks nothing (no object-lock settings)")
    else:
        bounds = f", bounds {settings.min_days}..{settings.max_days} days" if settings.version == 2 else ""
        out.print(
            f"{settings.mode} for {settings.days} days{bounds}; next maintenance {_date(status.next_maintenance)}"
        )
    table = Table("prefix", "objects", "locked", "unlocked", "legal holds", "earliest until", "latest until", "lapsing")
    for p in status.prefixes:
        table.add_row(
            p.prefix, str(p.objects), str(p.locked), str(p.unlocked), str(p.legal_holds),
            _date(p.earliest), _date(p.latest), str(p.lapsing),
        )  # fmt: skip
    out.print(table)
    return 0


def _line(name: str, counts: Counts) -> str:
    return f"{name}: {counts.checked} checked, {counts.extended} extended, {counts.missing} missing"


def cmd_lock_extend(args: argparse.Namespace) -> int:
    report = extend_locks(open_vault(args), _options(args))
    if args.json:
        emit_json(report.model_dump(mode="json"))
        return 0
    if not report.enabled:
        out.print("the vault locks nothing (no object-lock settings): nothing to extend")
        return 0
    out.print(
        f"kept {report.recovery_points} recovery points locked until at least {_date(report.extend_before)} "
        f"({report.mode}; extended to {_date(report.retain_until)}): "
        + "; ".join(_line(n, c) for n, c in (("manifests", report.manifests), ("packs", report.packs)))
    )
    return 0


def _requested(args: argparse.Namespace, current: ObjectLockSettings | None) -> ObjectLockSettings:
    """The bounded settings ``lock set`` asks for: what it does not name, it keeps from ``current``."""
    mode = args.mode.upper() if args.mode else current.mode if current else None
    if mode is None:
        raise UsageError("the vault has no Object Lock settings yet: lock set needs --mode")
    kept = current if current is not None and current.version == 2 else None
    low = args.lock_min_days if args.lock_min_days is not None else kept.min_days if kept else None
    high = args.lock_max_days if args.lock_max_days is not None else kept.max_days if kept else None
    try:
        return ObjectLockSettings.bounded(mode, args.lock_days, low, high)
    except ValidationError as exc:
        raise UsageError(f"--lock-days: {exc.errors()[0]['msg']}") from None


def cmd_lock_set(args: argparse.Namespace) -> int:
    storage = open_vault(args).storage
    storage.require_object_lock("change the vault's Object Lock settings")
    # Under the vault's exclusive lock, prune's: a maintenance run (its prune, or a backup's shared lock) in
    # progress refuses it (VaultLocked, exit 1), so no prune sweep or finish decides by the settings it replaces
    # midway, and the settings are read and changed with no other `lock set` between.
    with vault_lock(storage, "lock-set", exclusive=True):
        # Refused (ObjectLockRefused, exit 2, nothing written) when it lowers the mode, the days below min_days,
        # min_days, or loosens max_days: the engine checks against every stored version, not only the current one.
        settings = change_object_lock(storage, _requested(args, load_object_lock(storage)))
    assert settings is not None  # a bounded record was just written
    if args.json:
        emit_json(settings.model_dump(mode="json"))
        return 0
    out.print(
        f"Object Lock {settings.mode} for {settings.days} days, bounds {settings.min_days}..{settings.max_days} "
        "days (applies to objects written and extended from now on)"
    )
    return 0
