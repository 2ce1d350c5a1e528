"""DynamoDB item streams without AWS: type-preserving JSON lines, keys, stream cutting, rate limits, merges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultline.dynamodb.export import apply_changes, change_set
from vaultline.dynamodb.items import KeyMismatch, decode_item, encode_item, iter_lines, key_of, parse_key
from vaultline.dynamodb.restore import iter_stream_items
from vaultline.dynamodb.scan import StreamWriter
from vaultline.dynamodb.throttle import Backoff, RateLimiter
from vaultline.errors import VaultlineRetryable
from vaultline.manifest import ObjectEntry
from vaultline.packer import BlobWriter
from vaultline.storage import LocalStorage
from vaultline.vault import Vault

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


@settings(max_examples=12, deadline=None)
@given(st.lists(items, min_size=1, max_size=40))
def test_item_streams_round_trip_through_the_vault(tmp_path_factory: pytest.TempPathFactory, batch: list[Any]) -> None:
    vault = Vault.init(LocalStorage(tmp_path_factory.mktemp("v") / "vault"))
    with BlobWriter(vault) as writer:
        stream = StreamWriter(writer)
        for item in batch:
            stream.add(encode_item(item))
        entry = ObjectEntry(key="segment/00000/part/0000", size=stream.size, chunks=stream.finish())
        writer.flush()
    assert list(iter_stream_items(vault, [entry])) == batch


def test_canonical_lines_ignore_attribute_order() -> None:
    a = {"pk": {"S": "x"}, "m": {"M": {"b": {"N": "1"}, "a": {"N": "2"}}}}
    b = {"m": {"M": {"a": {"N": "2"}, "b": {"N": "1"}}}, "pk": {"S": "x"}}
    assert encode_item(a) == encode_item(b)
    assert key_of(a, ["pk"]) == key_of(b, ["pk"])


def test_stream_cut_in_pieces_gives_the_chunks_of_one_pass(local_vault: Vault) -> None:
    lines = [encode_item({"pk": {"S": f"k{i:06d}"}, "v": {"S": "x" * (i % 300)}}) for i in range(6000)]
    with BlobWriter(local_vault) as writer:
        piecewise = StreamWriter(writer)
        for line in lines:
            piecewise.add(line)
        one_pass = list(piecewise.chunker.split_bytes(b"".join(lines)))
        assert piecewise.finish() == [local_vault.cipher.chunk_id(c).hex() for c in one_pass]
        assert len(one_pass) > 10


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
    streams = list(apply_changes([[b"".join(old[:2])], [b"".join(old[2:])]], changes, names))
    got = [[json.loads(line) for line in stream] for stream in streams]
    assert got == [
        [{"pk": {"S": "a"}, "v": {"N": "1"}}, {"pk": {"S": "b"}, "v": {"N": "2"}}],
        [{"pk": {"S": "d"}, "v": {"N": "1"}}],
        [{"pk": {"S": "e"}, "v": {"N": "5"}}],
    ]
