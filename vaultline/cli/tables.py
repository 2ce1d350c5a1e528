"""The DynamoDB side of the `vaultline` commands: cli/backup.py and cli/restore.py dispatch here on dynamodb:// URLs.

Each function returns (JSON document, human line) and leaves printing to the caller.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import ValidationError

from vaultline.errors import UsageError
from vaultline.operations.table_backup import run_table_backup
from vaultline.operations.table_restore import find_items, parse_keys, restore_table
from vaultline.repository.manifest import resolve_recovery_point
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb.items import item_to_json
from vaultline.sources.dynamodb.model import BackupOptions, table_info
from vaultline.sources.dynamodb.urls import TableRef, parse_table_url


def backup(vault: Vault, args: argparse.Namespace, tags: dict[str, str]) -> tuple[dict[str, Any], str]:
    """`vaultline backup dynamodb://T`."""
    try:
        options = BackupOptions(
            mode=getattr(args, "mode", None) or "scan",
            segments=getattr(args, "segments", None),
            read_rate=getattr(args, "read_rate", None),
            read_share=getattr(args, "read_share", None),
            consistent_read=bool(getattr(args, "consistent_read", False)),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
        raise UsageError(f"{option}: {str(first['msg']).removeprefix('Value error, ')}") from None
    rp = run_table_backup(vault, _with_role(args.source, getattr(args, "role_arn", None)), options, tags=tags)
    info = table_info(rp)
    s = rp.stats
    doc = {
        "recovery_point": rp.id,
        "source": rp.source,
        "time": rp.time.isoformat(),
        "mode": info.mode,
        "segments": info.total_segments,
        "items": info.items,
        "read_capacity_units": info.read_capacity_units,
        "stats": s.model_dump(),
        **s.model_dump(),
    }
    line = (
        f"recovery point {rp.id} of {rp.source} ({info.mode}, {info.total_segments} segments): {info.items} items, "
        f"{s.bytes} bytes; stored {s.bytes_stored} bytes in {s.new_chunks} new chunks; {s.seconds:.1f} s"
    )
    return doc, line


def _with_role(url: str, role_arn: str | None) -> str:
    """``--role-arn`` is the CLI's spelling of the URL's ``role=``; both may be given only if they agree."""
    if not role_arn:
        return url
    ref = parse_table_url(url)
    if ref.role and ref.role != role_arn:
        raise UsageError(f"{url}: role= in the URL and --role-arn {role_arn} disagree")
    return TableRef(ref.name, ref.region, role_arn).url


def restore(vault: Vault, args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """`vaultline restore RP --to dynamodb://T [--key JSON ...]`."""
    if getattr(args, "include", None):
        raise UsageError("--include selects S3 keys; restore single items of a table with --key")
    rp = resolve_recovery_point(vault, args.recovery_point)
    stats = restore_table(vault, rp, args.to, keys=args.key or (), write_rate=getattr(args, "write_rate", None))
    doc = {"recovery_point": rp.id, "target": args.to, **stats.model_dump()}
    created = " (created)" if stats.table_created else ""
    return doc, f"restored {stats.items} items of {rp.id} to {args.to}{created} in {stats.seconds:.1f} s"


def get(vault: Vault, args: argparse.Namespace) -> list[dict[str, Any]]:
    """`vaultline get RP --key JSON`: the items as they were, in DynamoDB JSON (binaries as base64)."""
    if not args.key:
        raise UsageError("get needs at least one --key JSON")
    rp = resolve_recovery_point(vault, args.recovery_point)
    return [item_to_json(item) for item in find_items(vault, rp, parse_keys(rp, args.key))]


def render_items(items: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(item, sort_keys=True) for item in items)
