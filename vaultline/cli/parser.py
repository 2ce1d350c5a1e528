"""The `vaultline` command line, assembled in one place: every command, its arguments, and the function (in the
command modules: vault, backup, restore, plans, maintenance) that runs it."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from vaultline.operations.defaults import DEFAULT_REPACK_THRESHOLD, S3_STANDARD_PER_GIB_MONTH


class Command:
    """A command's function, named and imported only when it runs: ``vaultline --help`` or a usage error then
    loads none of the command modules (and the engine, boto3, pydantic and rich behind them); only the command
    that runs pays for its own imports."""

    def __init__(self, module: str, function: str) -> None:
        self.module = module
        self.function = function

    def __call__(self, args: argparse.Namespace) -> int:
        run = getattr(importlib.import_module(f"vaultline.cli.{self.module}"), self.function)
        code: int = run(args)
        return code

    def __repr__(self) -> str:
        return f"Command({self.module}.{self.function})"


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a price in USD") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a price cannot be negative")
    return value


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


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors print the usage and one line, and exit 2."""

    def error(self, message: str) -> Any:  # argparse's own usage errors: exit 2 with one line
        from vaultline.cli.output import err

        self.print_usage(sys.stderr)
        err.print(f"vaultline: error: {message}")
        raise SystemExit(2)


