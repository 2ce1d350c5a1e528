"""The `vaultline` command line: human output by default, `--json` for scripts.

Exit codes: 0 done, 1 failed (the message names what), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from vaultline.cli import tables as dynamodb_cli
from vaultline.cli.stack import MapProgress, StackInfo, find_stack, follow, plan_inputs, start
from vaultline.errors import UsageError, VaultlineError
from vaultline.operations.backup import BackupOptions, run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.plans import TagsRefresh
from vaultline.repository.manifest import (
    ISSUES_REPORTED,
    Issues,
    iter_entries,
    list_recovery_points,
    resolve_recovery_point,
)
from vaultline.repository.vault import Vault
from vaultline.runs.requests import deployed_backup, execution_input, restore_input
from vaultline.sources import open_source
from vaultline.sources.dynamodb.table import is_table_url
from vaultline.storage import open_storage
from vaultline.targets import Overwrite, open_target
from vaultline.targets.guard import refuse_vault_buckets

# Piped output gets wide tables rather than 80 columns of wrapped ids.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextmanager
def _progress(enabled: bool, label: str, total: int | None = None) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for long work; nothing when writing JSON or not on a terminal."""
    if not enabled or not err.is_terminal:
        yield None
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[objects]} objects"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=total, objects=0)
        counted = {"objects": 0}

        def advance(objects: int, size: int) -> None:
            counted["objects"] += objects
            bar.update(task, advance=size, objects=counted["objects"])

        yield advance


def _vault_url(args: argparse.Namespace) -> str:
    url: str | None = args.vault or os.environ.get("VAULTLINE_VAULT")
    if not url and args.stack:
        url = _stack(args).vault_url
    if not url:
        raise UsageError("no vault given: pass --vault URL or set VAULTLINE_VAULT")
    return url


def _open(args: argparse.Namespace) -> Vault:
    return Vault.open(open_storage(_vault_url(args)))


def _emit_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def cmd_init(args: argparse.Namespace) -> int:
    vault = Vault.init(open_storage(_vault_url(args)), args.encryption, args.kms_key_id, args.compression_level)
    if args.json:
        _emit_json({"vault": vault.url, "vault_id": vault.config.vault_id, "encryption": args.encryption})
    else:
        out.print(f"created vault {vault.config.vault_id} at {vault.url} (encryption: {args.encryption})")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    if is_table_url(args.source):
        return _backup_table(args)
    vault = _open(args)
    source = open_source(args.source, args.include, args.exclude, role_arn=args.role_arn)
    tags = dict(_parse_tag(t) for t in args.tag)
    options = BackupOptions(archived_objects=args.archived_objects, tags_refresh=_tags_refresh(args.tags_refresh))
    with _progress(not args.json, f"backup {source.url}") as progress:
        rp = run_backup(vault, source, tags=tags, progress=progress, options=options)
    issues = rp.issues
    if args.json:
        _emit_json(
            {
                "recovery_point": rp.id,
                "source": rp.source,
                "time": rp.time.isoformat(),
                **rp.stats.model_dump(),
                "status": rp.status,
                "issues": issues.first(ISSUES_REPORTED).model_dump(),
            }
        )
    else:
        s = rp.stats
        out.print(
            f"recovery point [bold]{rp.id}[/] of {rp.source}: {s.objects} objects, {_human_bytes(s.bytes)}; "
            f"read {s.objects_read} ({_human_bytes(s.bytes_read)}), {s.objects_unchanged} unchanged; "
            f"stored {_human_bytes(s.bytes_stored)} in {s.new_chunks} new chunks; {s.seconds:.1f} s"
        )
        if issues.total:
            err.print(f"[yellow]completed with issues[/]: {issues.summary()}", highlight=False)
            for issue in issues.objects[:ISSUES_REPORTED]:
                err.print(f"  skipped {issue.key!r}: {issue.reason}", markup=False, highlight=False)
    return 0


def _tags_refresh(text: str) -> TagsRefresh:
    if text in ("always", "never"):
        return text  # type: ignore[return-value]
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise UsageError(f"--tags-refresh {text!r}: expected always, never or a number of backups (1 or more)")


def _backup_table(args: argparse.Namespace) -> int:
    doc, line = dynamodb_cli.backup(_open(args), args, dict(_parse_tag(t) for t in args.tag))
    if args.json:
        _emit_json(doc)
    else:
        out.print(line, markup=False, highlight=False)
    return 0


def _parse_tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--tag {text!r}: expected KEY=VALUE")
    return key, value


