"""S3 refuses a retention change that weakens one in force, and so does the tests' moto (object_lock_rules.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def locked(aws: None) -> tuple[Any, datetime]:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="worm", ObjectLockEnabledForBucket=True)
    until = datetime.now(UTC) + timedelta(days=10)
    for key, mode in (("governed", "GOVERNANCE"), ("complied", "COMPLIANCE")):
        s3.put_object(Bucket="worm", Key=key, Body=b"x", ObjectLockMode=mode, ObjectLockRetainUntilDate=until)
    return s3, until


def _retain(s3: Any, key: str, mode: str, until: datetime, **extra: Any) -> None:
    s3.put_object_retention(Bucket="worm", Key=key, Retention={"Mode": mode, "RetainUntilDate": until}, **extra)


def test_a_retention_is_extended_but_never_shortened_without_the_governance_bypass(
    locked: tuple[Any, datetime],
) -> None:
    s3, until = locked
    _retain(s3, "governed", "GOVERNANCE", until + timedelta(days=5))
    with pytest.raises(ClientError) as shorter:
        _retain(s3, "governed", "GOVERNANCE", until - timedelta(days=5))
    assert shorter.value.response["Error"]["Code"] == "AccessDenied"
    _retain(s3, "governed", "GOVERNANCE", until, BypassGovernanceRetention=True)
    assert s3.head_object(Bucket="worm", Key="governed")["ObjectLockRetainUntilDate"] <= until + timedelta(seconds=1)


def test_a_compliance_retention_is_never_shortened_nor_downgraded_even_with_the_bypass(
    locked: tuple[Any, datetime],
) -> None:
    s3, until = locked
    for mode, when in (("COMPLIANCE", until - timedelta(days=1)), ("GOVERNANCE", until + timedelta(days=1))):
        with pytest.raises(ClientError) as refused:
            _retain(s3, "complied", mode, when, BypassGovernanceRetention=True)
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    _retain(s3, "complied", "COMPLIANCE", until + timedelta(days=1))
