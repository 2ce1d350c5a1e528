"""Property: any set of S3 objects (keys, bodies, headers, metadata, tags) restores to another bucket exactly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tests.strategies import object_body, object_sizes
from vaultline.aws import reset_clients
from vaultline.operations.backup import run_backup
from vaultline.operations.restore import restore_entries, select_entries
from vaultline.repository.vault import Vault
from vaultline.sources import S3Source
from vaultline.storage import S3Storage
from vaultline.targets import S3Target

KEY_ALPHABET = st.sampled_from([*list("abcXYZ0189 /._-%+#?&=;:@$,!'()*~"), "é", "ß", "日本", "Ω", "😀", "🗄️"])
keys = st.lists(KEY_ALPHABET, min_size=1, max_size=30).map("".join)
sizes = object_sizes
META_KEY = st.text(st.sampled_from("abcdefxyz0129-"), min_size=1, max_size=12)
META_VALUE = st.text(st.sampled_from("abcXYZ019 -_.:/=+%"), min_size=0, max_size=20).map(str.strip)
TAG_TEXT = st.text(st.sampled_from("abcXYZ019 +-=._:/@"), min_size=1, max_size=20)
objects = st.fixed_dictionaries(
    {
        "size": sizes,
        "seed": st.integers(0, 2**32),
        "compressible": st.booleans(),
        "content_type": st.sampled_from(["application/json", "text/plain; charset=utf-8", "image/png", None]),
        "cache_control": st.sampled_from(["max-age=3600", "no-cache, no-store", None]),
        "metadata": st.dictionaries(META_KEY, META_VALUE, max_size=3),
        "tags": st.dictionaries(TAG_TEXT, TAG_TEXT | st.just(""), max_size=3),
    }
)
buckets = st.dictionaries(keys, objects, min_size=1, max_size=5)


def body(spec: dict[str, Any]) -> bytes:
    return object_body(spec["size"], spec["seed"], spec["compressible"], period=113)


def put(s3: Any, bucket: str, key: str, spec: dict[str, Any]) -> None:
    args: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body(spec), "Metadata": spec["metadata"]}
    if spec["content_type"]:
        args["ContentType"] = spec["content_type"]
    if spec["cache_control"]:
        args["CacheControl"] = spec["cache_control"]
    if spec["tags"]:
        args["Tagging"] = urlencode(spec["tags"])
    s3.put_object(**args)


def described(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    response = s3.get_object(Bucket=bucket, Key=key)
    return {
        "body": response["Body"].read(),
        "content_type": response.get("ContentType"),
        "cache_control": response.get("CacheControl"),
        "metadata": response.get("Metadata"),
        "tags": {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]},
    }


@pytest.fixture
def clients(aws_env: None) -> Iterator[tuple[Any, Any]]:
    """boto3 clients for the whole test. Creating clients is the slow part of an example (~0.2 s each), and moto
    patches botocore globally, so clients made once serve each example's fresh ``mock_aws`` context."""
    reset_clients()
    yield boto3.client("s3", region_name="us-east-1"), boto3.client("kms", region_name="us-east-1")
    reset_clients()


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bucket=buckets, encrypted=st.booleans())
def test_s3_objects_round_trip_with_metadata_and_tags(
    clients: tuple[Any, Any], bucket: dict[str, dict[str, Any]], encrypted: bool
) -> None:
    s3, kms = clients
    # A fresh moto per example: no bucket, key or object leaks from one example into the next.
    with mock_aws():
        for name in ("source", "vault", "restored"):
            s3.create_bucket(Bucket=name)
        for key, spec in bucket.items():
            put(s3, "source", key, spec)
        if encrypted:
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            vault = Vault.init(S3Storage("vault", "v"), encryption="kms", kms_key_id=key_id)
        else:
            vault = Vault.init(S3Storage("vault", "v"))

        rp = run_backup(vault, S3Source("s3://source"))
        assert rp.stats.objects == len(bucket)

        reopened = Vault.open("s3://vault/v")
        entries = select_entries(reopened, rp)
        assert sorted(e.key for e in entries) == sorted(bucket)
        outcome = restore_entries(reopened, entries, S3Target("s3://restored"))
        assert outcome.stats.objects == len(bucket)

        for key in bucket:
            assert described(s3, "restored", key) == described(s3, "source", key), key
