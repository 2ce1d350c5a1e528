"""Every engine model defers its build to its first use (vaultline/model.py), and every one can still be built.

Deferring moves a model's schema errors (an unresolvable forward reference, a bad discriminator) from import to its
first validation, which may be a rare step's first run in a deployed state machine: building them all here brings
those errors back to the unit tests.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from pydantic import BaseModel

import vaultline


def _subclasses(cls: type[BaseModel]) -> set[type[BaseModel]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def _engine_models() -> list[type[BaseModel]]:
    for module in pkgutil.walk_packages(vaultline.__path__, "vaultline."):
        if module.name != "vaultline.__main__":  # it runs the CLI
            importlib.import_module(module.name)
    models = [m for m in _subclasses(BaseModel) if m.__module__.startswith("vaultline.")]
    assert len(models) > 100  # the walk imported the engine
    return sorted(models, key=lambda m: f"{m.__module__}.{m.__qualname__}")


def test_every_engine_model_defers_its_build() -> None:
    eager = [f"{m.__module__}.{m.__qualname__}" for m in _engine_models() if not m.model_config.get("defer_build")]
    assert eager == [], "derive these from vaultline.model.VaultlineModel:\n" + "\n".join(eager)


@pytest.mark.parametrize("model", _engine_models(), ids=lambda m: f"{m.__module__}.{m.__qualname__}")
def test_every_engine_model_builds(model: type[BaseModel]) -> None:
    model.model_rebuild(raise_errors=True)
    assert model.__pydantic_complete__
