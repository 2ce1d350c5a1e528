"""Running one benchmark step in a child process and measuring its wall time and peak RSS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
POLL_SECONDS = 0.02


@dataclass
class StepResult:
    """Wall seconds and peak RSS of one child process, with what it reported on stdout (JSON if any)."""

    seconds: float
    peak_rss_mib: float
    report: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    # user + system CPU seconds of the child (wait4): on a shared, loaded machine the figure that barely moves.
    cpu_seconds: float = 0.0


def run_measured(cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> StepResult:
    """Run ``cmd`` to completion; peak RSS comes from ``wait4`` (this child's own rusage, not all children's)."""
    # Flush what earlier steps left dirty, so their write-back neither slows this step nor is charged to it.
    os.sync()
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(cmd), stdout=out_file, stderr=err_file, env={**os.environ, **(env or {})}, cwd=cwd, text=True
        )
        peak_kib, status, cpu = _wait_with_peak(proc.pid)
        seconds = time.perf_counter() - started
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {code}:\n{err[-4000:]}")
    report = _parse_json(out)
    # A child that reports its own VmHWM is exact; the polled figure may miss growth in its last few ms.
    peak = max(peak_kib / 1024, float(report.get("vm_hwm_mib", 0.0)))
    return StepResult(seconds, peak, report, out, cpu)


def _wait_with_peak(pid: int) -> tuple[int, int, float]:
    """Wait for ``pid``; return (its peak RSS in KiB polled from /proc VmHWM, wait status, its CPU seconds).

    Not ``ru_maxrss`` from wait4: Linux carries the parent's high-water mark over fork and exec into the child's
    figure, so every child of a large parent would report at least the parent's RSS.
    """
    peak = 0
    status_file = Path(f"/proc/{pid}/status")
    while True:
        waited, status, usage = os.wait4(pid, os.WNOHANG)
        if waited:
            return peak, status, usage.ru_utime + usage.ru_stime
        try:
            for line in status_file.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
                    break
        except OSError:
            pass
        time.sleep(POLL_SECONDS)


def _parse_json(out: str) -> dict[str, Any]:
    last = out.strip().rsplit("\n", 1)[-1] if out.strip() else ""
    try:
        value = json.loads(last)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def run_engine_step(step: str, *args: str) -> StepResult:
    """Run ``bench/engine_steps.py STEP ARGS`` in a fresh interpreter (so RSS is the step's own).

    With bytecode cached, as an installed package has it: a session that sets PYTHONDONTWRITEBYTECODE would
    otherwise have every step compile the engine's ~100 modules again (0.2-0.3 s of CPU per step on the bench box,
    measured), a cost no installed CLI pays and a third of a 256 MiB restore's wall time."""
    env = {"PYTHONDONTWRITEBYTECODE": ""}  # empty is unset to Python
    return run_measured([sys.executable, str(BENCH_DIR / "engine_steps.py"), step, *args], env=env)


def dir_bytes(root: Path) -> int:
    """Bytes of all files under ``root`` (apparent size, like ``du -sb``)."""
    total = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            total += os.path.getsize(os.path.join(dirpath, name))
    return total
