"""The maintenance commands of the CLI: forget, prune, index compact, stats, diff, drill, unlock.

Their arguments are in ``vaultline.cli.parser``, with every other command's.
Exit codes as everywhere: 0 done, 1 failed (a lock held by another party, a damaged vault, a failed drill),
2 bad usage.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterable, Iterator

from rich.table import Table

from vaultline.cli.context import open_vault
from vaultline.cli.output import emit_json, err, human_bytes, out
from vaultline.operations.batching import batches
from vaultline.operations.compact import compact_index
from vaultline.operations.diff import diff_by_kind
from vaultline.operations.drill import restore_drill
from vaultline.operations.forget_run import forget_listed
from vaultline.operations.prune import HeldObject, PruneOptions, PruneReport, prune
from vaultline.operations.retention import Decision, RetentionPolicy, keep_policy
from vaultline.operations.stats import storage_cost, vault_stats
from vaultline.repository.locks import list_locks, release, remove_stale
from vaultline.repository.manifest import resolve_recovery_point


def _held_lines(held: Iterable[HeldObject]) -> None:
    for item in held:
        until = "legal hold" if item.legal_hold else f"until {item.retain_until:%Y-%m-%d %H:%M:%S}Z"
        err.print(f"[yellow]held[/] {item.key} ({item.mode or 'object lock'} retention {until}); deferred")


def _policy(args: argparse.Namespace) -> RetentionPolicy:
    return keep_policy(vars(args))


def _prune_options(args: argparse.Namespace) -> PruneOptions:
    return PruneOptions(repack_threshold=args.repack_threshold, dry_run=args.dry_run)


def _print_prune(report: PruneReport) -> None:
    _held_lines(report.held)
    verb = "would free" if report.dry_run else "freed"
    out.print(
        f"{report.recovery_points} recovery points, {report.live_blobs} live blobs; "
        f"packs {report.packs_before} -> {report.packs_after} "
        f"({report.packs_deleted + report.unindexed_packs_deleted} deleted, {report.packs_repacked} repacked into "
        f"{report.packs_written}); {verb} {human_bytes(report.bytes_freed)} "
        f"({human_bytes(report.bytes_before)} -> {human_bytes(report.bytes_after)}); "
        f"{report.held_count} objects held by Object Lock"
        + (f" (the first unlocks {report.held_until:%Y-%m-%d %H:%M} UTC)" if report.held_until else "")
    )


TABLE_ROWS = 10_000  # decisions a printed table holds: a longer listing prints as several tables


def cmd_forget(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    # The staged run's steps in this process (a partition's points in memory, not the vault's); the listing reads
    # the decisions back from the run's staging, which is cleaned when the block ends.
    with forget_listed(vault, _policy(args), dry_run=args.dry_run) as listing:
        pruned = prune(vault, _prune_options(args)) if args.prune else None
        if args.json:
            emit_json(
                {
                    "dry_run": args.dry_run,
                    "decisions": (d.model_dump(mode="json") for d in listing.decisions()),
                    "kept": listing.kept(),
                    "removed": listing.removed(),
                    "held": (h.model_dump(mode="json") for h in listing.held()),
                    "prune": pruned.model_dump(mode="json") if pruned else None,
                }
            )
            return 0
        _print_decisions(listing.actions())
        _held_lines(listing.held())
        report = listing.report
    verb = "would remove" if args.dry_run else "removed"
    out.print(f"kept {report.kept}, {verb} {report.removed_count} recovery points, {report.held_count} held")
    if pruned:
        _print_prune(pruned)
    return 0


def _print_decisions(actions: Iterator[tuple[Decision, str]]) -> None:
    printed = False
    for rows in batches(actions, TABLE_ROWS):
        table = Table("source", "recovery point", "time", "action", "kept by")
        for d, action in rows:
            table.add_row(d.source, d.id, f"{d.time:%Y-%m-%d %H:%M:%S}", action, ", ".join(d.reasons))
        out.print(table)
        printed = True
    if not printed:  # a vault without recovery points: the table's header, as ever
        out.print(Table("source", "recovery point", "time", "action", "kept by"))


def cmd_prune(args: argparse.Namespace) -> int:
    report = prune(open_vault(args), _prune_options(args))
    if args.json:
        emit_json(report.model_dump(mode="json"))
    else:
        _print_prune(report)
    return 0


def cmd_index_compact(args: argparse.Namespace) -> int:
    report = compact_index(open_vault(args), force=args.force)
    if args.json:
        emit_json(report.model_dump(mode="json"))
    elif report.up_to_date:
        out.print(f"index generation {report.generation} is up to date")
    else:
        out.print(
            f"index generation {report.generation}: {report.index_objects} index objects, {report.blobs} blobs in "
            f"{report.packs} packs, {report.shards} shards, {human_bytes(report.bytes_written)} written "
            f"in {report.seconds:.1f} s"
        )
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    stats = vault_stats(open_vault(args))
    cost = storage_cost(stats, args.price_per_gib_month)
    if args.json:
        emit_json(stats.model_dump(mode="json") | {"cost": cost.model_dump(mode="json")})
        return 0
    h = human_bytes
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
    out.print(table)
    out.print(
        f"{stats.recovery_points} recovery points; {stats.packs} packs, {stats.blobs} blobs, "
        f"{stats.index_objects} index objects; vault {h(stats.vault_bytes)} for {h(stats.logical_bytes)} backed up; "
        f"dedup {stats.dedup_ratio:.2f}x, compression {stats.compression_ratio:.2f}x; "
        f"garbage {h(stats.garbage_bytes)} ({stats.garbage_share:.1%}, prune frees it)"
    )
    out.print(
        f"storage at ${cost.price_per_gib_month}/GiB-month: ${cost.vault_per_month:,.2f}/month "
        f"(prune would save ${cost.garbage_per_month:,.2f}); a plain copy per recovery point would cost "
        f"${cost.full_copies_per_month:,.2f}/month; requests, KMS and transfer not included",
        markup=False,
        highlight=False,
    )
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    old = resolve_recovery_point(vault, args.old)
    new = resolve_recovery_point(vault, args.new)
    with diff_by_kind(vault, old, new) as diff:
        totals = diff.totals
        if args.json:
            figures = ("unchanged", "bytes_added", "bytes_removed", "size_delta")
            emit_json(
                {
                    "old": old.id,
                    "new": new.id,
                    "added": (item.model_dump(mode="json") for item in diff.added()),
                    "removed": (item.model_dump(mode="json") for item in diff.removed()),
                    "changed": (item.model_dump(mode="json") for item in diff.changed()),
                    # Known once the lists above are printed.
                    **{name: functools.partial(getattr, totals, name) for name in figures},
                }
            )
            return 0
        for item in diff.added():
            out.print(f"+ {item.key} ({human_bytes(item.size)})", markup=False, highlight=False)
        for item in diff.removed():
            out.print(f"- {item.key} ({human_bytes(item.size)})", markup=False, highlight=False)
        for change in diff.changed():
            out.print(f"M {change.key} ({change.size_delta:+d} bytes)", markup=False, highlight=False)
    out.print(
        f"{old.id} -> {new.id}: {totals.added} added, {totals.removed} removed, {totals.changed} changed, "
        f"{totals.unchanged} unchanged; size {totals.size_delta:+d} bytes"
    )
    return 0


def cmd_drill(args: argparse.Namespace) -> int:
    report = restore_drill(open_vault(args), args.scratch, args.recovery_point, cleanup=not args.keep)
    if args.json:
        emit_json({"ok": report.ok, **report.model_dump(mode="json")})
    else:
        for problem in report.mismatches:
            err.print(f"[red]mismatch[/] {problem}")
        verdict = "passed" if report.ok else f"FAILED ({len(report.mismatches)} mismatches)"
        out.print(
            f"restore drill of {report.recovery_point} into {report.scratch}: {report.verified}/{report.objects} "
            f"objects verified ({human_bytes(report.bytes)}) in {report.seconds:.1f} s: {verdict}"
        )
    return 0 if report.ok else 1


def cmd_unlock(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    if args.remove_all:
        removed = [lock_id for lock_id, _ in list_locks(vault.storage)]
        for lock_id in removed:
            release(vault.storage, lock_id)
    else:
        removed = remove_stale(vault.storage)
    if args.json:
        emit_json({"removed": removed})
    else:
        out.print(f"removed {len(removed)} locks")
    return 0
