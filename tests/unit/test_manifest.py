"""Manifest headers and entry streams in a local vault."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultline.errors import IntegrityError, RecoveryPointNotFound, UsageError
from vaultline.repository.blob_writer import BlobWriter
from vaultline.repository.chunking import Chunker
from vaultline.repository.layout import MANIFEST_PREFIX
from vaultline.repository.manifest import (
    HEADERS_IN_FLIGHT,
    BackupStats,
    EntryLine,
    ObjectEntry,
    RecoveryPoint,
    commit_recovery_point,
    is_recovery_point_id,
    iter_entries,
    iter_entry_lines,
    iter_recovery_points,
    latest_for_source,
    list_recovery_points,
    load_recovery_point,
    new_recovery_point_id,
    resolve_recovery_point,
    write_entries,
    write_sorted_entries,
)
from vaultline.repository.vault import Vault


def header(rp_id: str, source: str = "s3://b", **extra: object) -> RecoveryPoint:
    now = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    return RecoveryPoint(id=rp_id, source=source, source_kind="s3", time=now, finished=now, **extra)  # type: ignore[arg-type]


def test_recovery_point_ids_are_time_sortable() -> None:
    early = new_recovery_point_id(datetime(2026, 1, 1, tzinfo=UTC))
    late = new_recovery_point_id(datetime(2026, 1, 2, tzinfo=UTC))
    assert early < late
    assert is_recovery_point_id(early)
    assert not is_recovery_point_id("latest")


def test_manifest_header_round_trip(local_vault: Vault) -> None:
    rp = header(
        "20260102T030405Z-0123abcd",
        plan="nightly",
        tags={"env": "prod"},
        stats=BackupStats(objects=3, bytes=10, new_chunks=2),
        entry_count=3,
        entry_blobs=["00" * 32],
        extra={"note": ["x", 1]},
    )
    commit_recovery_point(local_vault, rp)
    assert load_recovery_point(local_vault, rp.id) == rp


def test_manifest_is_bound_to_its_id(local_vault: Vault) -> None:
    rp = header("20260102T030405Z-0123abcd")
    commit_recovery_point(local_vault, rp)
    stored = local_vault.storage.get(MANIFEST_PREFIX + rp.id)
    local_vault.storage.put(MANIFEST_PREFIX + "20260102T030405Z-ffffffff", stored)
    # Unencrypted vaults have no AAD to bind the name, but the header still carries its own id.
    loaded = load_recovery_point(local_vault, "20260102T030405Z-ffffffff")
    assert loaded.id == rp.id


def test_corrupt_manifest_raises_integrity_error(local_vault: Vault) -> None:
    rp = header("20260102T030405Z-0123abcd")
    commit_recovery_point(local_vault, rp)
    local_vault.storage.put(MANIFEST_PREFIX + rp.id, b"not a manifest")
    with pytest.raises(IntegrityError):
        load_recovery_point(local_vault, rp.id)


def test_entry_stream_round_trips_across_many_blobs(local_vault: Vault) -> None:
    entries = [
        ObjectEntry(key=f"key-{i:05d}-{'é' * (i % 7)}\n?", size=i, chunks=["ab" * 32], metadata={"i": str(i)})
        for i in range(6000)
    ]
    with BlobWriter(local_vault) as writer:
        blob_ids, count = write_entries(writer, Chunker(local_vault.config.chunker), reversed(entries))
        writer.flush()
    assert count == len(entries)
    assert len(blob_ids) > 1  # the stream is cut like data
    rp = header("20260102T030405Z-0123abcd", entry_blobs=blob_ids, entry_count=count)
    assert list(iter_entries(local_vault, rp)) == sorted(entries, key=lambda e: e.key)


def test_resolve_recovery_point_by_id_prefix_and_latest(local_vault: Vault) -> None:
    ids = ["20260101T000000Z-aaaaaaaa", "20260102T000000Z-bbbbbbbb", "20260102T000000Z-bbbbcccc"]
    for rp_id in ids:
        commit_recovery_point(local_vault, header(rp_id, source="s3://" + rp_id[-1]))
    assert [rp.id for rp in list_recovery_points(local_vault)] == ids
    assert resolve_recovery_point(local_vault, "latest").id == ids[-1]
    assert resolve_recovery_point(local_vault, ids[0]).id == ids[0]
    assert resolve_recovery_point(local_vault, "20260101").id == ids[0]
    with pytest.raises(UsageError, match="ambiguous"):
        resolve_recovery_point(local_vault, "20260102T000000Z-bbbb")
    with pytest.raises(RecoveryPointNotFound, match="nope"):
        resolve_recovery_point(local_vault, "nope")
    with pytest.raises(RecoveryPointNotFound):
        load_recovery_point(local_vault, "20990101T000000Z-00000000")
    latest = latest_for_source(local_vault, "s3://a")
    assert latest is not None and latest.id == ids[0]
    assert latest_for_source(local_vault, "s3://other") is None


def test_latest_of_an_empty_vault_raises_not_found(local_vault: Vault) -> None:
    with pytest.raises(RecoveryPointNotFound, match="no recovery points"):
        resolve_recovery_point(local_vault, "latest")


def test_same_content_compares_version_size_etag_and_mtime() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    base = ObjectEntry(key="k", size=1, etag='"e"', last_modified=when, version_id="v1")
    assert base.same_content(base.model_copy())
    for change in ({"size": 2}, {"etag": '"f"'}, {"version_id": "v2"}, {"last_modified": datetime.now(UTC)}):
        assert not base.same_content(base.model_copy(update=change))


def test_headers_stream_oldest_first_reading_only_a_bounded_window_ahead(
    local_vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [
        new_recovery_point_id(datetime(2026, 1, 1, 0, 0, n % 60, tzinfo=UTC).replace(minute=n // 60))
        for n in range(100)
    ]
    for rp_id in ids:
        commit_recovery_point(local_vault, header(rp_id))
    loaded: list[str] = []
    real_load = load_recovery_point

    def counting_load(vault: Vault, rp_id: str) -> RecoveryPoint:
        loaded.append(rp_id)
        return real_load(vault, rp_id)

    monkeypatch.setattr("vaultline.repository.manifest.load_recovery_point", counting_load)
    points = iter_recovery_points(local_vault)
    assert next(points).id == min(ids)
    assert len(loaded) <= HEADERS_IN_FLIGHT  # forget keeps a few fields of each: the window bounds the rest
    assert [p.id for p in points] == sorted(ids)[1:]


_text = st.text(max_size=8)
_moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]),
)
_entries = st.builds(
    ObjectEntry,
    key=st.text(min_size=1, max_size=12),
    size=st.integers(0, 2**40),
    chunks=st.lists(st.text(alphabet="0123456789abcdef", min_size=2, max_size=4), max_size=3),
    version_id=st.none() | _text,
    etag=st.none() | _text,
    last_modified=st.none() | _moments,
    metadata=st.dictionaries(_text, _text, max_size=2),
)


@given(_entries, _entries)
def test_an_entry_line_compares_and_decodes_as_the_entry_it_holds(parent: ObjectEntry, listed: ObjectEntry) -> None:
    line = EntryLine.parse(parent.manifest_line())
    assert line.entry() == parent
    assert line.key == parent.key and line.size == parent.size
    assert line.same_content(listed) == parent.same_content(listed)
    assert line.same_content(parent.model_copy(update={"chunks": []}))


def test_a_stream_of_carried_lines_is_stored_as_the_same_bytes_as_its_entries(local_vault: Vault) -> None:
    entries = [ObjectEntry(key=f"k{i:04d}", size=i, chunks=["ab" * 32], etag=f"e{i}") for i in range(3000)]
    mixed = [EntryLine.of(e) if i % 3 else e for i, e in enumerate(entries)]
    with BlobWriter(local_vault) as writer:
        chunker = Chunker(local_vault.config.chunker)
        decoded = write_sorted_entries(writer, chunker, entries)
        carried = write_sorted_entries(writer, chunker, mixed)
        writer.flush()
    assert carried == decoded
    rp = header("20260102T030405Z-0123abcd", entry_blobs=decoded[0], entry_count=decoded[1])
    assert [line.line for line in iter_entry_lines(local_vault, rp)] == [e.manifest_line() for e in entries]


def test_a_malformed_entry_line_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="recovery point x: malformed entry line"):
        EntryLine.parse(b'{"size": 1}', "recovery point x")
