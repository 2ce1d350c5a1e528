"""JSONPaths into the state of an execution, derived from the step models the handlers read and return.

A state machine selects fields of a step's result (``$.Payload.work_list_key``) and hands them on
(``$.prepared.work_list_key``). Spelled by hand, a renamed field in ``vaultline/runs`` would break the first
deployed run; derived here, it breaks synthesis (and so the infra tests)::

    path(Prepared, "work_list_key", at=PREPARED)  # "$.prepared.work_list_key"
    path(BackupRequest, "source", "type")         # "$.source.type"
"""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

# Where the state machines keep what they carry: the execution input is the state's root; a Lambda task's raw
# response is under Payload; Prepare's selected result is kept at $.prepared.
ROOT = "$"
PAYLOAD = "$.Payload"
PREPARED = "$.prepared"


def path(model: type[BaseModel], *fields: str, at: str = ROOT) -> str:
    """The JSONPath of ``fields`` (a field, then fields of the models it holds) of ``model`` kept at ``at``.

    Raises ``ValueError`` naming the model when a field does not exist.
    """
    if not fields:
        raise ValueError("name at least one field")
    current: type[BaseModel] | None = model
    for index, field in enumerate(fields):
        if current is None or field not in current.model_fields:
            holder = current.__name__ if current else f"{model.__name__}.{'.'.join(fields[:index])}"
            raise ValueError(f"{holder} has no field {field!r} (a state machine path names it)")
        current = _model_of(current.model_fields[field].annotation)
    return ".".join((at, *fields))


def selector(model: type[BaseModel], fields: tuple[str, ...], *, at: str = PAYLOAD) -> dict[str, str]:
    """A ResultSelector keeping ``fields`` of a step's result under the same names."""
    return {field: path(model, field, at=at) for field in fields}


def fields_of(model: type[BaseModel], **paths: Any) -> dict[str, Any]:
    """Parameters (an ItemSelector, a Pass state's) that build the event ``model`` a next step reads: every key
    must be one of its fields. Returns the paths unchanged, keyed by field."""
    for field in paths:
        path(model, field)
    return paths


def all_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """Every field of a step's result, in the model's order."""
    return tuple(model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (``X`` or ``X | None``), for a path that goes on into it; None for a plain value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [arg for arg in get_args(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
        return models[0] if len(models) == 1 else None
    return None
