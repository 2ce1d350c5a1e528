"""The backup command: an S3 bucket or prefix, a directory, or (through vaultline.cli.tables) a DynamoDB table."""

from __future__ import annotations

import argparse

from vaultline.cli import tables
from vaultline.cli.context import open_vault
from vaultline.cli.output import emit_json, err, human_bytes, out, transfer_progress
from vaultline.errors import UsageError
from vaultline.operations.backup import BackupOptions, run_backup
from vaultline.plans import TagsRefresh
from vaultline.repository.manifest import ISSUES_REPORTED
from vaultline.sources import open_source
from vaultline.sources.dynamodb.table import is_table_url


def cmd_backup(args: argparse.Namespace) -> int:
    if is_table_url(args.source):
        return _backup_table(args)
    vault = open_vault(args)
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


def _backup_table(args: argparse.Namespace) -> int:
    doc, line = tables.backup(open_vault(args), args, dict(_parse_tag(t) for t in args.tag))
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
