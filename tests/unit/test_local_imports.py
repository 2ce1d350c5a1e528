"""What the CLI imports for a local directory vault: nothing of AWS, the DynamoDB engine, the plans, or rich.

Start-up is most of a small restore's wall time (about 0.3 s of 0.5 s for 256 MiB on the bench box), and the
imports a local command never uses were most of that start-up: botocore alone is 20-30 ms, boto3 a fifth of a
second. Each case runs ``vaultline`` in a fresh interpreter (the test process has long since imported everything)
and lists the modules it ended with; a new module-level import on the local path shows up here by name, with no
timing involved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Run ``main(argv)`` as the console script does (stdout, the --json document, thrown away), then print sys.modules.
PROBE = """
import contextlib, io, json, sys
from vaultline.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

# Not on any local path: the AWS SDK, the S3 backends, the stack client, the DynamoDB engine, the plans file.
AWS_AND_FRIENDS = (
    "boto3",
    "botocore",
    "vaultline.storage.s3",
    "vaultline.sources.s3",
    "vaultline.targets.s3",
    "vaultline.cli.stack",
    "vaultline.cli.tables",
    "vaultline.sources.dynamodb.table",
    "vaultline.operations.table_backup",
    "vaultline.plans",
)
# --json prints no console output: rich is for people.
WITH_JSON = (*AWS_AND_FRIENDS, "rich")


def modules_after(*argv: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], env=env, capture_output=True, text=True, check=True, cwd=ROOT
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["code"] == 0, done.stderr
    return set(result["modules"])


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (or a submodule of one) are in ``modules``."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.fixture(scope="module")
def local_vault(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A local vault with one recovery point of a small directory, made by the CLI; (vault, source)."""
    root = tmp_path_factory.mktemp("local")
    source = root / "source"
    (source / "sub").mkdir(parents=True)
    (source / "a.txt").write_text("alpha\n" * 1000)
    (source / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    vault = root / "vault"
    modules_after("--vault", str(vault), "init", "--json")
    modules_after("--vault", str(vault), "backup", str(source), "--json")
    return vault, source


def test_a_local_restore_imports_no_aws_dynamodb_plans_or_rich(local_vault: tuple[Path, Path]) -> None:
    vault, source = local_vault
    target = vault.parent / "restored"
    modules = modules_after("--vault", str(vault), "restore", "latest", "--to", str(target), "--json")
    assert (target / "sub" / "b.bin").read_bytes() == (source / "sub" / "b.bin").read_bytes()
    assert loaded(modules, WITH_JSON) == []
    assert loaded(modules, ("pyfastcdc", "vaultline.operations.backup")) == []  # the backup's chunker


def test_a_local_backup_imports_no_aws_dynamodb_plans_or_rich(local_vault: tuple[Path, Path]) -> None:
    vault, source = local_vault
    (source / "c.txt").write_text("gamma\n")
    modules = modules_after("--vault", str(vault), "backup", str(source), "--json")
    assert "vaultline.operations.backup" in modules  # the probe ran the backup
    assert loaded(modules, WITH_JSON) == []


def test_a_local_restore_for_people_imports_rich_but_no_aws(local_vault: tuple[Path, Path]) -> None:
    vault, _ = local_vault
    modules = modules_after("--vault", str(vault), "restore", "latest", "--to", str(vault.parent / "again"))
    assert "rich.console" in modules  # its one line of human output
    assert loaded(modules, AWS_AND_FRIENDS) == []