def cmd_list(args: argparse.Namespace) -> int:
    points = list_recovery_points(_open(args))
    if args.json:
        _emit_json(
            [
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
            ]
        )
        return 0
    table = Table("id", "time", "source", "objects", "size", "added", "status")
    for rp in points:
        table.add_row(
            rp.id,
            rp.time.strftime("%Y-%m-%d %H:%M:%S"),
            rp.source,
            str(rp.stats.objects),
            _human_bytes(rp.stats.bytes),
            _human_bytes(rp.stats.bytes_stored),
            f"with issues: {rp.issues.summary()}" if rp.issues.total else "completed",
        )
    out.print(table)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    vault = _open(args)
    rp = resolve_recovery_point(vault, args.recovery_point)
    entries = [e for e in iter_entries(vault, rp) if e.key.startswith(args.prefix or "")]
    if args.json:
        _emit_json([e.model_dump(mode="json", exclude={"chunks"}, exclude_defaults=True) for e in entries])
        return 0
    table = Table("key", "size", "last modified", "etag")
    for e in entries:
        modified = e.last_modified.strftime("%Y-%m-%d %H:%M:%S") if e.last_modified else ""
        table.add_row(e.key, str(e.size), modified, e.etag or "")
    out.print(table)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    if args.overwrite and is_table_url(args.to):
        raise UsageError("--overwrite applies to s3:// and directory targets; a table restore writes every item")
    if args.remote:
        return _restore_remote(args)
    if is_table_url(args.to):
        doc, line = dynamodb_cli.restore(_open(args), args)
        if args.json:
            _emit_json(doc)
        else:
            out.print(line, markup=False, highlight=False)
        return 0
    if args.key:
        raise UsageError("--key restores single items of a DynamoDB table: use --to dynamodb://TABLE")
    overwrite: Overwrite = args.overwrite or "never"
    vault = _open(args)
    rp = resolve_recovery_point(vault, args.recovery_point)
    entries = select_entries(vault, rp, args.include)
    refuse_vault_buckets(args.to, vault)
    target = open_target(args.to)
    total = sum(e.size for e in entries)
    with _progress(not args.json, f"restore {rp.id}", total) as progress:
        outcome = restore_entries(vault, entries, target, progress, overwrite)
    if args.json:
        _emit_json(
            {
                "recovery_point": rp.id,
                "target": target.url,
                **outcome.stats.model_dump(),
                "unmappable_keys": [{"key": k, "reason": r} for k, r in outcome.unmappable],
            }
        )
    else:
        s = outcome.stats
        out.print(f"restored {s.objects} objects ({_human_bytes(s.bytes)}) to {target.url} in {s.seconds:.1f} s")
        _print_skipped(s.skipped_existing, s.skipped_unchanged)
        for key, reason in outcome.unmappable:
            err.print(f"[yellow]not restored[/] {key!r}: {reason}")
    if outcome.unmappable:
        err.print(f"{len(outcome.unmappable)} keys could not be restored to {target.url}")
        return 1
    return 0


def _print_skipped(existing: int, unchanged: int) -> None:
    if existing:
        err.print(f"[yellow]kept {existing} objects already at the target[/] (--overwrite if-changed or always)")
    if unchanged:
        err.print(f"skipped {unchanged} objects the target already holds unchanged")


def _stack(args: argparse.Namespace) -> StackInfo:
    return find_stack(args.stack or os.environ.get("VAULTLINE_STACK") or "Vaultline")


@contextmanager
def _follow_display(enabled: bool, label: str) -> Iterator[Callable[[str, MapProgress], None] | None]:
    """A progress bar of map items done and failed while an execution runs."""
    if not enabled or not err.is_terminal:
        yield None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}")]
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=None, detail="starting")

        def show(status: str, progress: MapProgress) -> None:
            done = progress.succeeded + progress.failed
            detail = f"{status.lower()}: {done}/{progress.total} items, {progress.failed} failed"
            bar.update(task, total=progress.total or None, completed=done, detail=detail)

        yield show


def cmd_plan_list(args: argparse.Namespace) -> int:
    stack = _stack(args)
    if args.json:
        _emit_json({"stack": stack.name, "vault": stack.vault_url, "plans": stack.plans})
        return 0
    table = Table("plan", "sources", "compression", "concurrency")
    for name, inputs in sorted(stack.plans.items()):
        sources = ", ".join(i.get("source", {}).get("url", "?") for i in inputs)
        first = inputs[0] if inputs else {}
        table.add_row(name, sources, str(first.get("compression_level", "")), str(first.get("worker_concurrency", "")))
    out.print(table)
    out.print(f"vault: {stack.vault_url}")
    return 0


