"""``--json`` documents print as they are produced: iterators as arrays item by item, callables when their turn
comes, and the text is exactly what ``json.dumps(..., indent=2)`` of the materialized value prints."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vaultline.cli.output import emit_json

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def lazily(value: Any, draw_lazy: st.DrawFn) -> Any:
    """``value`` with some of its lists made iterators and some of its values made callables."""
    if isinstance(value, list):
        items = [lazily(item, draw_lazy) for item in value]
        return iter(items) if draw_lazy(st.booleans()) else items
    if isinstance(value, dict):
        return {name: lazily(item, draw_lazy) for name, item in value.items()}
    return (lambda: value) if draw_lazy(st.booleans()) else value


@given(document=documents, data=st.data())
def test_a_lazy_document_prints_as_its_value_would(document: Any, data: st.DataObject) -> None:
    printed = _printed(lazily(document, data.draw))
    assert printed == json.dumps(document, indent=2) + "\n"


def test_an_iterator_is_printed_before_it_is_exhausted() -> None:
    out = io.StringIO()
    seen: list[str] = []

    def items() -> Iterator[int]:
        for n in range(3):
            seen.append(out.getvalue())
            yield n

    with contextlib.redirect_stdout(out):
        emit_json({"items": items(), "count": lambda: 3})
    assert seen[2].endswith("1")  # the first items were written while the iterator still ran
    assert json.loads(out.getvalue()) == {"items": [0, 1, 2], "count": 3}


def _printed(value: Any) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        emit_json(value)
    return out.getvalue()