def _days(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 1 <= value <= 36500:
        raise argparse.ArgumentTypeError(f"days must be 1 to 36500, not {value}")
    return value


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of hours: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _add_lock_window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--period-hours", type=_hours, default=24.0, help="how often maintenance runs (default: 24)")
    p.add_argument("--margin-hours", type=_hours, default=24.0, help="slack beyond one period (default: 24)")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every command, its arguments and the function that runs it."""
    parser = Parser(prog="vaultline", description="Deduplicated, encrypted backups of S3 buckets and directories.")
    parser.add_argument("--vault", help="s3://bucket[/prefix] or a directory (default: $VAULTLINE_VAULT)")
    parser.add_argument("--stack", help="deployed stack for plan and --remote commands (default: Vaultline)")
    parser.add_argument(
        "--passphrase-file",
        metavar="FILE",
        help="open the vault with a passphrase key slot, never calling KMS (default: $VAULTLINE_PASSPHRASE_FILE)",
    )
    common = Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document for scripts")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("init", parents=[common], help="create a vault")
    p.add_argument("--encryption", choices=["none", "kms"], default="none")
    p.add_argument("--kms-key-id", help="KMS key (id, ARN or alias) that wraps the vault's data key")
    p.add_argument("--compression-level", type=int, default=3, choices=range(1, 23), metavar="1-22")
    p.add_argument(
        "--object-lock",
        choices=["governance", "compliance"],
        help="lock what recovery points need in this S3 Object Lock mode (the bucket must have Object Lock)",
    )
    p.add_argument("--lock-days", type=_days, help="days each needed object stays locked from now (with --object-lock)")
    p.add_argument("--lock-min-days", type=_days, help="the lowest --lock-days any later change may set (default: N)")
    p.add_argument("--lock-max-days", type=_days, help="the highest --lock-days any later change may set")
    p.set_defaults(handler=Command("vault", "cmd_init"))

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
    p.add_argument(
        "--no-compact",
        action="store_true",
        help="do not compact the index first, even when the part of it a backup loads whole has grown past 32 MiB",
    )
    p.set_defaults(handler=Command("backup", "cmd_backup"))

    p = sub.add_parser("list", parents=[common], help="list recovery points")
    p.set_defaults(handler=Command("vault", "cmd_list"))

    p = sub.add_parser("ls", parents=[common], help="list the objects of a recovery point")
    p.add_argument("recovery_point", help="id, unique id prefix, or 'latest'")
    p.add_argument("prefix", nargs="?", default="")
    p.set_defaults(handler=Command("vault", "cmd_ls"))

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
    p.set_defaults(handler=Command("restore", "cmd_restore"))

    p = sub.add_parser("copy", parents=[common], help="copy recovery points into another vault (region, account, key)")
    p.add_argument("recovery_points", nargs="*", metavar="RP", help="ids, unique id prefixes, or 'latest'")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every recovery point of the vault")
    which.add_argument(
        "--source", metavar="SOURCE", help="every recovery point of this source (s3://..., dynamodb://...)"
    )
    p.add_argument("--to", required=True, metavar="URL", help="the target vault (initialised with its own key)")
    p.set_defaults(handler=Command("copy", "cmd_copy"))

    p = sub.add_parser("get", parents=[common], help="print items of a DynamoDB recovery point as they were")
    p.add_argument("recovery_point", help="id, unique id prefix, or 'latest'")
    p.add_argument("--key", action="append", default=[], metavar="JSON", help='{"pk":"a"} or {"pk":{"S":"a"}}')
    p.set_defaults(handler=Command("restore", "cmd_get"))

    plan = sub.add_parser("plan", help="backup plans of the deployed stack")
    plan_sub = plan.add_subparsers(dest="plan_command", required=True, parser_class=Parser)
    p = plan_sub.add_parser("list", parents=[common], help="list the deployed plans")
    p.set_defaults(handler=Command("plans", "cmd_plan_list"))
    p = plan_sub.add_parser("run", parents=[common], help="run a plan now and follow it to the end")
    p.add_argument("name")
    p.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    p.set_defaults(handler=Command("plans", "cmd_plan_run"))

    p = sub.add_parser("check", parents=[common], help="verify the vault's structure and, optionally, every blob")
    reads = p.add_mutually_exclusive_group()
    reads.add_argument("--read-data", action="store_true", help="read, decrypt and hash every blob")
    reads.add_argument("--read-data-subset", metavar="SPEC", help="read part n of m packs (n/m) or a share (10%%)")
    p.set_defaults(handler=Command("vault", "cmd_check"))

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
    p.add_argument(
        "--keep-tag",
        action="append",
        default=[],
        dest="keep_tags",
        metavar="TAG",
        help="keep points with TAG (k or k=v)",
    )
    p.add_argument("--prune", action="store_true", help="prune afterwards")
    _add_prune_options(p)
    p.set_defaults(handler=Command("maintenance", "cmd_forget"))

    p = sub.add_parser("prune", parents=[common], help="delete unreferenced data and repack mostly-empty packs")
    _add_prune_options(p)
    p.set_defaults(handler=Command("maintenance", "cmd_prune"))

    p = sub.add_parser("index", help="the dedup index: compact it into a sharded generation")
    index_sub = p.add_subparsers(dest="index_command", required=True, parser_class=Parser)
    p = index_sub.add_parser(
        "compact",
        parents=[common],
        help="consolidate the index objects into shards behind a filter (workers then "
        "fetch shards on demand instead of loading the whole index)",
    )
    p.add_argument("--force", action="store_true", help="write a new generation even if the current one is complete")
    p.set_defaults(handler=Command("maintenance", "cmd_index_compact"))

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
    p.set_defaults(handler=Command("maintenance", "cmd_stats"))

    p = sub.add_parser("diff", parents=[common], help="objects added, removed and changed between recovery points")
    p.add_argument("old", metavar="RP1", help="id, unique id prefix, or 'latest'")
    p.add_argument("new", metavar="RP2", help="id, unique id prefix, or 'latest'")
    p.set_defaults(handler=Command("maintenance", "cmd_diff"))

    p = sub.add_parser("drill", parents=[common], help="restore a recovery point into scratch space and compare")
    p.add_argument("recovery_point", nargs="?", help="id, unique prefix or 'latest' (default: one at random)")
    p.add_argument("--scratch", required=True, help="s3://bucket/prefix or a directory to restore under")
    p.add_argument("--keep", action="store_true", help="leave the scratch copy in place")
    p.set_defaults(handler=Command("maintenance", "cmd_drill"))

    hold = sub.add_parser("hold", help="S3 legal holds on everything a recovery point needs")
    hold_sub = hold.add_subparsers(dest="hold_command", required=True, parser_class=Parser)
    p = hold_sub.add_parser("add", parents=[common], help="place a legal hold (forget and prune leave it)")
    p.add_argument("recovery_point", help="id, unique id prefix, or 'latest'")
    p.add_argument("--reason", help="why (a case number, a ticket), kept in the hold's record")
    p.set_defaults(handler=Command("holds", "cmd_hold_add"))
    p = hold_sub.add_parser("remove", parents=[common], help="lift a legal hold (what other holds need stays)")
    p.add_argument("recovery_point", help="id, unique id prefix, or 'latest'")
    p.set_defaults(handler=Command("holds", "cmd_hold_remove"))
    p = hold_sub.add_parser("list", parents=[common], help="the vault's holds, or one recovery point's hold state")
    p.add_argument("recovery_point", nargs="?", help="id, unique id prefix, or 'latest'")
    p.set_defaults(handler=Command("holds", "cmd_hold_list"))

    key = sub.add_parser("key", help="the key slots that wrap an encrypted vault's data key")
    key_sub = key.add_subparsers(dest="key_command", required=True, parser_class=Parser)
    p = key_sub.add_parser("list", parents=[common], help="list the key slots (reads no key, calls no KMS)")
    p.set_defaults(handler=Command("keys", "cmd_key_list"))
    p = key_sub.add_parser("add", parents=[common], help="wrap the data key under another KMS key or a passphrase")
    new_key = p.add_mutually_exclusive_group(required=True)
    new_key.add_argument("--kms-key-id", metavar="ID", help="KMS key id, alias or ARN (an ARN's region is used)")
    new_key.add_argument(
        "--passphrase-file",
        dest="new_passphrase_file",
        metavar="FILE",
        help="the new slot's passphrase (to open with a passphrase, give --passphrase-file before `key`)",
    )
    p.set_defaults(handler=Command("keys", "cmd_key_add"))
    p = key_sub.add_parser("remove", parents=[common], help="remove a key slot (never the last one known to work)")
    p.add_argument("slot", metavar="ID", help="a slot id from `vaultline key list`")
    p.set_defaults(handler=Command("keys", "cmd_key_remove"))

    lock = sub.add_parser("lock", help="S3 Object Lock retention of what recovery points need")
    lock_sub = lock.add_subparsers(dest="lock_command", required=True, parser_class=Parser)
    p = lock_sub.add_parser("status", parents=[common], help="what is locked until when, what lapses before long")
    _add_lock_window(p)
    p.set_defaults(handler=Command("lock", "cmd_lock_status"))
    p = lock_sub.add_parser("extend", parents=[common], help="extend what lapses soon (what maintenance runs)")
    _add_lock_window(p)
    p.set_defaults(handler=Command("lock", "cmd_lock_extend"))
    p = lock_sub.add_parser("set", parents=[common], help="raise the vault's Object Lock settings (never lower)")
    p.add_argument("--lock-days", type=_days, required=True, help="days each needed object stays locked from now")
    p.add_argument(
        "--lock-min-days", type=_days, help="the lowest --lock-days any later change may set (default: kept)"
    )
    p.add_argument(
        "--lock-max-days", type=_days, help="the highest --lock-days any later change may set (default: kept)"
    )
    p.add_argument("--mode", choices=["governance", "compliance"], help="the Object Lock mode (default: kept)")
    p.set_defaults(handler=Command("lock", "cmd_lock_set"))

    p = sub.add_parser("unlock", parents=[common], help="remove stale locks (left by crashed processes)")
    p.add_argument("--remove-all", action="store_true", help="remove every lock; only when nothing else runs")
    p.set_defaults(handler=Command("maintenance", "cmd_unlock"))
    return parser
