"""What the commands print: the two consoles, sizes for people, progress bars on a terminal, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from vaultline.cli.stack import MapProgress

JSON_INDENT = "  "


class LazyConsole:
    """rich's Console, made at its first use: a ``--json`` command prints without it, and does not import rich
    (tens of milliseconds of a restore's few hundred, measured)."""

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console  # rich only when something is printed for people (see above)

            stream = sys.stderr if self._stderr else sys.stdout
            # Piped output gets wide tables rather than 80 columns of wrapped ids.
            width = None if self._stderr or stream.isatty() else 200
            self._console = Console(stderr=self._stderr, soft_wrap=not self._stderr, width=width)
        return self._console

    @property
    def is_terminal(self) -> bool:
        return self.console.is_terminal

    def print(self, *objects: Any, **options: Any) -> None:
        self.console.print(*objects, **options)


out = LazyConsole()
err = LazyConsole(stderr=True)


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units, as people read them (``12.3 MiB``)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def emit_json(value: Any) -> None:
    """Print the one JSON document of a ``--json`` command.

    An iterator anywhere in ``value`` is printed as an array, item by item as it yields, so that a listing of any
    length is never held whole; a zero-argument callable is called when its turn comes (a total known only once
    the streams before it have been printed). The text is that of ``json.dumps(value, indent=2)`` with each
    iterator a list and each callable its value.
    """
    write = sys.stdout.write
    for piece in _json_pieces(value, ""):
        write(piece)
    write("\n")
    sys.stdout.flush()


def _json_pieces(value: Any, indent: str) -> Iterator[str]:
    if callable(value):
        value = value()
    if not _lazy(value):
        # The common case, each item of a listing: one dumps, its lines shifted to their depth.
        yield json.dumps(value, indent=len(JSON_INDENT), default=str).replace("\n", "\n" + indent)
        return
    inner = indent + JSON_INDENT
    if isinstance(value, dict):
        separator = "{\n"
        for name, item in value.items():
            yield f"{separator}{inner}{json.dumps(str(name))}: "
            yield from _json_pieces(item, inner)
            separator = ",\n"
        yield f"\n{indent}}}"
    elif isinstance(value, Iterator | list | tuple):
        separator = "[\n"
        for item in value:
            yield separator + inner
            yield from _json_pieces(item, inner)
            separator = ",\n"
        yield "[]" if separator == "[\n" else f"\n{indent}]"


def _lazy(value: Any) -> bool:
    """Whether ``value`` holds an iterator or a callable to be printed as it comes."""
    if isinstance(value, dict):
        return any(_lazy(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_lazy(item) for item in value)
    return isinstance(value, Iterator) or callable(value)


@dataclass(frozen=True)
class Column:
    """A column of a streamed table: its title and width (0 for the last, as wide as its values)."""

    title: str
    width: int = 0
    right: bool = False

    def cell(self, text: str) -> str:
        return text.rjust(self.width) if self.right else text.ljust(self.width)


def print_rows(columns: Sequence[Column], rows: Iterable[Sequence[str]]) -> None:
    """Print a table for people row by row as ``rows`` yields, under a header: columns of fixed widths, the last
    one free, so that a listing of any length is never held to measure it (a wider value shifts its row only)."""
    write = sys.stdout.write
    write("  ".join(column.cell(column.title) for column in columns).rstrip() + "\n")
    for row in rows:
        write("  ".join(column.cell(text) for column, text in zip(columns, row, strict=True)).rstrip() + "\n")
    sys.stdout.flush()


@contextmanager
def transfer_progress(
    enabled: bool, label: str, total: int | None = None
) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for long work; nothing when writing JSON or not on a terminal."""
    if not enabled or not err.is_terminal:
        yield None
        return
    # rich's progress bars only when one is shown, on a terminal.
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[objects]} objects"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err.console, transient=True) as bar:
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
    from rich.progress import BarColumn, Progress, TextColumn  # as in transfer_progress

    columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}")]
    with Progress(*columns, console=err.console, transient=True) as bar:
        task = bar.add_task(label, total=None, detail="starting")

        def show(status: str, progress: MapProgress) -> None:
            done = progress.succeeded + progress.failed
            detail = f"{status.lower()}: {done}/{progress.total} items, {progress.failed} failed"
            bar.update(task, total=progress.total or None, completed=done, detail=detail)

        yield show
