"""The backup command: an S3 bucket or prefix, a directory, or (through vaultline.cli.tables) a DynamoDB table."""

from __future__ import annotations

import argparse

from vaultline.cli.context import open_vault
from vaultline.cli.output import emit_json, err, human_bytes, out, transfer_progress
from vaultline.errors import UsageError, VaultlineError
from vaultline.operations.backup import BackupOptions, run_backup
from vaultline.operations.compact import compact_when_due
from vaultline.repository.manifest import ISSUES_REPORTED
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.sources.dynamodb.urls import is_table_url
from vaultline.sources.s3_options import TagsRefresh


def cmd_backup(args: argparse.Namespace) -> int:
    vault = open_vault(args)
    _compact_when_due(vault, args)
    if is_table_url(args.source):
        return _backup_table(vault, args)
    source = open_source(args.source, args.include, args.exclude, role_arn=args.role_arn)
    tags = dict(_parse_tag(t) for t in args.tag)
    options = BackupOptions(archived_objects=args.archived_objects, tags_refresh=_tags_refresh(args.tags_refresh))
    with transfer_progress(not args.json, f"backup {source.url}") as progress:
        rp = run_backup(vault, source, tags=tags, progress=progress, options=options)
    issues = rp.issues
    if args.json:
        emit_json(
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
            f"recovery point [bold]{rp.id}[/] of {rp.source}: {s.objects} objects, {human_bytes(s.bytes)}; "
            f"read {s.objects_read} ({human_bytes(s.bytes_read)}), {s.objects_unchanged} unchanged; "
            f"stored {human_bytes(s.bytes_stored)} in {s.new_chunks} new chunks; {s.seconds:.1f} s"
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


def _compact_when_due(vault: Vault, args: argparse.Namespace) -> None:
    """Compact the index first when the part of it a backup loads whole has grown (``compact_when_due``); say so on
    stderr, so ``--json`` output stays the backup's."""
    if args.no_compact:
        return
    try:
        report = compact_when_due(vault)
    except VaultlineError as exc:
        # Not this backup's failure: a role that may only add (a protected account's) may not write a generation,
        # and a prune's exclusive lock refuses the backup below with its own error.
        err.print(f"index not compacted ({exc}); backing up all the same", markup=False, highlight=False)
        return
    if report is not None:
        err.print(
            f"compacted the index first: {report.index_objects} index objects, {report.blobs} blobs into generation "
            f"{report.generation} in {report.seconds:.1f} s (--no-compact skips this)",
            markup=False,
            highlight=False,
        )


def _backup_table(vault: Vault, args: argparse.Namespace) -> int:
    # The DynamoDB engine and the plans' models only for a table: a directory or S3 backup does not import them.
    from vaultline.cli import tables

    doc, line = tables.backup(vault, args, dict(_parse_tag(t) for t in args.tag))
    if args.json:
        emit_json(doc)
    else:
        out.print(line, markup=False, highlight=False)
    return 0


def _parse_tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--tag {text!r}: expected KEY=VALUE")
    return key, value
