"""The same steps run with restic, when it is installed, for side-by-side ratios."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from measure import StepResult, run_measured

PASSWORD = "vaultline-bench"


def available() -> bool:
    return shutil.which("restic") is not None


def version() -> str:
    return run_measured(["restic", "version"]).stdout.strip()


@dataclass
class Restic:
    """A restic repository under the bench work directory, with its own cache (not the user's)."""

    repo: Path
    cache: Path

    def _run(self, *args: str) -> StepResult:
        env = {"RESTIC_PASSWORD": PASSWORD, "RESTIC_REPOSITORY": str(self.repo), "RESTIC_CACHE_DIR": str(self.cache)}
        return run_measured(["restic", "--quiet", *args], env=env)

    def init(self) -> StepResult:
        for path in (self.repo, self.cache):
            shutil.rmtree(path, ignore_errors=True)
        return self._run("init")

    def backup(self, source: Path) -> StepResult:
        result = self._run("backup", "--json", str(source))
        for line in reversed(result.stdout.splitlines()):
            if '"summary"' in line:
                result.report = json.loads(line)
                break
        return result

    def restore(self, target: Path) -> StepResult:
        shutil.rmtree(target, ignore_errors=True)
        return self._run("restore", "latest", "--target", str(target))

    def check_read_data(self) -> StepResult:
        return self._run("check", "--read-data")
