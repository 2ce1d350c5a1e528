"""Backing up S3 buckets into a vault: prefixes and filters, incremental runs, versions, restore options."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from vaultline.operations.backup import run_backup
from vaultline.operations.check import check_vault
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.manifest import iter_entries, list_recovery_points
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.targets import S3Target

MiB = 1024 * 1024


def body(s3: Any, bucket: str, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def keys_of(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_backup_of_a_prefix_with_exclude_keeps_only_matching_keys(
    s3: Any, make_bucket: Callable[..., str], s3_vault: Vault
) -> None:
    make_bucket("photos")
    for key in ["app/a.json", "app/b.json", "app/tmp/c.tmp", "app/d.log", "other/e.json"]:
        s3.put_object(Bucket="photos", Key=key, Body=key.encode())
    rp = run_backup(s3_vault, open_source("s3://photos/app/", exclude=["*.tmp", "*.log"]))
    assert rp.source == "s3://photos/app/"
    assert rp.source_kind == "s3"
    assert [e.key for e in iter_entries(s3_vault, rp)] == ["app/a.json", "app/b.json"]
    assert rp.stats.objects == 2


def test_include_globs_select_keys_and_excludes_win(s3: Any, make_bucket: Callable[..., str], s3_vault: Vault) -> None:
    make_bucket("app-logs")
    for key in ["2026/01/a.gz", "2026/02/b.gz", "2026/02/c.txt", "2026/02/skip.gz"]:
        s3.put_object(Bucket="app-logs", Key=key, Body=b"x")
    rp = run_backup(s3_vault, open_source("s3://app-logs", include=["*.gz"], exclude=["*/skip.gz"]))
    assert [e.key for e in iter_entries(s3_vault, rp)] == ["2026/01/a.gz", "2026/02/b.gz"]


def test_second_backup_of_an_unchanged_bucket_reads_no_objects(
    s3: Any, make_bucket: Callable[..., str], s3_vault: Vault, rand: Callable[[int, int], bytes]
) -> None:
    make_bucket("data")
    for i in range(5):
        s3.put_object(Bucket="data", Key=f"obj-{i}", Body=rand(100_000 * (i + 1), i), Metadata={"n": str(i)})
    first = run_backup(s3_vault, open_source("s3://data"))
    assert first.stats.objects_read == 5
    second = run_backup(Vault.open(s3_vault.storage), open_source("s3://data"))
    assert second.parent == first.id
    assert second.stats.objects == 5
    assert second.stats.objects_read == 0
    assert second.stats.bytes_read == 0
    assert second.stats.objects_unchanged == 5
    assert second.stats.new_chunks == 0
    assert second.stats.bytes_stored == 0
    assert list(iter_entries(s3_vault, second)) == list(iter_entries(s3_vault, first))


def test_changed_object_uploads_only_changed_chunks(
    s3: Any, make_bucket: Callable[..., str], s3_vault: Vault, rand: Callable[[int, int], bytes]
) -> None:
    make_bucket("big")
    original = rand(8 * MiB, 42)
    s3.put_object(Bucket="big", Key="disk.img", Body=original)
    s3.put_object(Bucket="big", Key="small.txt", Body=b"unchanged")
    first = run_backup(s3_vault, open_source("s3://big"))
    assert first.stats.bytes_stored > 8 * MiB

    middle = len(original) // 2
    edited = original[:middle] + b"EDITED" * 10 + original[middle + 60 :]
    s3.put_object(Bucket="big", Key="disk.img", Body=edited)
    second = run_backup(Vault.open(s3_vault.storage), open_source("s3://big"))
    assert second.stats.objects_read == 1
    assert second.stats.objects_unchanged == 1
    # One or two data chunks around the edit, plus the manifest's entry stream.
    assert 1 <= second.stats.new_chunks <= 4
    assert second.stats.bytes_stored < 2.5 * MiB
    assert second.stats.bytes_stored < first.stats.bytes_stored / 3
    assert second.stats.duplicate_chunks >= 10

    make_bucket("back")
    vault = Vault.open(s3_vault.storage)
    restore_entries(vault, select_entries(vault, second), S3Target("s3://back"))
    assert body(s3, "back", "disk.img") == edited
    restore_entries(vault, select_entries(vault, first), S3Target("s3://back/old"))
    assert body(s3, "back", "old/disk.img") == original


def test_deleted_and_added_objects_show_in_the_next_recovery_point(
    s3: Any, make_bucket: Callable[..., str], s3_vault: Vault
) -> None:
    make_bucket("churn")
    s3.put_object(Bucket="churn", Key="stays", Body=b"1")
    s3.put_object(Bucket="churn", Key="goes", Body=b"2")
    first = run_backup(s3_vault, open_source("s3://churn"))
    s3.delete_object(Bucket="churn", Key="goes")
    s3.put_object(Bucket="churn", Key="new", Body=b"3")
    second = run_backup(s3_vault, open_source("s3://churn"))
    assert [e.key for e in iter_entries(s3_vault, first)] == ["goes", "stays"]
    assert [e.key for e in iter_entries(s3_vault, second)] == ["new", "stays"]
    assert second.stats.objects_read == 1


def test_versioned_bucket_records_version_ids(s3: Any, make_bucket: Callable[..., str], s3_vault: Vault) -> None:
    make_bucket("versioned", versioned=True)
    s3.put_object(Bucket="versioned", Key="doc", Body=b"v1")
    latest = s3.put_object(Bucket="versioned", Key="doc", Body=b"v2")["VersionId"]
    other = s3.put_object(Bucket="versioned", Key="other", Body=b"o")["VersionId"]
    s3.put_object(Bucket="versioned", Key="deleted", Body=b"d")
    s3.delete_object(Bucket="versioned", Key="deleted")

    rp = run_backup(s3_vault, open_source("s3://versioned"))
    entries = {e.key: e for e in iter_entries(s3_vault, rp)}
    assert set(entries) == {"doc", "other"}
    assert entries["doc"].version_id == latest
    assert entries["other"].version_id == other

    make_bucket("restored")
    restore_entries(s3_vault, entries.values(), S3Target("s3://restored"))
    assert body(s3, "restored", "doc") == b"v2"

    again = run_backup(s3_vault, open_source("s3://versioned"))
    assert again.stats.objects_read == 0
    s3.put_object(Bucket="versioned", Key="doc", Body=b"v3")
    third = run_backup(s3_vault, open_source("s3://versioned"))
    assert third.stats.objects_read == 1


def test_unversioned_bucket_records_no_version_ids(s3: Any, make_bucket: Callable[..., str], s3_vault: Vault) -> None:
    make_bucket("plain")
    s3.put_object(Bucket="plain", Key="k", Body=b"x")
    rp = run_backup(s3_vault, open_source("s3://plain"))
    assert [e.version_id for e in iter_entries(s3_vault, rp)] == [None]


def test_restore_to_a_prefix_with_include_globs(s3: Any, make_bucket: Callable[..., str], s3_vault: Vault) -> None:
    make_bucket("site")
    for key in ["index.html", "css/a.css", "img/logo.png"]:
        s3.put_object(Bucket="site", Key=key, Body=key.encode(), ContentType="text/x-test")
    rp = run_backup(s3_vault, open_source("s3://site"))
    make_bucket("copy")
    entries = select_entries(s3_vault, rp, ["*.css", "*.html"])
    outcome = restore_entries(s3_vault, entries, S3Target("s3://copy/restored/2026"))
    assert outcome.stats.objects == 2
    assert keys_of(s3, "copy") == ["restored/2026/css/a.css", "restored/2026/index.html"]
    assert s3.head_object(Bucket="copy", Key="restored/2026/index.html")["ContentType"] == "text/x-test"


def test_restore_keeps_every_recorded_header(s3: Any, make_bucket: Callable[..., str], s3_vault: Vault) -> None:
    make_bucket("headers")
    s3.put_object(
        Bucket="headers",
        Key="page.html.gz",
        Body=b"\x1f\x8b fake gzip",
        ContentType="text/html",
        ContentEncoding="gzip",
        ContentDisposition='attachment; filename="page.html"',
        ContentLanguage="en-GB",
        CacheControl="public, max-age=60",
        Expires="Wed, 01 Jan 2031 00:00:00 GMT",
        Metadata={"owner": "team-a", "x-trace": "abc"},
        Tagging="env=prod&cost center=42",
    )
    rp = run_backup(s3_vault, open_source("s3://headers"))
    make_bucket("headers-copy")
    restore_entries(s3_vault, select_entries(s3_vault, rp), S3Target("s3://headers-copy"))
    fields = ["ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl", "Expires"]
    fields += ["Metadata"]
    source = s3.head_object(Bucket="headers", Key="page.html.gz")
    copy = s3.head_object(Bucket="headers-copy", Key="page.html.gz")
    assert {f: copy.get(f) for f in fields} == {f: source.get(f) for f in fields}
    assert (
        s3.get_object_tagging(Bucket="headers-copy", Key="page.html.gz")["TagSet"]
        == s3.get_object_tagging(Bucket="headers", Key="page.html.gz")["TagSet"]
    )


def test_object_over_the_multipart_threshold_restores_exactly(
    s3: Any, make_bucket: Callable[..., str], s3_vault: Vault
) -> None:
    make_bucket("huge")
    data = random.Random(5).randbytes(17 * MiB)
    s3.put_object(Bucket="huge", Key="blob.bin", Body=data, Metadata={"m": "1"}, Tagging="a=b")
    rp = run_backup(s3_vault, open_source("s3://huge"))
    make_bucket("huge-copy")
    restore_entries(s3_vault, select_entries(s3_vault, rp), S3Target("s3://huge-copy"))
    assert body(s3, "huge-copy", "blob.bin") == data
    assert s3.head_object(Bucket="huge-copy", Key="blob.bin")["Metadata"] == {"m": "1"}
    assert s3.get_object_tagging(Bucket="huge-copy", Key="blob.bin")["TagSet"] == [{"Key": "a", "Value": "b"}]
    assert s3.list_multipart_uploads(Bucket="huge-copy").get("Uploads", []) == []


def test_empty_bucket_backs_up_to_an_empty_recovery_point(make_bucket: Callable[..., str], s3_vault: Vault) -> None:
    make_bucket("nothing")
    rp = run_backup(s3_vault, open_source("s3://nothing"))
    assert rp.entry_count == 0
    assert list(iter_entries(s3_vault, rp)) == []
    assert [p.id for p in list_recovery_points(s3_vault)] == [rp.id]
    assert check_vault(s3_vault, read_data=True).ok


def test_chunks_are_shared_across_sources_in_one_vault(
    s3: Any, make_bucket: Callable[..., str], s3_vault: Vault, rand: Callable[[int, int], bytes]
) -> None:
    data = rand(2 * MiB, 11)
    for name in ("east", "west"):
        make_bucket(name)
        s3.put_object(Bucket=name, Key="same.bin", Body=data)
    first = run_backup(s3_vault, open_source("s3://east"))
    second = run_backup(s3_vault, open_source("s3://west"))
    assert second.parent is None
    assert second.stats.objects_read == 1
    assert second.stats.bytes_stored < first.stats.bytes_stored / 10


@pytest.mark.parametrize("level", [1, 19])
def test_compression_level_is_taken_from_the_vault(
    s3: Any, make_bucket: Callable[..., str], level: int, tmp_path: Any
) -> None:
    from vaultline.storage import LocalStorage

    vault = Vault.init(LocalStorage(tmp_path / "v"), compression_level=level)
    make_bucket("text")
    s3.put_object(Bucket="text", Key="t.txt", Body=b"lorem ipsum dolor sit amet " * 20_000)
    rp = run_backup(vault, open_source("s3://text"))
    assert rp.stats.bytes_stored < 50_000
