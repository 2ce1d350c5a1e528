"""An S3 source lists its bucket in parallel by prefix partitions, and still yields every current object once, in
the bucket's key order (the order the parent comparison and the manifest need)."""

from __future__ import annotations

from typing import Any

import pytest

from vaultline.sources import KeyFilter, S3Source, s3_listing

# Keys whose order a naive partitioning gets wrong: '-' and '.' sort before '/', '0' after it; a folder marker; a
# deep path; a key beside a prefix of the same stem; non-ASCII (UTF-8 byte order is code point order).
KEYS = [
    "a-b",
    "a.txt",
    "a/",
    "a/b",
    "a/b/c/d/e",
    "a/b/c0",
    "a/b-c",
    "a0",
    "b",
    "b/x",
    "b/y/z",
    "photos/2024/01.jpg",
    "photos/2024/02.jpg",
    "photos2/x",
    "z/ä",
    "z/é/1",
    "z/z",
    "zz",
]


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of two keys and partitions expanded as deep as they go: every path of the listing is taken."""
    monkeypatch.setattr(s3_listing, "PAGE_SIZE", 2)
    monkeypatch.setattr(s3_listing, "PARTITIONS_WANTED", 1000)
    monkeypatch.setattr(s3_listing, "LIST_THREADS", 3)
    monkeypatch.setattr(s3_listing, "EXPAND_PAGES", 100)


def _fill(s3: Any, bucket: str, versioned: bool) -> None:
    s3.create_bucket(Bucket=bucket)
    if versioned:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())


@pytest.mark.parametrize("versioned", [False, True])
def test_a_partitioned_listing_yields_every_object_once_in_key_order(s3: Any, versioned: bool) -> None:
    _fill(s3, "src", versioned)
    if versioned:  # a second version, and a key whose latest version is a delete marker
        s3.put_object(Bucket="src", Key="a/b", Body=b"again")
        s3.delete_object(Bucket="src", Key="b")

    listed = list(S3Source("s3://src").list())

    expected = sorted(KEYS) if not versioned else sorted(set(KEYS) - {"b"})
    assert [e.key for e in listed] == expected
    if versioned:
        latest = s3.head_object(Bucket="src", Key="a/b")["VersionId"]
        assert next(e.version_id for e in listed if e.key == "a/b") == latest


def test_a_prefix_too_long_to_expand_is_listed_whole_in_its_place(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(s3, "src", versioned=False)
    monkeypatch.setattr(s3_listing, "EXPAND_PAGES", 2)  # the top level (5 pages) expands no further
    assert [e.key for e in S3Source("s3://src").list()] == sorted(KEYS)


def test_a_source_prefix_and_filter_hold_across_partitions(s3: Any) -> None:
    _fill(s3, "src", versioned=False)
    listed = S3Source("s3://src/photos", KeyFilter(exclude=["*/02.jpg"])).list()
    assert [e.key for e in listed] == ["photos/2024/01.jpg", "photos2/x"]


def test_the_partitions_are_listed_separately(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(s3, "src", versioned=False)
    whole: list[str] = []
    pages = s3_listing.OrderedListing._pages

    def spy(self: s3_listing.OrderedListing, prefix: str, delimiter: str | None) -> Any:
        if delimiter is None:
            whole.append(prefix)
        return pages(self, prefix, delimiter)

    monkeypatch.setattr(s3_listing.OrderedListing, "_pages", spy)
    monkeypatch.setattr(s3_listing, "PARTITIONS_WANTED", 4)  # the top level's ten are enough
    assert [e.key for e in S3Source("s3://src").list()] == sorted(KEYS)
    assert sorted(whole) == ["a/", "b/", "photos/", "photos2/", "z/"]


def test_a_listing_stopped_early_ends_its_listers(s3: Any) -> None:
    _fill(s3, "src", versioned=False)
    listing = S3Source("s3://src").list()
    assert next(listing).key == "a-b"
    listing.close()  # returns: no lister thread is left waiting for room to hand on a page
