"""The embedded deploy applies the template as CloudFormation applies it: every property reads back as it was set.

Each resource of the synthesized template is read back through its service's own API (get_object_lock_configuration,
get_bucket_lifecycle_configuration, get_key_policy, describe_alarms, ...), turned back into CloudFormation's shape
here, independently of the deploy's own conversions, and compared with the template's resolved properties.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline_dev.embedded.deploy import PROPERTIES, RESOURCE_ATTRIBUTES, How, UnappliedProperty, check_template

pytestmark = pytest.mark.e2e
DOCS = Path(__file__).resolve().parents[2] / "docs" / "embedded-aws.md"

Reader = Callable[[str, dict[str, Any]], dict[str, Any]]


def _tags(tag_set: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(({"Key": t["Key"], "Value": t["Value"]} for t in tag_set), key=lambda t: t["Key"])


def _bucket(name: str, props: dict[str, Any]) -> dict[str, Any]:
    s3 = client("s3")
    out: dict[str, Any] = {}
    lock = (
        s3.get_object_lock_configuration(Bucket=name)["ObjectLockConfiguration"]
        if props.get("ObjectLockEnabled")
        else {}
    )
    out["ObjectLockEnabled"] = lock.get("ObjectLockEnabled") == "Enabled"
    retention = lock.get("Rule", {}).get("DefaultRetention", {})
    for unit in ("Days", "Years"):
        if retention.get(unit) == 0:  # moto reports the unit not set as 0
            del retention[unit]
    out["ObjectLockConfiguration"] = lock
    out["VersioningConfiguration"] = {"Status": s3.get_bucket_versioning(Bucket=name).get("Status")}
    if "LifecycleConfiguration" in props:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
        out["LifecycleConfiguration"] = {"Rules": [_cfn_lifecycle_rule(r) for r in rules]}
    if "BucketEncryption" in props:
        rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
        out["BucketEncryption"] = {
            "ServerSideEncryptionConfiguration": [
                {
                    "ServerSideEncryptionByDefault": r["ApplyServerSideEncryptionByDefault"],
                    **({"BucketKeyEnabled": r["BucketKeyEnabled"]} if r.get("BucketKeyEnabled") else {}),
                }
                for r in rules
            ]
        }
    if "PublicAccessBlockConfiguration" in props:
        out["PublicAccessBlockConfiguration"] = s3.get_public_access_block(Bucket=name)[
            "PublicAccessBlockConfiguration"
        ]
    if "LoggingConfiguration" in props:
        enabled = s3.get_bucket_logging(Bucket=name)["LoggingEnabled"]
        out["LoggingConfiguration"] = {
            "DestinationBucketName": enabled["TargetBucket"],
            "LogFilePrefix": enabled["TargetPrefix"],
        }
    if "OwnershipControls" in props:
        out["OwnershipControls"] = s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"]
    if "Tags" in props:
        out["Tags"] = _tags(s3.get_bucket_tagging(Bucket=name)["TagSet"])
    return out


def _lock_configuration(bucket: str) -> dict[str, Any]:
    lock: dict[str, Any] = client("s3").get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    retention = lock.get("Rule", {}).get("DefaultRetention", {})
    for unit in ("Days", "Years"):
        if retention.get(unit) == 0:  # moto reports the unit not set as 0
            del retention[unit]
    return lock


def _cfn_lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Id": rule["ID"], "Status": rule["Status"]}
    prefix = rule.get("Filter", {}).get("Prefix", rule.get("Prefix", ""))
    if prefix:
        out["Prefix"] = prefix
    expiration = rule.get("Expiration", {})
    if "Days" in expiration:
        out["ExpirationInDays"] = expiration["Days"]
    if expiration.get("ExpiredObjectDeleteMarker"):
        out["ExpiredObjectDeleteMarker"] = True
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return out


def _bucket_policy(name: str, props: dict[str, Any]) -> dict[str, Any]:
    policy = json.loads(client("s3").get_bucket_policy(Bucket=props["Bucket"])["Policy"])
    return {"Bucket": props["Bucket"], "PolicyDocument": policy}


def _key(key_id: str, props: dict[str, Any]) -> dict[str, Any]:
    kms = client("kms")
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    return {
        "Description": meta["Description"],
        "KeyPolicy": json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]),
        "EnableKeyRotation": kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"],
    }


def _topic(arn: str, props: dict[str, Any]) -> dict[str, Any]:
    attributes = client("sns").get_topic_attributes(TopicArn=arn)["Attributes"]
    return {k: attributes.get(k) for k in ("DisplayName", "KmsMasterKeyId")}


def _topic_policy(name: str, props: dict[str, Any]) -> dict[str, Any]:
    sns = client("sns")
    policies = [json.loads(sns.get_topic_attributes(TopicArn=t)["Attributes"]["Policy"]) for t in props["Topics"]]
    assert all(p == policies[0] for p in policies)
    return {"Topics": props["Topics"], "PolicyDocument": policies[0]}


def _subscription(arn: str, props: dict[str, Any]) -> dict[str, Any]:
    found = [s for s in client("sns").list_subscriptions()["Subscriptions"] if s["SubscriptionArn"] == arn]
    return {k: found[0][k] for k in ("TopicArn", "Protocol", "Endpoint")} if found else {}


def _queue(url: str, props: dict[str, Any]) -> dict[str, Any]:
    attributes = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return {k: attributes.get(k) for k in props if k in attributes}


def _queue_policy(name: str, props: dict[str, Any]) -> dict[str, Any]:
    sqs = client("sqs")
    policies = [
        json.loads(sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["Policy"])["Attributes"]["Policy"])
        for q in props["Queues"]
    ]
    return {"Queues": props["Queues"], "PolicyDocument": policies[0]}


def _role(name: str, props: dict[str, Any]) -> dict[str, Any]:
    role = client("iam").get_role(RoleName=name)["Role"]
    return {"AssumeRolePolicyDocument": role["AssumeRolePolicyDocument"], "Description": role.get("Description")}


def _log_group(name: str, props: dict[str, Any]) -> dict[str, Any]:
    groups = client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    group = next(g for g in groups if g["logGroupName"] == name)
    return {"RetentionInDays": group.get("retentionInDays"), "KmsKeyId": group.get("kmsKeyId")}


def _layer(arn: str, props: dict[str, Any]) -> dict[str, Any]:
    # moto 5.2.5 answers GetLayerVersionByArn with a 500; the name and version are in the ARN.
    name, version = arn.rsplit(":", 2)[-2:]
    layer = client("lambda").get_layer_version(LayerName=name, VersionNumber=int(version))
    return {k: layer.get(k) for k in ("Description", "CompatibleRuntimes", "CompatibleArchitectures")}


def _function(name: str, props: dict[str, Any]) -> dict[str, Any]:
    lam = client("lambda")
    config = lam.get_function_configuration(FunctionName=name)
    out = {k: config.get(k) for k in ("Runtime", "Handler", "Role", "Timeout", "MemorySize", "Architectures")}
    out["Description"] = config.get("Description")
    out["Environment"] = {"Variables": config.get("Environment", {}).get("Variables", {})}
    out["Layers"] = [layer["Arn"] for layer in config.get("Layers", [])]
    out["TracingConfig"] = config.get("TracingConfig")
    out["EphemeralStorage"] = config.get("EphemeralStorage")
    out["ReservedConcurrentExecutions"] = lam.get_function_concurrency(FunctionName=name).get(
        "ReservedConcurrentExecutions"
    )
    return out


def _state_machine(arn: str, props: dict[str, Any]) -> dict[str, Any]:
    machine = client("stepfunctions").describe_state_machine(stateMachineArn=arn)
    logging = machine.get("loggingConfiguration", {})
    return {
        "DefinitionString": machine["definition"],
        "RoleArn": machine["roleArn"],
        "StateMachineType": machine["type"],
        "LoggingConfiguration": {
            "Level": logging.get("level"),
            "IncludeExecutionData": logging.get("includeExecutionData"),
            "Destinations": [
                {"CloudWatchLogsLogGroup": {"LogGroupArn": d["cloudWatchLogsLogGroup"]["logGroupArn"]}}
                for d in logging.get("destinations", [])
            ],
        },
        "TracingConfiguration": {"Enabled": machine.get("tracingConfiguration", {}).get("enabled")},
    }


def _schedule(name: str, props: dict[str, Any]) -> dict[str, Any]:
    schedule = client("scheduler").get_schedule(Name=name)
    keys = ("Name", "Description", "ScheduleExpression", "ScheduleExpressionTimezone", "State", "FlexibleTimeWindow")
    out = {k: schedule.get(k) for k in keys}
    out["Target"] = {k: schedule["Target"].get(k) for k in props["Target"]}
    return out


def _rule(name: str, props: dict[str, Any]) -> dict[str, Any]:
    events = client("events")
    rule = events.describe_rule(Name=name)
    targets = events.list_targets_by_rule(Rule=name)["Targets"]
    return {
        "Description": rule.get("Description"),
        "EventPattern": json.loads(rule["EventPattern"]),
        "State": rule["State"],
        "Targets": [
            {k: t[k] for k in t if k in ("Arn", "Id", "Input", "InputTransformer", "RoleArn")} for t in targets
        ],
    }


def _alarm(name: str, props: dict[str, Any]) -> dict[str, Any]:
    alarm = client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
    return {k: alarm.get(k) for k in props if k in alarm}


def _dashboard(name: str, props: dict[str, Any]) -> dict[str, Any]:
    body = client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"]
    return {"DashboardBody": json.loads(body)}


READERS: dict[str, Reader] = {
    "AWS::S3::Bucket": _bucket,
    "AWS::S3::BucketPolicy": _bucket_policy,
    "AWS::KMS::Key": _key,
    "AWS::SNS::Topic": _topic,
    "AWS::SNS::TopicPolicy": _topic_policy,
    "AWS::SNS::Subscription": _subscription,
    "AWS::SQS::Queue": _queue,
    "AWS::SQS::QueuePolicy": _queue_policy,
    "AWS::IAM::Role": _role,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::Lambda::LayerVersion": _layer,
    "AWS::Lambda::Function": _function,
    "AWS::StepFunctions::StateMachine": _state_machine,
    "AWS::Scheduler::Schedule": _schedule,
    "AWS::Events::Rule": _rule,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::CloudWatch::Dashboard": _dashboard,
}


def _normal(value: Any) -> Any:
    """One form for both sides: JSON text parsed, numbers (and numeric strings) as floats, lists of dicts sorted."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if re.fullmatch(r"-?\d+(\.\d+)?", value):
            return float(value)
        if value[:1] in "{[":
            try:
                return _normal(json.loads(value))
            except ValueError:
                return value
        return value
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        items = [_normal(v) for v in value]
        if all(isinstance(i, dict) for i in items):
            return sorted(items, key=lambda i: json.dumps(i, sort_keys=True))
        return items
    return value


