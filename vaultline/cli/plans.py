"""The plan commands: list the deployed stack's backup plans, run one now and follow it to the end."""

from __future__ import annotations

import argparse

from rich.table import Table

from vaultline.cli.context import stack_of
from vaultline.cli.output import emit_json, err, execution_progress, human_bytes, out
from vaultline.cli.stack import follow, plan_inputs, start
from vaultline.repository.manifest import Issues
from vaultline.runs.requests import deployed_backup, execution_input

# The plan run sender keeps the names it had in cli/main.py: another change edits its body at the same time.


def cmd_plan_list(args: argparse.Namespace) -> int:
    stack = stack_of(args)
    if args.json:
        emit_json({"stack": stack.name, "vault": stack.vault_url, "plans": stack.plans})
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
    stack = stack_of(args)
    results = []
    for payload in plan_inputs(stack, args.name):
        # Validated as the state machine will, and sent as deployed (the fields the stack's input set).
        request = deployed_backup(payload)
        execution = start(stack.backup_state_machine, execution_input(request))
        with execution_progress(not args.json, f"plan {args.name}: {request.source.url}") as show:
            output = follow(execution, show, poll_seconds=args.poll)
        committed = output.get("committed", {})
        results.append({"execution": execution, **committed})
        if not args.json:
            stats = committed.get("stats", {})
            out.print(
                f"recovery point [bold]{committed.get('recovery_point')}[/] of {committed.get('source')}: "
                f"{stats.get('objects', 0)} objects, {human_bytes(stats.get('bytes', 0))}, "
                f"stored {human_bytes(stats.get('bytes_stored', 0))}"
            )
            issues = Issues.model_validate(committed.get("issues") or {})
            if issues.total:
                err.print(f"[yellow]completed with issues[/]: {issues.summary()}", highlight=False)
    if args.json:
        emit_json(results[0] if len(results) == 1 else results)
    return 0
