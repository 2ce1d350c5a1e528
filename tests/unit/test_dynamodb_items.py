"""DynamoDB item streams without AWS: type-preserving JSON lines, keys, stream cutting, rate limits, merges."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultline.errors import VaultlineRetryable
from vaultline.operations.table_restore import iter_stream_items
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.chunking import Chunker
from vaultline.repository.manifest import ObjectEntry
from vaultline.repository.packs import BlobType
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb.export import apply_to_stream, change_set, incremental_window, new_items
from vaultline.sources.dynamodb.items import (
    KeyMismatch,
    decode_item,
    encode_item,
    item_to_json,
    iter_lines,
    key_of,
    parse_key,
)
from vaultline.sources.dynamodb.model import TableBackupInfo
from vaultline.sources.dynamodb.scan import (
    ITEM_STREAM_CHUNKER,
    LEGACY_ITEM_STREAM_CHUNKER,
    StreamWriter,
    ends_chunk,
    item_anchor,
    line_anchor,
)
from vaultline.sources.dynamodb.table import TableSnapshot
from vaultline.sources.dynamodb.throttle import Backoff, RateLimiter
from vaultline.storage import LocalStorage

numbers = st.one_of(
    st.integers(-(10**38) + 1, 10**38 - 1).map(str),
    st.sampled_from(["1E+125", "-1E+125", "1E-130", "-1E-130", "9.9999999999999999999999999999999999999E+125"]),
    st.decimals(allow_nan=False, allow_infinity=False, places=5).map(str),
)
scalars = st.one_of(
    st.text().map(lambda s: {"S": s}),
    numbers.map(lambda n: {"N": n}),
    st.binary().map(lambda b: {"B": b}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.lists(st.text(min_size=1), min_size=1, unique=True).map(lambda v: {"SS": v}),
    st.lists(numbers, min_size=1, unique=True).map(lambda v: {"NS": v}),
    st.lists(st.binary(min_size=1), min_size=1, unique=True).map(lambda v: {"BS": v}),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda v: {"L": v}),
        st.dictionaries(st.text(min_size=1), inner, max_size=4).map(lambda v: {"M": v}),
    ),
    max_leaves=20,
)
items = st.dictionaries(st.text(min_size=1, max_size=20), values, min_size=1, max_size=8)


@settings(max_examples=100, deadline=None)
@given(items)
def test_any_item_round_trips_through_its_json_line(item: dict[str, Any]) -> None:
    line = encode_item(item)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_item(line) == item


@settings(max_examples=200, deadline=None)
@given(items)
def test_encoding_is_byte_for_byte_the_standard_librarys_canonical_json(item: dict[str, Any]) -> None:
    # Streams written before orjson serialized items must dedup against streams written now.
    reference = json.dumps(item_to_json(item), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert encode_item(item) == reference.encode() + b"\n"


@settings(max_examples=12, deadline=None)
@given(st.lists(items, min_size=1, max_size=40))
def test_item_streams_round_trip_through_the_vault(tmp_path_factory: pytest.TempPathFactory, batch: list[Any]) -> None:
    vault = Vault.init(LocalStorage(tmp_path_factory.mktemp("v") / "vault"))
    # Tiny chunks, so that items of a few bytes are cut too; anchors on the first attribute when it is a key type.
    params = ITEM_STREAM_CHUNKER.model_copy(update={"min_size": 16, "avg_size": 64, "max_size": 256})
    with BlobWriter(vault) as writer:
        stream = StreamWriter(writer, params)
        for item in batch:
            stream.add(encode_item(item), item_anchor(item, [next(iter(item))]))
        entry = ObjectEntry(key="segment/00000/part/0000", size=stream.size, chunks=stream.finish())
        writer.flush()
    assert list(iter_stream_items(vault, [entry])) == batch


def test_canonical_lines_ignore_attribute_order() -> None:
    a = {"pk": {"S": "x"}, "m": {"M": {"b": {"N": "1"}, "a": {"N": "2"}}}}
    b = {"m": {"M": {"a": {"N": "2"}, "b": {"N": "1"}}}, "pk": {"S": "x"}}
    assert encode_item(a) == encode_item(b)
    assert key_of(a, ["pk"]) == key_of(b, ["pk"])


def order(n: int, body: str = "x") -> dict[str, Any]:
    return {"pk": {"S": f"k{n:06d}"}, "v": {"S": body * (200 + n % 300)}}


class Recorder:
    """Stands in for a BlobWriter: keeps each chunk's plaintext under its id."""

    def __init__(self) -> None:
        self.blobs: dict[bytes, bytes] = {}

    def add(self, data: bytes, blob_type: int) -> bytes:
        blob_id = hashlib.sha256(data).digest()
        self.blobs[blob_id] = data
        return blob_id

    def add_group(self, chunks: list[bytes], blob_type: int) -> Any:
        ids = [self.add(data, blob_type) for data in chunks]
        return SimpleNamespace(ids=lambda: ids)

    def resolve_groups(self) -> None:
        pass


