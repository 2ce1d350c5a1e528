"""What the embedded Lambda runs functions on, built by `layers/build.py` (the very build `cdk deploy` uses).

The layer's host twin is the deployed layer built from the same pins for this machine's platform; the runtime SDK
is the boto3 that the Lambda runtime provides, at its pinned version. Both are cached by their build stamps.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "layers" / "build.py"


def _build_script() -> ModuleType:
    # layers/ is a folder of build inputs, not a package: load its script by path, as `python layers/build.py` would.
    name = "vaultline_layer_build"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BUILD_SCRIPT)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {BUILD_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def host_layer() -> Path:
    """The layer's host-platform twin (its root; Lambda mounts its ``python/`` as /opt/python)."""
    build = _build_script()
    target = build.host_target()
    build.build_layer(target=target)
    directory: Path = target.directory
    return directory


def runtime_sdk(python_version: str) -> Path:
    """The directory holding the SDK that Lambda's runtime for ``python_version`` provides."""
    directory: Path = _build_script().build_runtime_sdk(python_version)
    return directory


def runtime_interpreter(python_version: str) -> Path | None:
    """The CPython of Lambda's runtime for ``python_version`` on this machine (the one that compiles the layer's
    bytecode), or None when none is installed."""
    found: Path | None = _build_script().runtime_interpreter(python_version)
    return found