def cmd_plan_run(args: argparse.Namespace) -> int:
    stack = _stack(args)
    results = []
    for payload in plan_inputs(stack, args.name):
        # Validated as the state machine will, and sent as deployed (the fields the stack's input set).
        request = deployed_backup(payload)
        execution = start(stack.backup_state_machine, execution_input(request))
        with _follow_display(not args.json, f"plan {args.name}: {request.source.url}") as show:
            output = follow(execution, show, poll_seconds=args.poll)
        committed = output.get("committed", {})
        results.append({"execution": execution, **committed})
        if not args.json:
            stats = committed.get("stats", {})
            out.print(
                f"recovery point [bold]{committed.get('recovery_point')}[/] of {committed.get('source')}: "
                f"{stats.get('objects', 0)} objects, {_human_bytes(stats.get('bytes', 0))}, "
                f"stored {_human_bytes(stats.get('bytes_stored', 0))}"
            )
            issues = Issues.model_validate(committed.get("issues") or {})
            if issues.total:
                err.print(f"[yellow]completed with issues[/]: {issues.summary()}", highlight=False)
    if args.json:
        _emit_json(results[0] if len(results) == 1 else results)
    return 0


def _restore_remote(args: argparse.Namespace) -> int:
    table = is_table_url(args.to)
    if not (table or args.to.startswith("s3://")):
        raise UsageError("--remote restores go to s3://bucket[/prefix] or dynamodb://TABLE targets")
    if table and (args.key or args.include):
        raise UsageError("--remote restores of a table restore all of it; --key and --include work without --remote")
    stack = _stack(args)
    payload = restore_input(
        args.recovery_point,
        args.to,
        include=args.include,
        overwrite=args.overwrite,
        write_rate=args.write_rate,
        worker_concurrency=args.concurrency,
    )
    execution = start(stack.restore_state_machine, payload)
    with _follow_display(not args.json, f"restore {args.recovery_point}") as show:
        output = follow(execution, show, poll_seconds=args.poll)
    finished = output.get("finished", {})
    if args.json:
        _emit_json({"execution": execution, **finished})
    elif table:
        created = "a new table" if finished.get("table_created") else "the existing table"
        out.print(
            f"restored {finished.get('items', 0)} items of {finished.get('recovery_point')} to {args.to} ({created})"
        )
    else:
        out.print(
            f"restored {finished.get('objects', 0)} objects ({_human_bytes(finished.get('bytes', 0))}) "
            f"of {finished.get('recovery_point')} to {args.to}"
        )
        _print_skipped(finished.get("skipped_existing", 0), finished.get("skipped_unchanged", 0))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    items = dynamodb_cli.get(_open(args), args)
    if args.json:
        _emit_json(items[0] if len(items) == 1 else items)
    else:
        print(dynamodb_cli.render_items(items))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    vault = _open(args)
    reading = args.read_data or args.read_data_subset is not None
    with _progress(not args.json and reading, "read data") as progress:
        report = check_vault(vault, read_data=args.read_data, progress=progress, read_data_subset=args.read_data_subset)
    if args.json:
        _emit_json({"ok": report.ok, **report.model_dump()})
    else:
        for warning in report.warnings:
            err.print(f"[yellow]warning[/] {warning}")
        for error in report.errors:
            err.print(f"[red]error[/] {error}")
        verdict = "no errors" if report.ok else f"{len(report.errors)} errors"
        detail = f", read {report.packs_read} packs ({_human_bytes(report.bytes_read)})" if reading else ""
        out.print(
            f"checked {report.recovery_points} recovery points, {report.objects} objects, "
            f"{report.packs} packs, {report.blobs} blobs{detail}: {verdict}"
        )
    return 0 if report.ok else 1


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own usage errors: exit 2 with one line
        self.print_usage(sys.stderr)
        err.print(f"vaultline: error: {message}")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vaultline", description="Deduplicated, encrypted backups of S3 buckets and directories.")
    parser.add_argument("--vault", help="s3://bucket[/prefix] or a directory (default: $VAULTLINE_VAULT)")
    parser.add_argument("--stack", help="deployed stack for plan and --remote commands (default: Vaultline)")
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document for scripts")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("init", parents=[common], help="create a vault")
    p.add_argument("--encryption", choices=["none", "kms"], default="none")
    p.add_argument("--kms-key-id", help="KMS key (id, ARN or alias) that wraps the vault's data key")
    p.add_argument("--compression-level", type=int, default=3, choices=range(1, 23), metavar="1-22")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("backup", parents=[common], help="back up an S3 bucket/prefix or a directory")
    p.add_argument("source", help="s3://bucket[/prefix], dynamodb://TABLE[?region=R&role=ARN] or a directory")
    p.add_argument("--include", action="append", default=[], metavar="GLOB")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--role-arn", metavar="ARN", help="read the source through this IAM role (a bucket or table in another account)"
    )
    p.add_argument("--mode", choices=["scan", "export"], default="scan", help="dynamodb:// sources: how to read")
    p.add_argument("--segments", type=int, help="dynamodb:// scan: TotalSegments (default: from the table size)")
    p.add_argument("--read-rate", type=float, metavar="RCU/S", help="dynamodb:// scan: read capacity units per second")
    p.add_argument(
        "--read-share", type=float, metavar="FRACTION", help="dynamodb:// scan: share of the provisioned RCU, 0-1"
    )
    p.add_argument("--consistent-read", action="store_true", help="dynamodb:// scan: strongly consistent reads")
    p.add_argument(
        "--archived-objects",
        choices=["skip", "fail"],
        default="skip",
        help="objects in an archive tier (Glacier, Deep Archive): skip and report them, or fail the backup",
    )
    p.add_argument(
        "--tags-refresh",
        default="always",
        metavar="always|never|N",
        help="re-read the tags of unchanged objects every backup, never, or every N-th backup",
    )
    p.set_defaults(handler=cmd_backup)

    p = sub.add_parser("list", parents=[common], help="list recovery points")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("ls", parents=[common], help="list the objects of a recovery point")
    p.add_argument("recovery_point", help="id, unique id prefix, or 'latest'")
    p.add_argument("prefix", nargs="?", default="")
    p.set_defaults(handler=cmd_ls)

    p = sub.add_parser("restore", parents=[common], help="restore a recovery point")
    p.add_argument("recovery_point", help="id, unique id prefix, or 'latest'")
    p.add_argument("--to", required=True, help="s3://bucket[/prefix], dynamodb://TABLE or a directory")
    p.add_argument("--include", action="append", default=[], metavar="GLOB")
    p.add_argument("--remote", action="store_true", help="run the deployed restore state machine instead")
    p.add_argument("--concurrency", type=int, default=10, help="parallel restore workers with --remote")
    p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("--key", action="append", default=[], metavar="JSON", help="dynamodb:// targets: restore this item")
    p.add_argument("--write-rate", type=float, metavar="WCU/S", help="dynamodb:// targets: write capacity units/s")
    p.add_argument(
        "--overwrite",
        choices=["never", "if-changed", "always"],
        help="objects already at an S3 or directory target: keep them (default), rewrite those that differ, or all",
    )
    p.set_defaults(handler=cmd_restore)

    p = sub.add_parser("get", parents=[common], help="print items of a DynamoDB recovery point as they were")
    p.add_argument("recovery_point", help="id, unique id prefix, or 'latest'")
    p.add_argument("--key", action="append", default=[], metavar="JSON", help='{"pk":"a"} or {"pk":{"S":"a"}}')
    p.set_defaults(handler=cmd_get)

    plan = sub.add_parser("plan", help="backup plans of the deployed stack")
    plan_sub = plan.add_subparsers(dest="plan_command", required=True, parser_class=_Parser)
    p = plan_sub.add_parser("list", parents=[common], help="list the deployed plans")
    p.set_defaults(handler=cmd_plan_list)
    p = plan_sub.add_parser("run", parents=[common], help="run a plan now and follow it to the end")
    p.add_argument("name")
    p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_plan_run)

    p = sub.add_parser("check", parents=[common], help="verify the vault's structure and, optionally, every blob")
    reads = p.add_mutually_exclusive_group()
    reads.add_argument("--read-data", action="store_true", help="read, decrypt and hash every blob")
    reads.add_argument("--read-data-subset", metavar="SPEC", help="read part n of m packs (n/m) or a share (10%%)")
    p.set_defaults(handler=cmd_check)

    from vaultline.cli import maintenance as cli_maintenance  # late: it uses this module's helpers

    cli_maintenance.register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `vaultline` console script."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except VaultlineError as exc:
        err.print(f"vaultline: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("vaultline: interrupted; no recovery point was written")
        return 130


if __name__ == "__main__":
    sys.exit(main())
