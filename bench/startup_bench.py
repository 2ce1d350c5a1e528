"""Start-up: how long ``vaultline --help`` takes, and what importing each Lambda handler module costs (a cold start).

Run ``.venv/bin/python bench/startup_bench.py`` (``make bench`` runs it). Each figure is the median of several runs of
a fresh interpreter, wall time including the interpreter's own start; the bare interpreter is printed alongside as
the floor. The handler imports run as the embedded Lambda's sandbox runs them, which is how Lambda does: the
functions' runtime's CPython (``-I -S``), ``sys.path`` of the code, the built layer's ``python/`` and the runtime's
own SDK, and not the development virtualenv (whose 150 distributions made every ``importlib.metadata`` scan, such as
pydantic's plugin lookup, cost more than the layer's 16 do), with AWS_DEFAULT_REGION and LAMBDA_TASK_ROOT set and
nothing else: a module that does work at import pays for it here too.
LAMBDA_TASK_ROOT because the X-Ray SDK and Powertools' Tracer branch on it: outside Lambda the recorder builds an
X-Ray client for its sampler and the Tracer stays off, in Lambda it samples locally and patches botocore; without
it the figures would time the path no cold start takes.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from vaultline_dev.embedded import builds, sandbox
from vaultline_dev.embedded.sandbox import RUNTIMES

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
CLI_TARGET_SECONDS = 0.25
LAMBDA_RUNTIME = "python3.12"  # infra/functions.py's lambda_.Runtime.PYTHON_3_12


def timed(cmd: list[str], runs: int, cwd: Path = ROOT, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Median (wall seconds, CPU seconds: user + system) of ``cmd`` over ``runs`` runs (it must succeed). The CPU
    figure hardly moves with the machine's load, the wall figure does."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        clock = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - clock)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def line(label: str, figures: tuple[float, float], note: str = "") -> None:
    print(f"{label:<40}{figures[0]:>8.3f} s wall {figures[1]:>8.3f} s CPU{note}", flush=True)


def handler_modules() -> list[str]:
    return sorted(p.stem for p in FUNCTIONS.glob("*.py") if p.stem not in ("observability", "__init__"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per figure (median; default %(default)s)")
    parser.add_argument("--handler-runs", type=int, default=3, help="runs per handler module (default %(default)s)")
    args = parser.parse_args(argv)
    python = sys.executable
    cli = str(Path(python).parent / "vaultline")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    floor = timed([python, "-c", "pass"], args.runs)
    help_figures = timed([cli, "--help"], args.runs)
    line("python -c pass", floor)
    met = "met" if help_figures[0] < CLI_TARGET_SECONDS else "NOT met"
    line("vaultline --help", help_figures, f"   (target < {CLI_TARGET_SECONDS} s wall: {met})")
    runtime = sandbox.runtime_python(LAMBDA_RUNTIME)
    sys_path = [str(FUNCTIONS), str(builds.host_layer() / "python"), str(builds.runtime_sdk(RUNTIMES[LAMBDA_RUNTIME]))]
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    env = {"AWS_DEFAULT_REGION": region, "AWS_REGION": region, "LAMBDA_TASK_ROOT": str(FUNCTIONS)}
    env["PATH"] = "/usr/bin:/bin"
    print(f"handler imports: {runtime} -I -S, sys.path {sys_path}", flush=True)
    figures = {}
    for module in handler_modules():
        code = f"import sys; sys.path[:0] = {sys_path!r}; import {module}"
        figures[module] = timed([str(runtime), "-I", "-S", "-c", code], args.handler_runs, cwd=FUNCTIONS, env=env)
    for module, measured in sorted(figures.items(), key=lambda item: -item[1][1]):
        line("import " + module, measured)
    walls = [wall for wall, _ in figures.values()]
    cpus = [cpu for _, cpu in figures.values()]
    line("handler import, median of modules", (statistics.median(walls), statistics.median(cpus)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
