"""The shared layer is built without Docker and holds arm64 (AArch64) binaries for CPython 3.12; its host twin (what
the embedded AWS runs) is the same build from the same pins, and every handler imports with only it."""

from __future__ import annotations

import ast
import struct
import subprocess
from pathlib import Path

import pytest

from infra import constants as c
from infra.layer import build_layer
from infra.registry import FUNCTIONS
from vaultline_dev.embedded import builds
from vaultline_dev.embedded.sandbox import runtime_python

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
    assert not (site / "botocore").exists()  # and a copy here would shadow the runtime's


def test_layer_ships_unchecked_bytecode_for_cpython_312_beside_every_source(site: Path) -> None:
    # Lambda mounts the layer read-only: a source without its .pyc is compiled again at every cold start.
    sources = sorted(site.rglob("*.py"))
    assert len(sources) > 500
    missing = [s for s in sources if not (s.parent / "__pycache__" / f"{s.stem}.cpython-312.pyc").is_file()]
    assert missing == []
    compiled = sorted(site.rglob("*.pyc"))
    assert [p for p in compiled if ".cpython-312." not in p.name] == []  # none from the working tree's interpreter
    headers = {p.read_bytes()[:8] for p in compiled}
    assert len({header[:4] for header in headers}) == 1  # one interpreter's magic number
    # PEP 552 flags: hash-based (bit 0), source not checked (bit 1 clear): nothing to stat or hash at import.
    assert {int.from_bytes(header[4:8], "little") for header in headers} == {0b01}


def _imported_packages(module: Path) -> set[str]:
    """The top-level package of every import statement in ``module``, wherever it stands (a late import in a
    function fails in Lambda all the same)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(), str(module))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def test_layer_ships_no_dev_only_code(site: Path) -> None:
    # The embedded AWS and the demo (vaultline_dev) import moto; neither they nor anything needing them ships.
    assert not (site / "vaultline_dev").exists()
    modules = sorted((site / "vaultline").rglob("*.py"))
    assert len(modules) > 20, "the layer's engine looks empty"
    needing = {str(m.relative_to(site)): _imported_packages(m) & {"moto", "vaultline_dev"} for m in modules}
    assert {name: found for name, found in needing.items() if found} == {}


def test_layer_holds_aws_xray_sdk_for_powertools_tracer(site: Path) -> None:
    assert (site / "aws_xray_sdk" / "core" / "__init__.py").is_file()


def test_host_twin_holds_the_same_pinned_distributions(site: Path) -> None:
    host = builds.host_layer() / "python"
    assert sorted(p.name for p in host.glob("*.dist-info")) == sorted(p.name for p in site.glob("*.dist-info"))


def test_every_handler_imports_with_only_the_layer_and_the_runtimes_boto3() -> None:
    # What the embedded Lambda gives a sandbox: CPython 3.12 isolated, the code, the layer's twin, the runtime's SDK.
    path = [str(c.FUNCTIONS_DIR), str(builds.host_layer() / "python"), str(builds.runtime_sdk("3.12"))]
    modules = sorted({spec.handler.rpartition(".")[0] for spec in FUNCTIONS})
    script = f"import sys; sys.path[:0] = {path!r}\n" + "".join(f"import {m}\n" for m in modules)
    result = subprocess.run(
        [str(runtime_python("python3.12")), "-I", "-S", "-c", script],
        env={"LAMBDA_TASK_ROOT": str(c.FUNCTIONS_DIR), "AWS_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.strip().splitlines()[-1]


def test_layer_rebuild_is_skipped_when_its_stamp_is_current() -> None:
    digest = build_layer()
    marker = c.LAYER_DIR / "python" / "vaultline" / "__init__.py"
    before = marker.stat().st_mtime_ns
    assert build_layer() == digest
    assert marker.stat().st_mtime_ns == before
