"""Start-up: how long ``vaultline --help`` takes, and what importing each Lambda handler module costs (a cold start).

Run ``.venv/bin/python bench/startup_bench.py`` (``make bench`` runs it). Each figure is the median of several runs of
a fresh interpreter, wall time including the interpreter's own start; the bare interpreter is printed alongside as
the floor. The handler imports run in ``functions/`` as Lambda runs them (the code root on ``sys.path``), with
AWS_DEFAULT_REGION set and nothing else: a module that does work at import pays for it here too.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
CLI_TARGET_SECONDS = 0.25


def timed(cmd: list[str], runs: int, cwd: Path = ROOT, env: dict[str, str] | None = None) -> float:
    """Median wall seconds of ``cmd`` over ``runs`` runs (it must succeed)."""
    seconds = []
    for _ in range(runs):
        clock = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds.append(time.perf_counter() - clock)
    return statistics.median(seconds)


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
    help_seconds = timed([cli, "--help"], args.runs)
    print(f"{'python -c pass':<40}{floor:>8.3f} s")
    print(
        f"{'vaultline --help':<40}{help_seconds:>8.3f} s   (target < {CLI_TARGET_SECONDS} s: "
        f"{'met' if help_seconds < CLI_TARGET_SECONDS else 'NOT met'})"
    )
    env = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "us-east-1")}
    env["PYTHONPATH"] = os.pathsep.join([str(FUNCTIONS), str(ROOT)])
    figures = {}
    for module in handler_modules():
        figures[module] = timed([python, "-c", f"import {module}"], args.handler_runs, cwd=FUNCTIONS, env=env)
    for module, seconds in sorted(figures.items(), key=lambda item: -item[1]):
        print(f"{'import ' + module:<40}{seconds:>8.3f} s")
    print(f"{'handler import, median of modules':<40}{statistics.median(figures.values()):>8.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
