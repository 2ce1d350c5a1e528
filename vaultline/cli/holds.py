"""The legal hold commands: ``hold add RP``, ``hold remove RP``, ``hold list [RP]``.

Exit codes as everywhere: 0 done, 1 failed (a vault without Object Lock, a hold left incomplete), 2 bad usage.
"""

from __future__ import annotations

import argparse

from rich.table import Table

from vaultline.cli.context import open_vault
from vaultline.cli.output import emit_json, err, out
from vaultline.operations.holds import HoldReport, add_hold, hold_status, list_holds, remove_hold
from vaultline.repository.manifest import resolve_recovery_point


def _emit(report: HoldReport, args: argparse.Namespace) -> None:
    if args.json:
        emit_json(report.model_dump(mode="json") | {"complete": report.complete})


def cmd_hold_add(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    report = add_hold(vault, resolve_recovery_point(vault, args.recovery_point).id, reason=args.reason or "")
    _emit(report, args)
    if not args.json:
        out.print(
            f"{report.recovery_point}: legal hold on all {report.objects} objects it needs "
            f"({report.changed} newly held); forget and prune leave them until `vaultline hold remove`"
        )
    return 0


def cmd_hold_remove(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    report = remove_hold(vault, resolve_recovery_point(vault, args.recovery_point).id)
    _emit(report, args)
    if not args.json:
        out.print(
            f"{report.recovery_point}: legal hold lifted from {report.changed} objects; "
            f"{report.kept_for_others} stay held for other held recovery points"
        )
    return 0


def cmd_hold_list(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    if args.recovery_point:
        report = hold_status(vault, resolve_recovery_point(vault, args.recovery_point).id)
        _emit(report, args)
        if not args.json:
            out.print(f"{report.recovery_point}: {report.state}; {report.held} of {report.objects} objects on hold")
        if not report.complete:
            err.print(
                f"[red]incomplete[/] {report.recovery_point}: {report.objects - report.held} objects it needs are "
                f"not on hold (first {report.not_held[0]}); run `vaultline hold add {report.recovery_point}`"
            )
            return 1
        return 0
    records = list_holds(vault)
    if args.json:
        emit_json([record.model_dump(mode="json") for record in records])
        return 0
    table = Table("recovery point", "state", "placed", "reason")
    for record in records:
        table.add_row(record.recovery_point, record.state, f"{record.placed:%Y-%m-%d %H:%M:%S}", record.reason)
    out.print(table)
    return 0
