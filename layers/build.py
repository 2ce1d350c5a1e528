"""Build the shared Lambda layer without Docker: pip fetches manylinux wheels for CPython 3.12.

    python layers/build.py          # build build/layer/ (arm64, what `cdk deploy` uploads) unless its stamp is current
    python layers/build.py --host   # build build/layer-host/, the same layer for this machine (the embedded AWS)
    python layers/build.py --force  # rebuild anyway

The layer holds the pinned runtime dependencies (layers/requirements.txt) and the `vaultline` engine, under
`python/` as Lambda expects. The host twin is built by the same code from the same pins and differs only in pip's
`--platform`, so the embedded AWS runs exactly what the deployed layer holds. A stamp next to each build records a
hash of everything it reads; a build whose inputs have not changed is skipped, so `cdk synth` and the tests only pay
for pip when something changed, and pip runs again only when the pins (not the engine) change.

The layer ships bytecode, compiled by the runtime's CPython (pyenv's newest 3.12.x):
Lambda mounts it read-only at /opt, so without .pyc files every cold start compiled every module it imported from
source (measured by bench/startup_bench.py: the import took half again as long). The .pyc files are
``unchecked-hash``: the layer never changes once built, so the runtime need not stat or hash a source to trust them.

`build_runtime_sdk()` installs what the Lambda runtime itself provides (layers/runtime-requirements.txt: boto3 and
its dependencies) for the embedded AWS's sandboxes.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "layers" / "requirements.txt"
RUNTIME_REQUIREMENTS = ROOT / "layers" / "runtime-requirements.txt"
ENGINE = ROOT / "vaultline"
BUILD = ROOT / "build"
LAYER = BUILD / "layer"
STAMP = BUILD / "layer.stamp"
LOCK = BUILD / "layer.lock"
LAYER_PYTHON_VERSION = "3.12"
# The layer ships the `vaultline` package whole; what only the demo and the tests need lives in `vaultline_dev`.
# Its bytecode is compiled in the layer (BYTECODE), never copied from the working tree.
ENGINE_EXCLUDED = ("__pycache__", "*.pyc")
# How the layer's .pyc files are compiled; part of the layer's digest, so a change rebuilds the layer.
BYTECODE = ("-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash")


class Target(NamedTuple):
    """Where a build goes and the one thing that tells builds of the same pins apart: pip's platform tag.

    A NamedTuple, not a dataclass: this script is loaded by path, outside ``sys.modules``, where dataclasses fail.
    """

    name: str
    platform_tag: str
    python_version: str = LAYER_PYTHON_VERSION

    @property
    def directory(self) -> Path:
        return BUILD / self.name

    @property
    def stamp(self) -> Path:
        return BUILD / f"{self.name}.stamp"

    @property
    def lock(self) -> Path:
        return BUILD / f"{self.name}.lock"

    def pip_args(self) -> tuple[str, ...]:
        # Only wheels, never an sdist compiled for the build host; every pin is listed, so no resolver either.
        return (
            "--platform",
            self.platform_tag,
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            self.python_version,
            "--no-deps",
        )


# Graviton (arm64) is the functions' architecture.
LAMBDA = Target("layer", "manylinux2014_aarch64")


def host_target(name: str = "layer-host", python_version: str = LAYER_PYTHON_VERSION) -> Target:
    """The same build for this machine's architecture (x86_64 or aarch64), for the embedded AWS."""
    return Target(name, f"manylinux2014_{platform.machine()}", python_version)


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()


def _engine_bytes() -> bytes:
    chunks: list[bytes] = []
    for path in sorted(ENGINE.rglob("*.py")):
        relative = path.relative_to(ENGINE)
        if relative.parts[0] in ENGINE_EXCLUDED or relative.name in ENGINE_EXCLUDED:
            continue
        chunks.append(str(relative).encode() + b"\0" + path.read_bytes())
    return b"\1".join(chunks)


def dependencies_digest(target: Target = LAMBDA, requirements: Path = REQUIREMENTS) -> str:
    """Hash of what pip reads: the pins and the target arguments."""
    return _digest(" ".join(target.pip_args()).encode(), requirements.read_bytes())


def layer_digest(target: Target = LAMBDA, requirements: Path = REQUIREMENTS) -> str:
    """Hash of the requirements, the pip target arguments, how bytecode is compiled and every engine source file
    the layer ships."""
    return _digest(dependencies_digest(target, requirements).encode(), " ".join(BYTECODE).encode(), _engine_bytes())


