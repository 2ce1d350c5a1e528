"""The maintenance commands of the CLI: forget, prune, stats, diff, drill, unlock.

``vaultline.cli.main.build_parser`` registers them through :func:`register`; they share its output helpers.
Exit codes as everywhere: 0 done, 1 failed (a lock held by another party, a damaged vault, a failed drill),
2 bad usage.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from vaultline.cli import main as cli
from vaultline.operations.diff import diff_recovery_points
from vaultline.operations.drill import restore_drill
from vaultline.operations.forget import forget
from vaultline.operations.prune import DEFAULT_REPACK_THRESHOLD, HeldObject, PruneOptions, PruneReport, prune
from vaultline.operations.retention import RetentionPolicy
from vaultline.operations.stats import S3_STANDARD_PER_GIB_MONTH, storage_cost, vault_stats
from vaultline.repository.locks import list_locks, release, remove_stale
from vaultline.repository.manifest import resolve_recovery_point


def _held_lines(held: list[HeldObject]) -> None:
    for item in held:
        until = "legal hold" if item.legal_hold else f"until {item.retain_until:%Y-%m-%d %H:%M:%S}Z"
        cli.err.print(f"[yellow]held[/] {item.key} ({item.mode or 'object lock'} retention {until}); deferred")


def _policy(args: argparse.Namespace) -> RetentionPolicy:
    return RetentionPolicy(
        keep_last=args.keep_last,
        keep_hourly=args.keep_hourly,
        keep_daily=args.keep_daily,
        keep_weekly=args.keep_weekly,
        keep_monthly=args.keep_monthly,
        keep_yearly=args.keep_yearly,
        keep_within=args.keep_within,
        keep_tags=args.keep_tag,
    )


def _prune_options(args: argparse.Namespace) -> PruneOptions:
    return PruneOptions(repack_threshold=args.repack_threshold, dry_run=args.dry_run)


def _print_prune(report: PruneReport) -> None:
    _held_lines(report.held)
    verb = "would free" if report.dry_run else "freed"
    cli.out.print(
        f"{report.recovery_points} recovery points, {report.live_blobs} live blobs; "
        f"packs {report.packs_before} -> {report.packs_after} "
        f"({report.packs_deleted + report.unindexed_packs_deleted} deleted, {report.packs_repacked} repacked into "
        f"{report.packs_written}); {verb} {cli._human_bytes(report.bytes_freed)} "
        f"({cli._human_bytes(report.bytes_before)} -> {cli._human_bytes(report.bytes_after)}); "
        f"{len(report.held)} objects held by Object Lock"
    )


def cmd_forget(args: argparse.Namespace) -> int:
    vault = cli._open(args)
    report = forget(vault, _policy(args), dry_run=args.dry_run)
    pruned = prune(vault, _prune_options(args)) if args.prune else None
    if args.json:
        doc: dict[str, Any] = report.model_dump(mode="json")
        doc["prune"] = pruned.model_dump(mode="json") if pruned else None
        cli._emit_json(doc)
        return 0
    table = Table("source", "recovery point", "time", "action", "kept by")
    for d in report.decisions:
        held = any(h.key.endswith(d.id) for h in report.held)
        action = "keep" if d.keep else ("held" if held else "remove")
        table.add_row(d.source, d.id, f"{d.time:%Y-%m-%d %H:%M:%S}", action, ", ".join(d.reasons))
    cli.out.print(table)
    _held_lines(report.held)
    verb = "would remove" if args.dry_run else "removed"
    cli.out.print(f"kept {len(report.kept)}, {verb} {len(report.removed)} recovery points, {len(report.held)} held")
    if pruned:
        _print_prune(pruned)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    report = prune(cli._open(args), _prune_options(args))
    if args.json:
        cli._emit_json(report.model_dump(mode="json"))
    else:
        _print_prune(report)
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    stats = vault_stats(cli._open(args))
    cost = storage_cost(stats, args.price_per_gib_month)
    if args.json:
        cli._emit_json(stats.model_dump(mode="json") | {"cost": cost.model_dump(mode="json")})
        return 0
    h = cli._human_bytes
    table = Table("source", "points", "latest", "latest size", "logical", "stored", "dedup", "compression")
    for s in stats.sources:
        table.add_row(
            s.source,
            str(s.recovery_points),
            s.latest,
            h(s.latest_bytes),
            h(s.logical_bytes),
            h(s.stored_bytes),
            f"{s.dedup_ratio:.2f}x",
            f"{s.compression_ratio:.2f}x",
        )
    cli.out.print(table)
    cli.out.print(
        f"{stats.recovery_points} recovery points; {stats.packs} packs, {stats.blobs} blobs, "
        f"{stats.index_objects} index objects; vault {h(stats.vault_bytes)} for {h(stats.logical_bytes)} backed up; "
        f"dedup {stats.dedup_ratio:.2f}x, compression {stats.compression_ratio:.2f}x; "
        f"garbage {h(stats.garbage_bytes)} ({stats.garbage_share:.1%}, prune frees it)"
    )
    cli.out.print(
        f"storage at ${cost.price_per_gib_month}/GiB-month: ${cost.vault_per_month:,.2f}/month "
        f"(prune would save ${cost.garbage_per_month:,.2f}); a plain copy per recovery point would cost "
        f"${cost.full_copies_per_month:,.2f}/month; requests, KMS and transfer not included",
        markup=False,
        highlight=False,
    )
    return 0


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a price in USD") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a price cannot be negative")
    return value


def cmd_diff(args: argparse.Namespace) -> int:
    vault = cli._open(args)
    old = resolve_recovery_point(vault, args.old)
    new = resolve_recovery_point(vault, args.new)
    diff = diff_recovery_points(vault, old, new)
    if args.json:
        cli._emit_json(diff.model_dump(mode="json"))
        return 0
    for item in diff.added:
        cli.out.print(f"+ {item.key} ({cli._human_bytes(item.size)})", markup=False, highlight=False)
    for item in diff.removed:
        cli.out.print(f"- {item.key} ({cli._human_bytes(item.size)})", markup=False, highlight=False)
    for change in diff.changed:
        cli.out.print(f"M {change.key} ({change.size_delta:+d} bytes)", markup=False, highlight=False)
    cli.out.print(
        f"{old.id} -> {new.id}: {len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed, "
        f"{diff.unchanged} unchanged; size {diff.size_delta:+d} bytes"
    )
    return 0


def cmd_drill(args: argparse.Namespace) -> int:
    report = restore_drill(cli._open(args), args.scratch, args.recovery_point, cleanup=not args.keep)
    if args.json:
        cli._emit_json({"ok": report.ok, **report.model_dump(mode="json")})
    else:
        for problem in report.mismatches:
            cli.err.print(f"[red]mismatch[/] {problem}")
        verdict = "passed" if report.ok else f"FAILED ({len(report.mismatches)} mismatches)"
        cli.out.print(
            f"restore drill of {report.recovery_point} into {report.scratch}: {report.verified}/{report.objects} "
            f"objects verified ({cli._human_bytes(report.bytes)}) in {report.seconds:.1f} s: {verdict}"
        )
    return 0 if report.ok else 1


def cmd_unlock(args: argparse.Namespace) -> int:
    vault = cli._open(args)
    if args.remove_all:
        removed = [lock_id for lock_id, _ in list_locks(vault.storage)]
        for lock_id in removed:
            release(vault.storage, lock_id)
    else:
        removed = remove_stale(vault.storage)
    if args.json:
        cli._emit_json({"removed": removed})
    else:
        cli.out.print(f"removed {len(removed)} locks")
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < -1:
        raise argparse.ArgumentTypeError("expected a count >= 0, or -1 for unlimited")
    return value


def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("expected a share between 0 and 1")
    return value


def _add_prune_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--repack-threshold",
        type=_threshold,
        default=DEFAULT_REPACK_THRESHOLD,
        metavar="SHARE",
        help=f"repack packs whose live share is below this (default {DEFAULT_REPACK_THRESHOLD})",
    )
    p.add_argument("--dry-run", action="store_true", help="show what would happen; change nothing")


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the maintenance subcommands to the main parser's subparsers."""
    p = sub.add_parser("forget", parents=[common], help="remove recovery points by keep rules (restic semantics)")
    for name, what in [
        ("last", "the N newest recovery points"),
        ("hourly", "the newest of each of the last N hours"),
        ("daily", "the newest of each of the last N days"),
        ("weekly", "the newest of each of the last N ISO weeks"),
        ("monthly", "the newest of each of the last N months"),
        ("yearly", "the newest of each of the last N years"),
    ]:
        p.add_argument(f"--keep-{name}", type=_count, default=0, metavar="N", help=f"keep {what} (-1: unlimited)")
    p.add_argument("--keep-within", metavar="DURATION", help="keep everything newer than the newest minus 1y2m3d4h")
    p.add_argument("--keep-tag", action="append", default=[], metavar="TAG", help="keep points with TAG (k or k=v)")
    p.add_argument("--prune", action="store_true", help="prune afterwards")
    _add_prune_options(p)
    p.set_defaults(handler=cmd_forget)

    p = sub.add_parser("prune", parents=[common], help="delete unreferenced data and repack mostly-empty packs")
    _add_prune_options(p)
    p.set_defaults(handler=cmd_prune)

    p = sub.add_parser(
        "stats", parents=[common], help="sizes, dedup and compression ratios, garbage share, storage cost"
    )
    p.add_argument(
        "--price-per-gib-month",
        type=_price,
        default=S3_STANDARD_PER_GIB_MONTH,
        metavar="USD",
        help="storage price of the vault's class and region (default %(default)s: S3 Standard, us-east-1)",
    )
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("diff", parents=[common], help="objects added, removed and changed between recovery points")
    p.add_argument("old", metavar="RP1", help="id, unique id prefix, or 'latest'")
    p.add_argument("new", metavar="RP2", help="id, unique id prefix, or 'latest'")
    p.set_defaults(handler=cmd_diff)

    p = sub.add_parser("drill", parents=[common], help="restore a recovery point into scratch space and compare")
    p.add_argument("recovery_point", nargs="?", help="id, unique prefix or 'latest' (default: one at random)")
    p.add_argument("--scratch", required=True, help="s3://bucket/prefix or a directory to restore under")
    p.add_argument("--keep", action="store_true", help="leave the scratch copy in place")
    p.set_defaults(handler=cmd_drill)

    p = sub.add_parser("unlock", parents=[common], help="remove stale locks (left by crashed processes)")
    p.add_argument("--remove-all", action="store_true", help="remove every lock; only when nothing else runs")
    p.set_defaults(handler=cmd_unlock)
