"""The key-ordered entry streams that the parent comparison and the commits are built on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultline.errors import IntegrityError
from vaultline.repository.entry_streams import in_key_order, join_with_parent, merge_by_key
from vaultline.repository.manifest import ObjectEntry


def entry(key: str, etag: str = "e") -> ObjectEntry:
    return ObjectEntry(key=key, size=1, etag=etag)


def test_a_stream_out_of_key_order_is_refused_naming_what_it_was() -> None:
    with pytest.raises(IntegrityError, match=r"batch 3: entries out of key order \('a' after 'b'\)"):
        list(in_key_order([entry("b"), entry("a")], "batch 3"))


def test_a_key_twice_is_refused() -> None:
    with pytest.raises(IntegrityError, match="out of key order"):
        list(in_key_order([entry("a"), entry("a")], "listing"))


def test_join_pairs_unchanged_objects_with_their_parent_entry_and_changed_or_new_ones_with_none() -> None:
    parent = [entry("a"), entry("b"), entry("d"), entry("e", etag="old")]
    listed = [entry("b"), entry("c"), entry("e", etag="new"), entry("f")]
    joined = [(item.key, before.key if before else None) for item, before in join_with_parent(listed, parent)]
    assert joined == [("b", "b"), ("c", None), ("e", None), ("f", None)]


def test_join_refuses_a_parent_out_of_order() -> None:
    with pytest.raises(IntegrityError, match="parent recovery point"):
        list(join_with_parent([entry("z")], [entry("b"), entry("a")]))


def test_merge_refuses_two_parts_holding_the_same_key() -> None:
    with pytest.raises(IntegrityError, match="commit"):
        list(merge_by_key([[entry("a"), entry("c")], [entry("c")]], "commit"))


@given(st.lists(st.sets(st.text(min_size=1, max_size=4)), max_size=5))
def test_merging_disjoint_sorted_parts_gives_the_sorted_union(parts: list[set[str]]) -> None:
    seen: set[str] = set()
    disjoint = []
    for part in parts:
        disjoint.append(sorted(part - seen))
        seen |= part
    merged = merge_by_key([[entry(k) for k in part] for part in disjoint], "commit")
    assert [e.key for e in merged] == sorted(seen)


@given(st.sets(st.text(max_size=6)), st.sets(st.text(max_size=6)))
def test_join_finds_exactly_the_keys_both_streams_hold(listed: set[str], parent: set[str]) -> None:
    joined = join_with_parent((entry(k) for k in sorted(listed)), (entry(k) for k in sorted(parent)))
    assert {item.key for item, before in joined if before is not None} == listed & parent
