"""The copy command: ``copy (RP... | --all | --source SOURCE) --to URL``.

Exit codes as everywhere: 0 done (also when everything was copied before), 1 failed (an unknown recovery point, a
target that is not a vault, a denied request: nothing half-copied is left looking complete), 2 bad usage.
"""

from __future__ import annotations

import argparse

from vaultline.cli.context import open_vault
from vaultline.cli.output import emit_json, human_bytes, out
from vaultline.operations.copy import open_target, run_copy, select_recovery_points


def cmd_copy(args: argparse.Namespace) -> int:
    source = open_vault(args)
    target = open_target(args.to)
    ids = select_recovery_points(source, args.recovery_points, everything=args.all, source=args.source)
    report = run_copy(source, target, ids, progress=None if args.json else _progress)
    if args.json:
        emit_json(report.model_dump(mode="json"))
        return 0
    out.print(
        f"copied {len(report.copied)} recovery points to {report.target} "
        f"({len(report.already_copied)} were there already): {human_bytes(report.bytes_transferred)} in "
        f"{report.chunks_copied} new chunks, {report.chunks_present} already there, in {report.seconds:.1f} s"
    )
    return 0


def _progress(rp_id: str) -> None:
    out.print(f"copied {rp_id}")