def cut(batch: list[dict[str, Any]]) -> list[bytes]:
    """The chunk plaintexts of ``batch`` as a scan worker cuts them."""
    recorder = Recorder()
    stream = StreamWriter(recorder)  # type: ignore[arg-type]
    for item in batch:
        stream.add(encode_item(item), item_anchor(item, ["pk"]))
    return [recorder.blobs[bytes.fromhex(i)] for i in stream.finish()]


def test_item_streams_are_cut_between_items_within_the_size_bounds() -> None:
    batch = [order(i) for i in range(3000)]
    chunks = cut(batch)
    params = ITEM_STREAM_CHUNKER
    assert b"".join(chunks) == b"".join(encode_item(i) for i in batch)
    assert all(c.endswith(b"\n") for c in chunks)
    assert all(len(c) <= params.max_size for c in chunks)
    assert all(len(c) >= params.min_size for c in chunks[:-1])
    mean = sum(map(len, chunks)) / len(chunks)
    assert params.min_size < mean < params.min_size + 2 * params.avg_size


def reference_cut(batch: list[dict[str, Any]], key_names: list[str]) -> list[bytes]:
    """The chunks of ``batch`` by the rule as docs/vault-format.md states it, one item at a time."""
    params = ITEM_STREAM_CHUNKER
    chunks, buffer = [], b""
    for item in batch:
        line, anchor = encode_item(item), item_anchor(item, key_names)
        if buffer and len(buffer) + len(line) > params.max_size:
            chunks.append(buffer)
            buffer = b""
        buffer += line
        if len(buffer) >= params.min_size and ends_chunk(anchor or line, len(line), params.avg_size):
            chunks.append(buffer)
            buffer = b""
    return [*chunks, buffer] if buffer else chunks


@given(st.lists(st.integers(0, 5000), max_size=400))
@settings(max_examples=30, deadline=None)
def test_grouped_cutting_makes_the_chunks_of_the_item_at_a_time_rule(sizes: list[int]) -> None:
    """Chunks handed to the writer in groups are the very chunks the item-at-a-time rule cuts: dedup against
    recovery points written before grouping holds."""
    batch = [{"pk": {"S": f"k{n:06d}"}, "v": {"S": "x" * size}} for n, size in enumerate(sizes)]
    assert cut(batch) == reference_cut(batch, ["pk"])


def test_a_changed_item_changes_only_its_own_chunk() -> None:
    """Boundaries follow keys: an item updated in place (same length) leaves every other chunk as it was, and an
    inserted or deleted item disturbs only the chunks around it."""
    batch = [order(i) for i in range(3000)]
    before = cut(batch)
    updated = [order(i, "y") if i == 1500 else item for i, item in enumerate(batch)]
    after = cut(updated)
    assert len(after) == len(before) and sum(a != b for a, b in zip(after, before, strict=True)) == 1
    churned = [*batch[:700], order(10_000), *batch[700:2100], *batch[2101:]]
    assert len(set(cut(churned)) - set(before)) <= 4


def test_item_anchor_of_a_line_is_the_anchor_of_its_item() -> None:
    keys = ["pk", "sk"]
    for item in (
        {"pk": {"S": "a"}, "sk": {"N": "1.5"}, "v": {"S": "x"}},
        {"pk": {"B": b"\x00\n\xff"}, "sk": {"S": "é"}},
    ):
        assert line_anchor(encode_item(item), keys) == item_anchor(item, keys) is not None
    assert item_anchor({"pk": {"S": "a"}}, keys) is None  # no sort key: the line is the anchor
    assert item_anchor({"pk": {"S": "ab"}, "sk": {"S": "c"}}, keys) != item_anchor(
        {"pk": {"S": "a"}, "sk": {"S": "bc"}}, keys
    )


def test_a_worker_without_key_names_anchors_on_lines(local_vault: Vault) -> None:
    batch = [order(i) for i in range(1000)]
    with BlobWriter(local_vault) as writer:
        stream = StreamWriter(writer)
        for item in batch:
            stream.add(encode_item(item))
        entry = ObjectEntry(key="segment/00000/part/0000", size=stream.size, chunks=stream.finish())
        writer.flush()
    assert len(entry.chunks) > 10
    assert list(iter_stream_items(local_vault, [entry])) == batch


def test_recovery_points_cut_with_fastcdc_still_read(local_vault: Vault) -> None:
    """Streams written before item anchors (FastCDC over the bytes, boundaries inside lines) read as before."""
    batch = [order(i) for i in range(2000)]
    data = b"".join(encode_item(i) for i in batch)
    with BlobWriter(local_vault) as writer:
        pieces = list(Chunker(LEGACY_ITEM_STREAM_CHUNKER).split_bytes(data))
        ids = [writer.add(p, BlobType.DATA).hex() for p in pieces]
        writer.flush()
    assert any(not p.endswith(b"\n") for p in pieces)
    entry = ObjectEntry(key="segment/00000/part/0000", size=len(data), chunks=ids)
    assert list(iter_stream_items(local_vault, [entry])) == batch
    with pytest.raises(ValueError, match="item streams are cut with"):
        StreamWriter(BlobWriter(local_vault), LEGACY_ITEM_STREAM_CHUNKER)


