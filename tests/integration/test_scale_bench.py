"""The scale benchmarks' quick modes run end to end (its figures are for people; only that it runs is checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_scale_bench_prints_its_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale_bench.py"), "--quick", "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "step" in done.stdout and "peak MiB" in done.stdout and "B/unit" in done.stdout
    assert "Largest size within Lambda's limits" in done.stdout
    assert not list(tmp_path.iterdir()), "the synthetic vault is removed"


def _run_bench(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_quick_table_bench_prints_growth_and_restore() -> None:
    out = _run_bench("table_bench.py", "--quick")
    assert "mean growth a backup" in out and "restore read of the last recovery point: 3000 items" in out


@pytest.mark.slow
def test_quick_table_scale_bench_prints_its_extrapolation() -> None:
    out = _run_bench("table_scale_bench.py", "--quick")
    assert "worker, day 2 (1% delta)" in out and "table commit:" in out and "restore: one worker a segment" in out