def test_every_applied_property_reads_back_as_the_template_sets_it(
    deployment: Deployment, template: dict[str, Any]
) -> None:
    mismatches: list[str] = []
    compared = 0
    for logical, resource in template["Resources"].items():
        kind = resource["Type"]
        applied = [p for p in resource.get("Properties", {}) if PROPERTIES[kind][p].how is How.APPLIED]
        if not applied:
            continue
        assert kind in READERS, f"{kind}: applied properties {applied} that this test cannot read back"
        expected = deployment.deployed.deployed_properties[logical]
        actual = READERS[kind](deployment.deployed.physical[logical], expected)
        for prop in applied:
            if prop not in actual:
                mismatches.append(f"{logical}.{prop}: not read back")
            elif _normal(actual[prop]) != _normal(expected[prop]):
                mismatches.append(f"{logical}.{prop}: deployed {actual[prop]!r}, template {expected[prop]!r}")
            compared += 1
    assert not mismatches, "\n".join(mismatches)
    assert compared > 200


def test_vault_bucket_has_object_lock_and_no_default_retention_as_the_template_says(
    deployment: Deployment, template: dict[str, Any]
) -> None:
    # A bucket default would lock every object, config, locks and staging included, so that forget and prune could
    # free nothing younger than it (issue 9): Vaultline sets retention per object on what it means to lock.
    expected = template["Resources"]
    vault = next(k for k, r in expected.items() if r.get("Properties", {}).get("ObjectLockEnabled"))
    lock = _lock_configuration(deployment.deployed.physical[vault])
    assert lock.get("ObjectLockEnabled") == "Enabled"
    assert not lock.get("Rule", {}).get("DefaultRetention"), lock


