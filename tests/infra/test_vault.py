"""The vault bucket and its key: encryption, immutability, lifecycle, and that nothing is deleted with the stack."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match

from infra.app import build_app
from infra.settings import SettingsError
from tests.infra.conftest import Synth, synthesize
from vaultline.runs.settings import (
    OBJECT_LOCK_DAYS_ENV,
    OBJECT_LOCK_MAX_DAYS_ENV,
    OBJECT_LOCK_MIN_DAYS_ENV,
    OBJECT_LOCK_MODE_ENV,
)


def _vault(synth: Synth) -> dict:
    return synth.only("AWS::S3::Bucket", "VaultBucket")[1]


def test_vault_key_rotates_and_is_retained(synth: Synth) -> None:
    _, key = synth.only("AWS::KMS::Key", "VaultKey")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"


def test_vault_bucket_is_versioned_object_locked_and_sse_kms_with_the_vault_key(synth: Synth) -> None:
    props = _vault(synth)["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["ObjectLockEnabled"] is True
    rule = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key_id, _ = synth.only("AWS::KMS::Key", "VaultKey")
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert rule["BucketKeyEnabled"] is True


def test_the_vault_bucket_has_no_default_retention_and_the_functions_lock_per_object(synth: Synth) -> None:
    # A bucket default would lock config, locks/ and staging/ too (forget and prune could release nothing for
    # 30 days); the context's mode and days (cdk.json: GOVERNANCE, 30) reach the writers instead.
    props = _vault(synth)["Properties"]
    assert props["ObjectLockEnabled"] is True
    assert "Rule" not in props.get("ObjectLockConfiguration", {})
    for function in synth.resources("AWS::Lambda::Function").values():
        env = function["Properties"]["Environment"]["Variables"]
        assert env[OBJECT_LOCK_MODE_ENV] == "GOVERNANCE" and env[OBJECT_LOCK_DAYS_ENV] == "30"


def test_zero_retention_days_keeps_object_lock_enabled_without_default_retention(multi_synth: Synth) -> None:
    props = _vault(multi_synth)["Properties"]
    assert props["ObjectLockEnabled"] is True
    assert "Rule" not in props.get("ObjectLockConfiguration", {})
    for function in multi_synth.resources("AWS::Lambda::Function").values():
        assert function["Properties"]["Environment"]["Variables"][OBJECT_LOCK_DAYS_ENV] == "0"


def test_vault_bucket_blocks_public_access_and_is_retained(synth: Synth) -> None:
    bucket = _vault(synth)
    assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["UpdateReplacePolicy"] == "Retain"


def test_vault_bucket_policy_denies_non_tls_requests(synth: Synth) -> None:
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    synth.assertions.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": vault_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            },
        },
    )


def test_lifecycle_expires_staging_noncurrent_versions_and_incomplete_uploads(synth: Synth) -> None:
    rules = {r["Id"]: r for r in _vault(synth)["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-staging"]["Prefix"] == "staging/"
    assert rules["expire-staging"]["ExpirationInDays"] == 7
    assert rules["expire-noncurrent-versions"]["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert all(r["Status"] == "Enabled" for r in rules.values())


def test_vault_access_is_logged_to_a_separate_retained_bucket(synth: Synth) -> None:
    logs_id, logs = synth.only("AWS::S3::Bucket", "VaultAccessLogs")
    assert _vault(synth)["Properties"]["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    assert logs["DeletionPolicy"] == "Retain"
    assert "AccessControl" not in logs["Properties"]  # log delivery via bucket policy, ACLs disabled


def test_the_contexts_lock_bounds_reach_the_functions_that_create_the_vault() -> None:
    # The first backup's Prepare creates the vault from these (vaultline/runs/staging.py): version 2 settings.
    bounded = synthesize({"objectLockMinDays": 14, "objectLockMaxDays": 90}, nag=False)
    for function in bounded.resources("AWS::Lambda::Function").values():
        env = function["Properties"]["Environment"]["Variables"]
        assert (env[OBJECT_LOCK_MIN_DAYS_ENV], env[OBJECT_LOCK_MAX_DAYS_ENV]) == ("14", "90")


def test_lock_bounds_that_exclude_the_retention_days_name_the_context_keys() -> None:
    with pytest.raises(SettingsError, match=r"objectLockRetentionDays 30 is outside \[objectLockMinDays 40"):
        build_app({"objectLockRetentionDays": 30, "objectLockMinDays": 40}, nag=False, stage_assets=False)
