"""The architecture, enforced: no import cycle, and each layer imports only the layers below it.

Every module of vaultline/, vaultline_dev/, functions/ and infra/ is parsed with ``ast`` and ALL its import
statements count: at module level, inside functions (a late import is still a dependency, and a cycle through one
is still a cycle) and under ``if TYPE_CHECKING:``. A package's ``__init__`` is a module like any other; importing a
submodule does not count as importing its parent package.

Why a test and not import-linter: the rules below read as one table in one place, they cover functions/ (handlers
loaded by their handler strings, not a package import-linter can analyse) and the third-party names the engine
must not import, and the cycle check spans every module, not only siblings.
"""

from __future__ import annotations

import ast
import graphlib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TREES = ("vaultline", "vaultline_dev", "functions", "infra")

# The layers, bottom up: who may import whom. A module obeys the rule of the longest importer prefix naming it; an
# import is allowed if its target is (inside) one of the modules its rule lists. ``vaultline`` alone means the
# package's __init__ only (the version constants), never the whole engine.
PACKAGE = "vaultline"
BOTTOM = (PACKAGE, "vaultline.errors", "vaultline.aws", "vaultline.model")
STORAGE = (*BOTTOM, "vaultline.storage")
REPOSITORY = (*STORAGE, "vaultline.repository")
PLANS = "vaultline.plans"  # the plan files' models, which the operations, runs, CLI and infra read
OPERATIONS = (*REPOSITORY, "vaultline.sources", "vaultline.targets", PLANS, "vaultline.operations")
RUNS = (*OPERATIONS, "vaultline.runs")
ENGINE = (*RUNS, "vaultline.cli")
RULES: dict[str, tuple[str, ...]] = {
    # importer             may import
    PACKAGE: (),
    "vaultline.__main__": ("vaultline.cli.main",),
    "vaultline.errors": (),
    "vaultline.aws": ("vaultline.errors",),
    "vaultline.model": (),  # the base of every engine model
    # A plan's DynamoDB source spells the engine's read options beside the table: one model for the plans file, the
    # CLI and the steps, so plans sit above that one module of the sources (which never read plans).
    PLANS: (
        "vaultline.errors",
        "vaultline.model",
        "vaultline.schedule_gaps",
        "vaultline.sources.dynamodb.model",
        "vaultline.sources.s3_inventory_model",
        "vaultline.sources.s3_options",
    ),
    "vaultline.schedule_gaps": ("vaultline.errors",),  # a schedule's longest gap: plain calendar arithmetic
    "vaultline.storage": STORAGE,  # bytes and keys only: no vault layout, no Object Lock settings
    "vaultline.repository": REPOSITORY,
    "vaultline.sources": (*REPOSITORY, "vaultline.sources"),
    # A target writes back what a source of the same medium read (S3 URLs and header fields, a directory
    # entry's path): it may use the source's mapping, never the reverse.
    "vaultline.targets": (*REPOSITORY, "vaultline.sources", "vaultline.targets"),
    "vaultline.operations": OPERATIONS,
    "vaultline.runs": RUNS,  # the staged runs drive operations; no operation drives a run
    "vaultline.cli": ENGINE,  # the front door may use anything in the engine
    "vaultline_dev": (*ENGINE, "vaultline_dev", "functions", "infra"),
    "functions": ("functions", "vaultline.runs", *BOTTOM),  # handlers: a few lines over the runs
    "infra": (  # CDK: names the vault's keys and the runs' contracts, never the engine behind them
        "infra",
        PACKAGE,
        PLANS,
        "vaultline.repository.layout",
        "vaultline.runs.models",
        "vaultline.runs.table_models",
        "vaultline.runs.maintenance_models",
        "vaultline.runs.prune_models",
        "vaultline.runs.lock_models",
        "vaultline.runs.forget_models",
        "vaultline.runs.copy_models",
        "vaultline.runs.settings",
        "vaultline.runs.requests",
        "vaultline.runs.metrics",
    ),
}
# Whole trees whose every module must import none of these (the engine ships in the Lambda layer: no emulator, no
# Lambda runtime library, no CDK; a handler needs no emulator either).
FORBIDDEN = {
    "vaultline": ("vaultline_dev", "functions", "infra", "moto", "aws_lambda_powertools", "aws_cdk", "constructs"),
    "functions": ("vaultline_dev", "infra", "moto", "aws_cdk", "constructs"),
    "infra": ("vaultline_dev", "functions", "moto"),
}


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.target}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {_module_name(p): p for tree in TREES for p in sorted((ROOT / tree).rglob("*.py"))}
    assert "vaultline.repository.vault" in found and "functions.backup_worker" in found  # the walk found the code
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(name: str, path: Path, known: set[str]) -> list[Import]:
    """Every import statement of one module, resolved to module names (a ``from m import x`` names ``m.x`` when
    that is a module, else ``m``)."""
    package = name if _is_package(path) else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            for alias in node.names:
                inner = f"{source}.{alias.name}"
                found.append(Import(name, inner if inner in known else source, node.lineno))
    return found


def _all_imports() -> list[Import]:
    modules = _modules()
    return [i for name, path in modules.items() for i in _imports(name, path, set(modules))]


def _within(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def _rule(importer: str) -> str:
    matching = [prefix for prefix in RULES if _within(importer, prefix)]
    assert matching, f"{importer} belongs to no layer: add it to RULES"
    return max(matching, key=len)


def _internal(target: str) -> bool:
    return any(_within(target, tree) for tree in TREES)


def test_no_module_imports_itself_back_through_any_chain() -> None:
    graph: dict[str, set[str]] = {name: set() for name in _modules()}
    for i in _all_imports():
        if i.target in graph and i.target != i.importer:
            graph[i.importer].add(i.target)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(reversed(exc.args[1]))}")


def _allows(entry: str, target: str) -> bool:
    return target == entry if entry == PACKAGE else _within(target, entry)


def test_each_layer_imports_only_the_layers_below_it() -> None:
    wrong = []
    for i in _all_imports():
        if not _internal(i.target):
            continue
        rule = _rule(i.importer)
        if not any(_allows(entry, i.target) for entry in RULES[rule]):
            wrong.append(f"{i} (rule {rule!r} allows {', '.join(RULES[rule]) or 'nothing'})")
    assert wrong == [], "layering violations:\n" + "\n".join(wrong)


def test_the_engine_imports_no_emulator_lambda_runtime_or_cdk() -> None:
    wrong = []
    for i in _all_imports():
        for tree, names in FORBIDDEN.items():
            if _within(i.importer, tree) and any(_within(i.target, n) for n in names):
                wrong.append(str(i))
    assert wrong == [], "forbidden imports:\n" + "\n".join(wrong)


def test_the_rules_see_imports_inside_functions_and_under_type_checking(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from vaultline.repository import vault\n"
        "def late():\n    import vaultline.storage.s3\n    from . import sibling\n"
    )
    known = {"vaultline.repository.vault", "vaultline.cli.sibling"}
    names = {i.target for i in _imports("vaultline.cli.sample", source, known)}
    assert {"vaultline.repository.vault", "vaultline.storage.s3", "vaultline.cli.sibling"} <= names