def test_lines_spanning_chunks_are_reassembled() -> None:
    assert list(iter_lines([b'{"a"', b':1}\n{"b":2}\n{', b'"c":3}'])) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


KEYS = {"pk": "S", "sk": "N"}


@pytest.mark.parametrize(
    "text",
    ['{"pk":"a","sk":5}', '{"pk":{"S":"a"},"sk":{"N":"5"}}', '{"pk":"a","sk":{"N":"5"}}'],
)
def test_keys_parse_from_plain_or_dynamodb_json(text: str) -> None:
    assert parse_key(text, KEYS, "orders") == {"pk": {"S": "a"}, "sk": {"N": "5"}}


def test_binary_keys_are_base64() -> None:
    assert parse_key('{"id":"AAE="}', {"id": "B"}, "t") == {"id": {"B": b"\x00\x01"}}


@pytest.mark.parametrize(
    "text",
    ['{"pk":"a"}', '{"pk":"a","sk":5,"x":1}', '{"pk":{"N":"1"},"sk":5}', '{"pk":"a","sk":"five"}', '{"pk":"","sk":1}'],
)
def test_keys_that_do_not_fit_the_schema_name_the_table(text: str) -> None:
    with pytest.raises(KeyMismatch, match="orders"):
        parse_key(text, KEYS, "orders")


def test_rate_limiter_sleeps_off_the_excess() -> None:
    slept: list[float] = []
    now = [0.0]
    limiter = RateLimiter(100, clock=lambda: now[0], sleep=slept.append)
    for _ in range(5):
        limiter.spend(50)  # 250 units at once against 100/s with a 100-unit burst
    assert sum(slept) == pytest.approx(1.5)
    assert limiter.consumed == 250


def _throttled() -> ClientError:
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "Scan")


def test_backoff_retries_throttling_then_gives_up_retryably() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _throttled()
        return "ok"

    backoff = Backoff(sleep=lambda _: None)
    assert backoff.call(flaky, "t") == "ok" and backoff.retries == 2

    def always() -> str:
        raise _throttled()

    with pytest.raises(VaultlineRetryable, match="still throttled"):
        Backoff(sleep=lambda _: None, attempts=3).call(always, "table t")


def test_incremental_changes_apply_in_place(tmp_path: Path) -> None:
    names = ["pk"]
    old = [encode_item({"pk": {"S": k}, "v": {"N": "1"}}) for k in "abcd"]
    changes = change_set(
        [
            {"Keys": {"pk": {"S": "b"}}, "NewImage": {"pk": {"S": "b"}, "v": {"N": "2"}}},
            {"Keys": {"pk": {"S": "c"}}},
            {"Item": {"pk": {"S": "e"}, "v": {"N": "5"}}},
        ],
        names,
    )
    first, applied_first = apply_to_stream([b"".join(old[:2])], changes, names)
    second, applied_second = apply_to_stream([b"".join(old[2:])], changes, names)
    streams = [first, second, new_items(changes, {*applied_first, *applied_second})]
    got = [[json.loads(line) for line in stream] for stream in streams]
    assert got == [
        [{"pk": {"S": "a"}, "v": {"N": "1"}}, {"pk": {"S": "b"}, "v": {"N": "2"}}],
        [{"pk": {"S": "d"}, "v": {"N": "1"}}],
        [{"pk": {"S": "e"}, "v": {"N": "5"}}],
    ]


@pytest.mark.parametrize(
    ("elapsed", "window_end"),
    [
        (timedelta(minutes=10), None),  # too soon for DynamoDB: a full export
        (timedelta(hours=23, minutes=59), timedelta(hours=23, minutes=59)),
        (timedelta(hours=24, minutes=40), timedelta(hours=24)),  # a daily run a little late: cut at 24 h
        (timedelta(hours=27), None),  # a missed day: a full export, not a copy three hours old
    ],
)
def test_incremental_windows_follow_the_parent_export(elapsed: timedelta, window_end: timedelta | None) -> None:
    parent_time = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
    snapshot = TableSnapshot(description={"TableName": "t", "KeySchema": [], "AttributeDefinitions": []})
    parent = TableBackupInfo(table=snapshot, mode="export", total_segments=1, export_time=parent_time)
    window = incremental_window(parent, parent_time + elapsed)
    assert window == (None if window_end is None else (parent_time, parent_time + window_end))


def test_held_item_lines_take_about_their_own_size() -> None:
    # A layered segment part holds every item line until it is sorted: each must not keep a 4 KiB buffer.
    items = [{"pk": {"S": f"order#{n:06d}"}, "body": {"S": "x" * 300}} for n in range(2000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        lines = [encode_item(item) for item in items]
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < sum(len(line) for line in lines) * 1.5
