"""The restore commands: a recovery point to S3, a directory or a DynamoDB table, here or through the deployed
restore state machine (``--remote``); ``get`` prints single items of a table as they were."""

from __future__ import annotations

import argparse
import os

from vaultline.cli.context import open_vault, stack_of
from vaultline.cli.output import emit_json, err, execution_progress, human_bytes, out, transfer_progress
from vaultline.errors import UsageError
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.manifest import resolve_recovery_point
from vaultline.runs.settings import ACCESS_LOG_BUCKET_ENV
from vaultline.sources.dynamodb.urls import is_table_url
from vaultline.targets import Overwrite, open_target
from vaultline.targets.guard import refuse_vault_buckets

# The remote restore sender keeps the names it had in cli/main.py: another change edits its body at the same time.


def cmd_restore(args: argparse.Namespace) -> int:
    if args.overwrite and is_table_url(args.to):
        raise UsageError("--overwrite applies to s3:// and directory targets; a table restore writes every item")
    if args.remote:
        return _restore_remote(args)
    if is_table_url(args.to):
        # The table path and the remote one pull in the DynamoDB engine and the runs' models: a directory or S3
        # restore, the common case, does not pay for importing them.
        from vaultline.cli import tables

        doc, line = tables.restore(open_vault(args), args)
        if args.json:
            emit_json(doc)
        else:
            out.print(line, markup=False, highlight=False)
        return 0
    if args.key:
        raise UsageError("--key restores single items of a DynamoDB table: use --to dynamodb://TABLE")
    overwrite: Overwrite = args.overwrite or "never"
    vault = open_vault(args)
    rp = resolve_recovery_point(vault, args.recovery_point)
    entries = select_entries(vault, rp, args.include)
    # The stack names its access-log bucket to its functions; a CLI run beside it may be told the same way.
    refuse_vault_buckets(args.to, vault, os.environ.get(ACCESS_LOG_BUCKET_ENV))
    target = open_target(args.to)
    # The recovery point's size when it is restored whole; an included part's is not known before it is read.
    total = None if args.include else rp.stats.bytes
    with transfer_progress(not args.json, f"restore {rp.id}", total) as progress:
        outcome = restore_entries(vault, entries, target, progress, overwrite)
    if args.json:
        emit_json(
            {
                "recovery_point": rp.id,
                "target": target.url,
                **outcome.stats.model_dump(),
                "unmappable_keys": [{"key": k, "reason": r} for k, r in outcome.unmappable],
            }
        )
    else:
        s = outcome.stats
        out.print(f"restored {s.objects} objects ({human_bytes(s.bytes)}) to {target.url} in {s.seconds:.1f} s")
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


def _restore_remote(args: argparse.Namespace) -> int:
    from vaultline.cli.stack import follow, start
    from vaultline.runs.requests import restore_input

    table = is_table_url(args.to)
    if not (table or args.to.startswith("s3://")):
        raise UsageError("--remote restores go to s3://bucket[/prefix] or dynamodb://TABLE targets")
    if table and (args.key or args.include):
        raise UsageError("--remote restores of a table restore all of it; --key and --include work without --remote")
    stack = stack_of(args)
    # The restore state machine branches on the target itself (dynamodb://... takes the DynamoDB path).
    payload = restore_input(
        args.recovery_point,
        args.to,
        include=args.include,
        overwrite=args.overwrite,
        write_rate=args.write_rate,
        worker_concurrency=args.concurrency,
    )
    execution = start(stack.restore_state_machine, payload)
    with execution_progress(not args.json, f"restore {args.recovery_point}") as show:
        output = follow(execution, show, poll_seconds=args.poll)
    finished = output.get("finished", {})
    if args.json:
        emit_json({"execution": execution, **finished})
    elif table:
        created = "a new table" if finished.get("table_created") else "the existing table"
        out.print(
            f"restored {finished.get('items', 0)} items of {finished.get('recovery_point')} to {args.to} ({created})"
        )
    else:
        out.print(
            f"restored {finished.get('objects', 0)} objects ({human_bytes(finished.get('bytes', 0))}) "
            f"of {finished.get('recovery_point')} to {args.to}"
        )
        _print_skipped(finished.get("skipped_existing", 0), finished.get("skipped_unchanged", 0))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from vaultline.cli import tables

    items = tables.get(open_vault(args), args)
    if args.json:
        emit_json(items[0] if len(items) == 1 else items)
    else:
        print(tables.render_items(items))
    return 0
