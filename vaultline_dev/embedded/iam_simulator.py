"""The IAM evaluator of the embedded AWS: one long-lived ``@cloud-copilot/iam-simulate`` process.

``iam_simulate.mjs`` (beside this module) reads one simulation per line on stdin and answers one line on stdout.
Starting Node costs far more than a decision, so the process lives as long as the embedded AWS and a lock keeps
one request in flight: moto serves each HTTP request in its own thread, and they queue here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections import deque
from pathlib import Path
from statistics import median
from time import perf_counter
from typing import Any, Literal

from pydantic import BaseModel

from vaultline.errors import VaultlineError

SCRIPT = Path(__file__).with_name("iam_simulate.mjs")
_TIMINGS_KEPT = 100_000


class SimulatorError(VaultlineError):
    """The simulator could not run or rejected a request (a bug in the request mapping, not a denial)."""


class Verdict(BaseModel):
    """One answer of the simulator."""

    result: Literal["Allowed", "ExplicitlyDenied", "ImplicitlyDenied", "Error"]
    denials: list[str] = []
    """``Explicit:<policy type>`` / ``Implicit:<policy type>`` per reason (types: identity, resource, ...)."""
    error: str | None = None

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"


class Simulator:
    """A running ``iam_simulate.mjs``; :meth:`decide` sends it one simulation and waits for the answer."""

    def __init__(self, project_dir: Path | None = None) -> None:
        node = shutil.which("node")
        if node is None:
            raise SimulatorError("the embedded AWS authorizes with Node's iam-simulate, but `node` is not on PATH")
        # Node resolves the package from the script's directory upwards: the project's node_modules (`make venv`).
        cwd = project_dir or SCRIPT.parents[2]
        if not (cwd / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
            raise SimulatorError(f"@cloud-copilot/iam-simulate is not installed in {cwd}: run `make venv` (npm ci)")
        self._process = subprocess.Popen(
            [node, str(SCRIPT)],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lock = threading.Lock()
        self._next_id = 0
        # Seconds per decision, round trip included: the embedded AWS reports their median.
        self.timings: deque[float] = deque(maxlen=_TIMINGS_KEPT)

    def decide(self, simulation: dict[str, Any]) -> Verdict:
        """Evaluate one iam-simulate ``Simulation`` (request, identity policies, resource policy)."""
        with self._lock:
            assert self._process.stdin is not None and self._process.stdout is not None
            self._next_id += 1
            started = perf_counter()
            try:
                self._process.stdin.write(json.dumps({"id": self._next_id, "simulation": simulation}) + "\n")
                self._process.stdin.flush()
                line = self._process.stdout.readline()
            except (BrokenPipeError, OSError) as exc:
                raise SimulatorError(f"the IAM simulator process died: {exc}") from exc
            self.timings.append(perf_counter() - started)
        if not line:
            raise SimulatorError(f"the IAM simulator process exited with code {self._process.poll()}")
        return Verdict.model_validate_json(line)

    def median_ms(self) -> float | None:
        """Median milliseconds per decision so far (None before the first)."""
        return median(self.timings) * 1000 if self.timings else None

    def close(self) -> None:
        """Stop the process (it exits at the end of its stdin)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
