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

Each handler is timed twice. "cached" imports from the build directories, where the sandbox's earlier runs may
have left .pyc files of their own: what a warm embedded AWS pays. "as shipped" imports, under ``-B``, from a copy of
the layer as built and of the code without its ``__pycache__``, as Lambda does: /opt and /var/task are read-only,
so what the layer does not ship as bytecode (layers/build.py compiles it) a cold start compiles from source at every
import (the functions' own few modules; the runtime's SDK and standard library keep their bytecode).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
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
    print(f"{label:<48}{figures[0]:>8.3f} s wall {figures[1]:>8.3f} s CPU{note}", flush=True)


def handler_modules() -> list[str]:
    return sorted(p.stem for p in FUNCTIONS.glob("*.py") if p.stem not in ("observability", "__init__"))


def handler_imports(
    runtime: Path, code_root: Path, site: Path, sdk: Path, runs: int, flags: tuple[str, ...] = ()
) -> dict[str, tuple[float, float]]:
    """(wall, CPU) of importing each handler module with ``sys.path`` the code, the layer's site and the SDK."""
    sys_path = [str(code_root), str(site), str(sdk)]
    region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
    env = {"AWS_DEFAULT_REGION": region, "AWS_REGION": region, "LAMBDA_TASK_ROOT": str(code_root)}
    env["PATH"] = "/usr/bin:/bin"
    figures = {}
    for module in handler_modules():
        code = f"import sys; sys.path[:0] = {sys_path!r}; import {module}"
        command = [str(runtime), "-I", "-S", *flags, "-c", code]
        figures[module] = timed(command, runs, cwd=code_root, env=env)
    return figures


def summary(label: str, figures: dict[str, tuple[float, float]]) -> None:
    walls = [wall for wall, _ in figures.values()]
    cpus = [cpu for _, cpu in figures.values()]
    line(f"{label}: median of handlers", (statistics.median(walls), statistics.median(cpus)))
    worst = max(figures, key=lambda module: figures[module][1])
    line(f"{label}: worst, {worst}", figures[worst])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per figure (median; default %(default)s)")
    parser.add_argument("--handler-runs", type=int, default=3, help="runs per handler module (default %(default)s)")
    parser.add_argument("--cached-only", action="store_true", help="skip the imports as shipped")
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
    site, sdk = builds.host_layer() / "python", builds.runtime_sdk(RUNTIMES[LAMBDA_RUNTIME])
    print(f"handler imports: {runtime} -I -S, sys.path {[str(FUNCTIONS), str(site), str(sdk)]}", flush=True)
    warm = f"import sys; sys.path[:0] = {[str(FUNCTIONS), str(site), str(sdk)]!r}; " + "; ".join(
        f"import {module}" for module in handler_modules()
    )
    subprocess.run([str(runtime), "-I", "-S", "-c", warm], cwd=FUNCTIONS, check=True)  # writes what a rebuild left out
    cached = handler_imports(runtime, FUNCTIONS, site, sdk, args.handler_runs)
    shipped: dict[str, tuple[float, float]] = {}
    if not args.cached_only:
        with tempfile.TemporaryDirectory(prefix="startup-bench-") as scratch:
            # infra/functions.py's asset leaves the functions' bytecode out; the layer ships what its build compiled.
            no_bytecode = shutil.ignore_patterns("__pycache__", "*.pyc")
            code_root = shutil.copytree(FUNCTIONS, Path(scratch) / "task", ignore=no_bytecode)
            shipped_site = shutil.copytree(site, Path(scratch) / "opt" / "python")
            shipped = handler_imports(runtime, code_root, shipped_site, sdk, args.handler_runs, flags=("-B",))
    print(f"{'':<48}{'cached .pyc':>30}" + (f"{'as shipped':>34}" if shipped else ""))
    for module, measured in sorted(cached.items(), key=lambda item: -item[1][1]):
        note = f"{shipped[module][0]:>12.3f} s wall {shipped[module][1]:>8.3f} s CPU" if shipped else ""
        line("import " + module, measured, note)
    summary("cached", cached)
    if shipped:
        summary("as shipped", shipped)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
