"""What the commands print: the two consoles, sizes for people, progress bars on a terminal, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

from vaultline.cli.stack import MapProgress

# Piped output gets wide tables rather than 80 columns of wrapped ids.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units, as people read them (``12.3 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def emit_json(value: Any) -> None:
    """Print the one JSON document of a ``--json`` command."""
    print(json.dumps(value, indent=2, default=str))


@contextmanager
def transfer_progress(
    enabled: bool, label: str, total: int | None = None
) -> Iterator[Callable[[int, int], None] | None]:
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


@contextmanager
def execution_progress(enabled: bool, label: str) -> Iterator[Callable[[str, MapProgress], None] | None]:
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
