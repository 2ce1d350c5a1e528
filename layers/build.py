"""Build the shared Lambda layer without Docker: pip fetches manylinux aarch64 wheels for CPython 3.12.

    python layers/build.py          # build build/layer/ unless its stamp is up to date
    python layers/build.py --force  # rebuild anyway

The layer holds the pinned runtime dependencies (layers/requirements.txt) and the `vaultline` engine, under
`python/` as Lambda expects. A stamp next to the layer records a hash of everything the build reads; a build whose
inputs have not changed is skipped, so `cdk synth` and the tests only pay for pip when something changed.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "layers" / "requirements.txt"
ENGINE = ROOT / "vaultline"
BUILD = ROOT / "build"
LAYER = BUILD / "layer"
STAMP = BUILD / "layer.stamp"
LOCK = BUILD / "layer.lock"

# Graviton (arm64) is the functions' architecture; only wheels, never an sdist compiled for the build host.
PIP_TARGET_ARGS = (
    "--platform",
    "manylinux2014_aarch64",
    "--only-binary=:all:",
    "--implementation",
    "cp",
    "--python-version",
    "3.12",
)


def layer_digest() -> str:
    """Hash of the requirements, the pip target arguments and every engine source file."""
    digest = hashlib.sha256()
    digest.update(" ".join(PIP_TARGET_ARGS).encode())
    digest.update(REQUIREMENTS.read_bytes())
    for path in sorted(ENGINE.rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def build_layer(force: bool = False) -> str:
    """Make build/layer/ current and return its digest (also usable as the CDK asset hash)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    # pytest-xdist workers and a parallel `cdk synth` may all ask for the layer at once: build it once.
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        digest = layer_digest()
        if not force and LAYER.is_dir() and STAMP.is_file() and STAMP.read_text().strip() == digest:
            return digest
        staging = BUILD / "layer.partial"
        shutil.rmtree(staging, ignore_errors=True)
        site = staging / "python"
        _pip_install(site)
        shutil.copytree(ENGINE, site / "vaultline", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # Swap in the finished tree only now, so an interrupted build never leaves a half layer behind a stamp.
        shutil.rmtree(LAYER, ignore_errors=True)
        staging.rename(LAYER)
        STAMP.write_text(digest + "\n")
        return digest


def _pip_install(site: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        # .pyc files compiled by the build host's Python would not match the runtime's 3.12.
        "--no-compile",
        *PIP_TARGET_ARGS,
        "--target",
        str(site),
        "-r",
        str(REQUIREMENTS),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"layer build failed: {' '.join(command)}\n{result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild even if the stamp is up to date")
    args = parser.parse_args(argv)
    digest = build_layer(force=args.force)
    print(f"{LAYER.relative_to(ROOT)} {digest[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