def test_a_property_the_table_does_not_cover_fails_the_deploy(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    bucket = next(r for r in changed["Resources"].values() if r["Type"] == "AWS::S3::Bucket")
    bucket["Properties"]["AccelerateConfiguration"] = {"AccelerationStatus": "Enabled"}
    with pytest.raises(UnappliedProperty, match="AWS::S3::Bucket property AccelerateConfiguration"):
        check_template(changed)


def test_a_resource_type_the_table_does_not_cover_fails_the_deploy(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    changed["Resources"]["Table"] = {"Type": "AWS::DynamoDB::GlobalTable", "Properties": {}}
    with pytest.raises(UnappliedProperty, match="resource type AWS::DynamoDB::GlobalTable"):
        check_template(changed)


def test_the_synthesized_template_is_covered_by_the_table(template: dict[str, Any]) -> None:
    check_template(template)


def test_docs_mirror_the_table() -> None:
    section = DOCS.read_text().split("## What the embedded deploy applies", 1)[1].split("\n## ", 1)[0]
    rows = {
        tuple(cell.strip().strip("`") for cell in line.strip("|").split("|")[:3])
        for line in section.splitlines()
        if line.startswith("| `")
    }
    table = {(kind, prop, support.how.value) for kind, props in PROPERTIES.items() for prop, support in props.items()}
    table |= {("(any)", attr, support.how.value) for attr, support in RESOURCE_ATTRIBUTES.items()}
    assert rows == table
