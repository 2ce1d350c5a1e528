"""The embedded AWS's request -> IAM action/resource/context table (vaultline_dev/embedded/iam_requests.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from vaultline_dev.embedded.iam_requests import Call, Check, KmsLookup, checks_for, parse_params

REGION, ACCOUNT = "us-east-1", "123456789012"
KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1111-2222"
KMS = KmsLookup(
    key_arn=lambda ref: KEY_ARN if ref in ("1111-2222", "alias/vault", KEY_ARN) else f"unknown:{ref}",
    key_of_ciphertext=lambda blob: KEY_ARN if blob == b"sealed-by-vault-key" else "unknown",
)


def _call(service: str, operation: str = "", method: str = "POST", path: str = "/", **extra: Any) -> Call:
    query = extra.pop("query", {})
    body = extra.pop("body", b"")
    params = extra.pop("params", None)
    if params is not None:
        body = json.dumps(params).encode()
    return Call(
        service=service,
        operation=operation,
        method=method,
        path=path,
        query=query,
        headers=extra.pop("headers", {}),
        params=parse_params(body, query),
        body=body,
        region=REGION,
        account=ACCOUNT,
        **extra,
    )


def _s3(method: str, bucket: str | None, key: str | None = None, **extra: Any) -> list[Check]:
    return checks_for(_call("s3", method=method, bucket=bucket, key=key, **extra), KMS)


@pytest.mark.parametrize(
    ("method", "key", "query", "action", "resource"),
    [
        ("HEAD", None, {}, "s3:ListBucket", "arn:aws:s3:::b"),  # HeadBucket: moto says HeadBucket, IAM ListBucket
        ("GET", None, {"list-type": ["2"]}, "s3:ListBucket", "arn:aws:s3:::b"),
        ("GET", None, {"versions": [""]}, "s3:ListBucketVersions", "arn:aws:s3:::b"),
        ("GET", None, {"object-lock": [""]}, "s3:GetBucketObjectLockConfiguration", "arn:aws:s3:::b"),
        ("PUT", None, {"encryption": [""]}, "s3:PutEncryptionConfiguration", "arn:aws:s3:::b"),
        ("GET", "k/1", {}, "s3:GetObject", "arn:aws:s3:::b/k/1"),
        ("HEAD", "k/1", {}, "s3:GetObject", "arn:aws:s3:::b/k/1"),
        ("GET", "k/1", {"versionId": ["v1"]}, "s3:GetObjectVersion", "arn:aws:s3:::b/k/1"),
        ("GET", "k/1", {"tagging": [""], "versionId": ["v1"]}, "s3:GetObjectVersionTagging", "arn:aws:s3:::b/k/1"),
        ("PUT", "k/1", {"retention": [""]}, "s3:PutObjectRetention", "arn:aws:s3:::b/k/1"),
        ("PUT", "k/1", {"legal-hold": [""]}, "s3:PutObjectLegalHold", "arn:aws:s3:::b/k/1"),
        ("PUT", "k/1", {"uploadId": ["u"], "partNumber": ["1"]}, "s3:PutObject", "arn:aws:s3:::b/k/1"),
        ("POST", "k/1", {"uploads": [""]}, "s3:PutObject", "arn:aws:s3:::b/k/1"),
        ("DELETE", "k/1", {"uploadId": ["u"]}, "s3:AbortMultipartUpload", "arn:aws:s3:::b/k/1"),
        ("DELETE", "k/1", {"versionId": ["v1"]}, "s3:DeleteObjectVersion", "arn:aws:s3:::b/k/1"),
    ],
)
def test_s3_request_maps_to_the_iam_action_aws_checks(
    method: str, key: str | None, query: dict[str, list[str]], action: str, resource: str
) -> None:
    (check, *_) = _s3(method, "b", key, query=query)
    assert (check.action, check.resource) == (action, resource)


def test_s3_listing_carries_its_prefix_as_a_condition_key() -> None:
    (check,) = _s3("GET", "b", query={"list-type": ["2"], "prefix": ["docs/"], "delimiter": ["/"]})
    assert check.context == {"s3:prefix": "docs/", "s3:delimiter": "/"}


def test_s3_copy_also_reads_its_source() -> None:
    checks = _s3("PUT", "dst", "k", headers={"x-amz-copy-source": "/src/a%20b?versionId=v9"})
    assert [(c.action, c.resource) for c in checks] == [
        ("s3:PutObject", "arn:aws:s3:::dst/k"),
        ("s3:GetObjectVersion", "arn:aws:s3:::src/a b"),
    ]


def test_s3_put_carries_its_encryption_and_object_lock_headers() -> None:
    headers = {"X-Amz-Server-Side-Encryption": "aws:kms", "x-amz-object-lock-mode": "GOVERNANCE"}
    (check,) = _s3("PUT", "b", "k", headers=headers)
    assert check.context == {"s3:x-amz-server-side-encryption": "aws:kms", "s3:object-lock-mode": "GOVERNANCE"}


def test_s3_overriding_a_governance_retention_also_needs_the_bypass_permission() -> None:
    bypass = {"x-amz-bypass-governance-retention": "true"}
    checks = _s3("PUT", "b", "k", query={"retention": [""], "versionId": ["v1"]}, headers=bypass)
    assert [c.action for c in checks] == ["s3:PutObjectRetention", "s3:BypassGovernanceRetention"]
    checks = _s3("DELETE", "b", "k", query={"versionId": ["v1"]}, headers=bypass)
    assert [(c.action, c.resource) for c in checks] == [
        ("s3:DeleteObjectVersion", "arn:aws:s3:::b/k"),
        ("s3:BypassGovernanceRetention", "arn:aws:s3:::b/k"),
    ]
    assert [c.action for c in _s3("PUT", "b", "k", query={"retention": [""]})] == ["s3:PutObjectRetention"]


def test_s3_conditional_put_carries_if_none_match_for_create_only_policies() -> None:
    (check,) = _s3("PUT", "vault", "config", headers={"If-None-Match": "*"})
    assert check.context == {"s3:if-none-match": "*"}


def test_s3_delete_objects_is_authorized_key_by_key() -> None:
    body = (
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>locks/a</Key></Object>'
        b"<Object><Key>packs/b</Key><VersionId>v2</VersionId></Object></Delete>"
    )
    checks = _s3("POST", "vault", query={"delete": [""]}, body=body)
    assert [(c.action, c.resource) for c in checks] == [
        ("s3:DeleteObject", "arn:aws:s3:::vault/locks/a"),
        ("s3:DeleteObjectVersion", "arn:aws:s3:::vault/packs/b"),
    ]


def test_s3_without_a_bucket_is_list_all_my_buckets() -> None:
    assert _s3("GET", None) == [Check("s3:ListAllMyBuckets", "*")]


def test_lambda_invoke_is_invoke_function_on_the_function_arn_whatever_it_is_named_by() -> None:
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:worker"
    for reference in ("worker", arn, f"{ACCOUNT}:function:worker"):
        call = _call("lambda", "Invoke", path=f"/2015-03-31/functions/{reference}/invocations")
        assert checks_for(call, KMS) == [Check("lambda:InvokeFunction", arn)]
    qualified = _call("lambda", "Invoke", path="/2015-03-31/functions/worker/invocations", query={"Qualifier": ["7"]})
    assert checks_for(qualified, KMS) == [Check("lambda:InvokeFunction", f"{arn}:7")]


def test_dynamodb_names_the_table_and_its_index() -> None:
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/t"
    scan = _call("dynamodb", "Scan", params={"TableName": "t", "IndexName": "by-date"})
    assert checks_for(scan, KMS) == [Check("dynamodb:Scan", f"{table}/index/by-date")]
    batch = _call("dynamodb", "BatchWriteItem", params={"RequestItems": {"t": [], "u": []}})
    assert [c.resource for c in checks_for(batch, KMS)] == [table, table[:-1] + "u"]
    export = _call("dynamodb", "ExportTableToPointInTime", params={"TableArn": table, "S3Bucket": "v"})
    assert checks_for(export, KMS) == [Check("dynamodb:ExportTableToPointInTime", table)]


def test_dynamodb_transaction_checks_each_item_as_its_own_operation() -> None:
    items = [{"Put": {"TableName": "t", "Item": {}}}, {"ConditionCheck": {"TableName": "u", "Key": {}}}]
    call = _call("dynamodb", "TransactWriteItems", params={"TransactItems": items})
    assert [c.action for c in checks_for(call, KMS)] == ["dynamodb:PutItem", "dynamodb:ConditionCheck"]


def test_kms_authorizes_on_the_key_arn_for_aliases_and_ciphertexts() -> None:
    by_alias = _call("kms", "GenerateDataKey", params={"KeyId": "alias/vault", "EncryptionContext": {"a": "1"}})
    (check,) = checks_for(by_alias, KMS)
    assert (check.action, check.resource) == ("kms:GenerateDataKey", KEY_ARN)
    assert check.context["kms:EncryptionContext:a"] == "1"
    blob = base64.b64encode(b"sealed-by-vault-key").decode()
    (decrypt,) = checks_for(_call("kms", "Decrypt", params={"CiphertextBlob": blob}), KMS)
    assert (decrypt.action, decrypt.resource) == ("kms:Decrypt", KEY_ARN)


def test_step_functions_authorize_on_the_state_machine_or_the_execution() -> None:
    machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:backup"
    execution = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:backup:run-1"
    start = _call("states", "StartExecution", params={"stateMachineArn": machine, "input": "{}"})
    assert checks_for(start, KMS) == [Check("states:StartExecution", machine)]
    describe = _call("states", "DescribeExecution", params={"executionArn": execution})
    assert checks_for(describe, KMS) == [Check("states:DescribeExecution", execution)]


def test_put_events_is_checked_per_entry_on_its_bus_with_source_and_detail_type() -> None:
    entries = [{"Source": "vaultline", "DetailType": "Backup Succeeded", "Detail": "{}"}]
    (check,) = checks_for(_call("events", "PutEvents", params={"Entries": entries}), KMS)
    assert check.resource == f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    assert check.context == {"events:source": "vaultline", "events:detail-type": "Backup Succeeded"}


def test_sns_and_scheduler_name_their_resources() -> None:
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:alerts"
    publish = _call("sns", "Publish", query={"TopicArn": [topic], "Message": ["m"]})
    assert checks_for(publish, KMS) == [Check("sns:Publish", topic)]
    schedule = _call("scheduler", "GetSchedule", method="GET", path="/schedules/nightly")
    assert checks_for(schedule, KMS) == [
        Check("scheduler:GetSchedule", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/nightly")
    ]


def test_services_outside_the_table_keep_motos_resource_with_their_iam_prefix() -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/r"
    assume = _call("sts", "AssumeRole", moto_resource=role)
    assert checks_for(assume, KMS) == [Check("sts:AssumeRole", role)]
    assert checks_for(_call("monitoring", "PutMetricData"), KMS) == [Check("cloudwatch:PutMetricData", "*")]
