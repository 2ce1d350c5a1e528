"""The shared Lambda layer: the `vaultline` engine and its pinned runtime dependencies, for arm64 / Python 3.12.

`layers/build.py` builds it; the embedded AWS runs a host-platform twin of it built by the same code from the same
pins (`vaultline_dev/embedded/builds.py`).
"""

from __future__ import annotations

import importlib.util
from types import ModuleType

from aws_cdk import AssetHashType
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import constants as c


def _load_build_script() -> ModuleType:
    # layers/ is a folder of build inputs, not a package; load its script by path, as `python layers/build.py` would.
    spec = importlib.util.spec_from_file_location("vaultline_layer_build", c.LAYER_BUILD_SCRIPT)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {c.LAYER_BUILD_SCRIPT}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_layer() -> str:
    """Build (or reuse) build/layer/ and return its digest."""
    digest: str = _load_build_script().build_layer()
    return digest


class SharedLayer(Construct):
    """Builds the layer with pip at synth time (no Docker) and publishes it as a LayerVersion."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        digest = build_layer()
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            description="Vaultline engine and runtime dependencies (arm64, CPython 3.12)",
            # The stamp digest already identifies the content; hashing ~60 MB of files again on each synth is waste.
            code=lambda_.Code.from_asset(str(c.LAYER_DIR), asset_hash_type=AssetHashType.CUSTOM, asset_hash=digest),
            compatible_architectures=[lambda_.Architecture.ARM_64],
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
        )