def runtime_interpreter(python_version: str) -> Path | None:
    """The CPython of Lambda's runtime for ``python_version``: pyenv's newest install of that minor version (the
    embedded AWS runs functions on it too), or None."""
    versions = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = sorted(
        (p for p in versions.glob(f"{python_version}.*") if (p / "bin" / f"python{python_version}").is_file()),
        key=lambda p: [int(part) if part.isdigit() else -1 for part in p.name.split(".")],
    )
    return found[-1] / "bin" / f"python{python_version}" if found else None


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    # pytest-xdist workers and a parallel `cdk synth` may all ask for the same build at once: build it once.
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _current(directory: Path, stamp: Path, digest: str) -> bool:
    return directory.is_dir() and stamp.is_file() and stamp.read_text().strip() == digest


def _swap_in(staging: Path, directory: Path, stamp: Path, digest: str) -> None:
    # Swap in the finished tree only now, so an interrupted build never leaves a half build behind a stamp.
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    stamp.write_text(digest + "\n")


def build_layer(force: bool = False, target: Target = LAMBDA, requirements: Path = REQUIREMENTS) -> str:
    """Make ``target``'s layer directory current and return its digest (also usable as the CDK asset hash)."""
    with _exclusive(target.lock):
        digest = layer_digest(target, requirements)
        if not force and _current(target.directory, target.stamp, digest):
            return digest
        dependencies = _build_dependencies(force, target, requirements)
        staging = BUILD / f"{target.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        # Hard links: an engine-only change re-assembles the layer in a moment instead of re-running pip.
        shutil.copytree(dependencies, staging, copy_function=_link_or_copy)
        shutil.copytree(ENGINE, staging / "python" / "vaultline", ignore=shutil.ignore_patterns(*ENGINE_EXCLUDED))
        _compile(staging / "python", target.python_version)
        _swap_in(staging, target.directory, target.stamp, digest)
        return digest


def _build_dependencies(force: bool, target: Target, requirements: Path) -> Path:
    directory = BUILD / f"{target.name}.deps"
    stamp = BUILD / f"{target.name}.deps.stamp"
    digest = dependencies_digest(target, requirements)
    if force or not _current(directory, stamp, digest):
        staging = BUILD / f"{target.name}.deps.partial"
        shutil.rmtree(staging, ignore_errors=True)
        _pip_install(staging / "python", target, requirements)
        _swap_in(staging, directory, stamp, digest)
    return directory


def build_runtime_sdk(python_version: str = LAYER_PYTHON_VERSION, force: bool = False) -> Path:
    """Install the SDK the Lambda runtime provides (for this machine) and return the directory to put on sys.path."""
    target = host_target(f"runtime-sdk-{python_version}", python_version)
    with _exclusive(target.lock):
        digest = dependencies_digest(target, RUNTIME_REQUIREMENTS)
        if force or not _current(target.directory, target.stamp, digest):
            staging = BUILD / f"{target.name}.partial"
            shutil.rmtree(staging, ignore_errors=True)
            _pip_install(staging, target, RUNTIME_REQUIREMENTS)
            _swap_in(staging, target.directory, target.stamp, digest)
    return target.directory


def _compile(site: Path, python_version: str) -> None:
    # With the runtime's own CPython: bytecode is specific to a minor version (and the build host's may differ).
    # Without pyenv, the system's (or another manager's) interpreter of that minor version will do for compiling.
    on_path = shutil.which(f"python{python_version}")
    python = runtime_interpreter(python_version) or (Path(on_path) if on_path else None)
    if python is None:
        raise RuntimeError(
            f"the layer's bytecode needs CPython {python_version}, the Lambda runtime's: "
            f"run `pyenv install {python_version}` or put python{python_version} on PATH"
        )
    result = subprocess.run([str(python), *BYTECODE, str(site)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"compiling the layer's bytecode failed:\n{(result.stdout + result.stderr).strip()}")


def _link_or_copy(source: str, destination: str) -> object:
    try:
        Path(destination).hardlink_to(source)
    except OSError:
        shutil.copy2(source, destination)
    return destination


def _pip_install(site: Path, target: Target, requirements: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        # .pyc files compiled by the build host's Python would not match the runtime's 3.12.
        "--no-compile",
        *target.pip_args(),
        "--target",
        str(site),
        "-r",
        str(requirements),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"layer build failed: {' '.join(command)}\n{result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="rebuild even if the stamp is up to date")
    parser.add_argument("--host", action="store_true", help="build the twin for this machine (the embedded AWS)")
    args = parser.parse_args(argv)
    target = host_target() if args.host else LAMBDA
    digest = build_layer(force=args.force, target=target)
    print(f"{target.directory.relative_to(ROOT)} {digest[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
