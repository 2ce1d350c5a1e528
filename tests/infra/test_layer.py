"""The shared layer is built without Docker and holds arm64 (AArch64) binaries for CPython 3.12."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from infra import constants as c
from infra.layer import build_layer

EM_AARCH64 = 183


def _e_machine(path: Path) -> int:
    """ELF header: magic (4), class, data (endianness), ...; e_machine is the 2-byte field at offset 18."""
    header = path.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", f"{path} is not an ELF file"
    endian = "<" if header[5] == 1 else ">"
    machine: int = struct.unpack_from(f"{endian}H", header, 18)[0]
    return machine


@pytest.fixture(scope="module")
def site() -> Path:
    build_layer()  # cached by its stamp; the session's synth has usually built it already
    return c.LAYER_DIR / "python"


@pytest.mark.parametrize("package", ["pyfastcdc", "zstandard", "blake3", "cryptography", "pydantic_core", "orjson"])
def test_native_modules_are_aarch64_for_cpython_312(site: Path, package: str) -> None:
    modules = list((site / package).rglob("*.so"))
    assert modules, f"no compiled module in {package}"
    for module in modules:
        assert _e_machine(module) == EM_AARCH64, module
        assert "x86_64" not in module.name
        if ".cpython-" in module.name:
            assert ".cpython-312-aarch64-linux-gnu" in module.name, module.name


def test_layer_holds_the_engine_and_not_boto3(site: Path) -> None:
    assert (site / "vaultline" / "__init__.py").is_file()
    assert (site / "vaultline" / "plans.py").is_file()
    assert not (site / "boto3").exists()  # the Lambda runtime provides it
    assert not list((site / "vaultline").rglob("__pycache__"))


def test_layer_rebuild_is_skipped_when_its_stamp_is_current() -> None:
    digest = build_layer()
    marker = c.LAYER_DIR / "python" / "vaultline" / "__init__.py"
    before = marker.stat().st_mtime_ns
    assert build_layer() == digest
    assert marker.stat().st_mtime_ns == before
