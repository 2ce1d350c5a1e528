"""The base of every engine model (configs, manifests, reports, step events and results).

Pydantic builds a model's validator and serializer when its class is defined unless told to defer: an import of
the engine made all ~200 at once, while a Lambda handler or a CLI command validates a handful. ``defer_build``
builds each on its first use (validation, serialization, JSON schema) instead; fields are still collected when the
class is defined, so ``model_fields`` (which infra/paths.py derives state-machine paths from) needs no build.
A model's own ``model_config`` merges with this one, so subclasses keep deferring.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

# Also the config of the engine's TypeAdapters, which build at construction too unless told to defer.
DEFERRED = ConfigDict(defer_build=True)


class VaultlineModel(BaseModel):
    """A pydantic model built on first use rather than at import (see the module's docstring)."""

    model_config = DEFERRED
