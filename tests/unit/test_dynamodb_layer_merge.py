"""Layered segment streams without AWS: a chain of deltas merges back to each day's items bit-exact, whatever the
change sets; broken chains and unsorted streams are refused."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultline.errors import IntegrityError
from vaultline.repository.blob_reader import ChunkReader
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.manifest import ObjectEntry
from vaultline.repository.vault import Vault
from vaultline.sources.dynamodb import layers
from vaultline.sources.dynamodb.items import encode_item
from vaultline.sources.dynamodb.scan import item_anchor

KEYS = ["pk", "sk"]


def keyed(table: dict[tuple[str, int], str]) -> list[layers.KeyedLine]:
    lines = []
    for (pk, sk), body in table.items():
        item = {"pk": {"S": pk}, "sk": {"N": str(sk)}, "body": {"S": body}}
        anchor = item_anchor(item, KEYS)
        assert anchor is not None
        lines.append((anchor, encode_item(item)))
    return sorted(lines)


def merged(vault: Vault, segment: layers.SegmentLayers) -> list[layers.KeyedLine]:
    reader = ChunkReader(vault, lookahead=layers.MERGE_LOOKAHEAD)
    try:
        return list(layers.merged_lines(reader, segment, KEYS, "test"))
    finally:
        reader.close()


tables = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b", "é", "long" * 5]), st.integers(-5, 40)), st.text(max_size=30)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.lists(tables, min_size=1, max_size=6))
def test_a_chain_of_deltas_merges_back_to_every_day_bit_exact(
    local_vault: Vault, days: list[dict[tuple[str, int], str]]
) -> None:
    with BlobWriter(local_vault) as writer:
        base = layers.store_base(writer, 0, 0, keyed(days[0]))
        writer.flush()
    segment = layers.segment_layers(0, [base], "test")
    for day in days[1:]:
        current = keyed(day)
        puts, deletes = layers.changes_against(merged(local_vault, segment), current, KEYS)
        with BlobWriter(local_vault) as writer:
            entries = layers.store_delta(writer, segment, puts, deletes)
            writer.flush()
        segment = layers.segment_layers(0, entries, "test")
        assert merged(local_vault, segment) == current
    assert segment.layers == len(days)


def test_a_missing_layer_or_an_unsorted_stream_is_refused(local_vault: Vault) -> None:
    lines = keyed({("a", n): "x" for n in range(5)})
    with BlobWriter(local_vault) as writer:
        base = layers.store_base(writer, 0, 0, lines)
        top = layers.store_delta(writer, layers.segment_layers(0, [base], "t"), lines[:1], [])
        unsorted = layers.store_base(writer, 0, 0, lines[::-1])
        writer.flush()
    with pytest.raises(IntegrityError, match=r"segment 0 is incomplete \(missing: layer 1 delete\)"):
        layers.segment_layers(0, [top[0], top[2]], "rp X")
    with pytest.raises(IntegrityError, match=r"missing: layer 0 part 0"):
        layers.segment_layers(0, top[1:], "rp X")
    with pytest.raises(IntegrityError, match="not a layered segment entry"):
        layers.segment_layers(0, [ObjectEntry(key="segment/00000/part/0000", size=0)], "rp X")
    with pytest.raises(IntegrityError, match="not sorted by key"):
        merged(local_vault, layers.segment_layers(0, [unsorted], "t"))
    with pytest.raises(IntegrityError, match="segment 1 is missing"):
        list(layers.iter_segments([base, base.model_copy(update={"key": layers.base_key(2, 0)})], 3, "rp X"))


def test_rebase_rules_bound_the_chain() -> None:
    base = ObjectEntry(key=layers.base_key(5, 0), size=1000)
    chain = [base]
    for layer in range(1, layers.MAX_LAYERS):
        chain += [
            ObjectEntry(key=layers.delta_key(5, layer, "delete"), size=0),
            ObjectEntry(key=layers.delta_key(5, layer, "put"), size=10),
        ]
    full = layers.segment_layers(5, chain, "t")
    assert full.layers == layers.MAX_LAYERS and layers.rebase_due(5, 1, full)
    short = layers.segment_layers(5, chain[:3], "t")
    assert not layers.rebase_due(5, 1, short) and layers.rebase_due(5, layers.MAX_LAYERS - 5, short)
    assert not layers.delta_too_big(short, 490) and layers.delta_too_big(short, 491)
