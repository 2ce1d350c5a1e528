"""DynamoDB items as type-preserving JSON lines, and keys given on the command line.

Items come from the low-level client, so numbers stay the strings DynamoDB sent (no float or Decimal loss), binaries
stay bytes (base64 in JSON), and sets stay sets. One item is one line of canonical JSON (sorted attribute names, no
spaces), so an unchanged item always serializes to the same bytes and unchanged stretches of a table dedup.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from vaultline.errors import UsageError, VaultlineError

Item = dict[str, Any]
"""An item as the low-level client returns it: ``{"pk": {"S": "a"}, "n": {"N": "1"}, "b": {"B": b"..."}}``."""

KEY_TYPES = ("S", "N", "B")


class KeyMismatch(VaultlineError):
    """A key given for item-level restore or `get` does not fit the table's key schema (exit 1, nothing written)."""


def _binaries(value: Mapping[str, Any], convert: Callable[[Any], Any], one_type: bool) -> dict[str, Any]:
    """``value`` with ``convert`` applied to every binary in it, however deep (in maps and lists)."""
    (kind, inner), *rest = value.items()
    if one_type and rest:
        raise ValueError(f"an attribute value has exactly one type, got {sorted(value)}")
    if kind == "B":
        return {"B": convert(inner)}
    if kind == "BS":
        return {"BS": [convert(b) for b in inner]}
    if kind == "M":
        return {"M": {k: _binaries(v, convert, one_type) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_binaries(v, convert, one_type) for v in inner]}
    return {kind: inner}


def _to_json(value: Mapping[str, Any]) -> dict[str, Any]:
    return _binaries(value, lambda b: base64.b64encode(bytes(b)).decode(), one_type=True)


def _from_json(value: Mapping[str, Any]) -> dict[str, Any]:
    return _binaries(value, base64.b64decode, one_type=False)


def item_to_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item with binaries as base64 strings: what DynamoDB's own JSON wire format and exports look like."""
    return {name: _to_json(value) for name, value in item.items()}


def item_from_json(doc: Mapping[str, Any]) -> Item:
    """The inverse of :func:`item_to_json`: base64 strings back to bytes."""
    return {name: _from_json(value) for name, value in doc.items()}


def _base64(value: Any) -> str:
    # orjson calls this for what it cannot serialize itself: the bytes of B and BS values.
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not a DynamoDB attribute value")


def encode_item(item: Mapping[str, Any]) -> bytes:
    """One canonical JSON line (with its newline): sorted names, no spaces, UTF-8, binaries as base64.

    The bytes are exactly those of ``json.dumps(item_to_json(item), sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` (a property test pins it, so streams written before dedup against streams written now);
    orjson makes them in one pass, several times faster, and this runs once per item of every table.
    """
    return compact(encode_line(item))


def encode_line(item: Mapping[str, Any]) -> bytes:
    """:func:`encode_item`'s bytes in orjson's own buffer: for a line used at once and dropped (see :func:`compact`)."""
    return orjson.dumps(item, default=_base64, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)


def compact(line: bytes) -> bytes:
    """``line`` in a bytes object of its own size.

    orjson (3.x) returns each document in an object that keeps its whole output buffer, at least 4 KiB whatever the
    document's length: a layered segment part holds its items' lines until it has sorted them, so 139 MB of 400-byte
    items took 1,355 MiB instead of ~160 MiB (measured with tracemalloc, bench/table_scale_bench.py). One copy per
    item costs far less than that memory.
    """
    return bytes(memoryview(line))


def decode_item(line: bytes) -> Item:
    return item_from_json(orjson.loads(line))


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a stream cut at arbitrary places (a line may span chunks)."""
    carry = b""
    for chunk in chunks:
        lines = (carry + chunk).split(b"\n")
        carry = lines.pop()
        yield from (line for line in lines if line)
    if carry.strip():
        yield carry


def key_of(item: Mapping[str, Any], key_names: Sequence[str]) -> bytes:
    """The canonical bytes of an item's primary key: equal keys give equal bytes whatever the attribute order."""
    return encode_item({name: item[name] for name in key_names})


def parse_key(text: str, key_types: Mapping[str, str], table: str) -> Item:
    """A key from the command line, as DynamoDB JSON (``{"pk":{"S":"a"}}``) or plain JSON (``{"pk":"a"}``, converted
    with the table's attribute definitions; binary key values are base64). Raise KeyMismatch naming the table when
    the key does not match its key schema."""
    schema = ", ".join(f"{name} ({kind})" for name, kind in key_types.items())
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--key {text!r} is not JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or set(doc) != set(key_types):
        names = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise KeyMismatch(f"--key {text}: table {table} has key {schema}, the key given has {names}")
    key: Item = {}
    for name, kind in key_types.items():
        value = doc[name]
        if isinstance(value, dict):  # DynamoDB JSON
            if list(value) != [kind]:
                raise KeyMismatch(f"--key {text}: {name} must be of type {kind} in table {table} (key {schema})")
            value = value[kind]
        try:
            key[name] = _key_value(kind, value)
        except (ValueError, TypeError, binascii.Error):
            raise KeyMismatch(f"--key {text}: {name}={value!r} is not a valid {kind} for table {table}") from None
    return key


def _key_value(kind: str, value: Any) -> dict[str, Any]:
    if kind == "S":
        if not isinstance(value, str) or not value:
            raise ValueError("not a non-empty string")
        return {"S": value}
    if kind == "N":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("not a number")
        text = str(value)
        float(text)  # validates the syntax; the string itself is what DynamoDB gets
        return {"N": text}
    if not isinstance(value, str):
        raise ValueError("not base64")
    return {"B": base64.b64decode(value, validate=True)}
