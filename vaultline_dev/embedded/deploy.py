"""Deploy a synthesized CloudFormation template into the embedded AWS with the service APIs.

moto's CloudFormation cannot deploy our stack (no AWS::S3::BucketPolicy, state machines missing from listings),
so each resource type is created by its own API, in CloudFormation's order, with intrinsics resolved as
CloudFormation resolves them (``intrinsics.py``). Every property of every resource is either applied or listed in
:data:`PROPERTIES` with the reason it is not; a property or resource type that is in neither place fails the
deploy (:class:`UnappliedProperty`), so a new template property can never be dropped silently. The table is
mirrored in docs/embedded-aws.md ("What the embedded deploy applies"), and a test keeps the two equal.
"""

from __future__ import annotations

import io
import json
import uuid
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from vaultline.aws import client
from vaultline.errors import VaultlineError
from vaultline_dev.embedded.iam import assume_as_service
from vaultline_dev.embedded.iam_deploy import apply_policies
from vaultline_dev.embedded.intrinsics import Resolver, TemplateError, creation_order, pseudo_parameters

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK_NAME = "Vaultline"


class UnappliedProperty(VaultlineError):
    """The template holds a resource type or property the embedded deploy neither applies nor lists."""


class How(Enum):
    """What the embedded deploy does with one template property."""

    APPLIED = "applied"
    # Applied by vaultline_dev/embedded/iam_deploy.py (IAM policies), dispatched from here.
    IAM_DEPLOY = "applied by iam_deploy"
    # Applied in a different form, for a reason the note gives (e.g. code assets: the embedded Lambda runs them).
    ADAPTED = "adapted"
    NOT_APPLIED = "not applied"


@dataclass(frozen=True)
class Support:
    how: How
    note: str = ""


A = Support(How.APPLIED)
IAM = Support(How.IAM_DEPLOY)


def _adapted(note: str) -> Support:
    return Support(How.ADAPTED, note)


def _not_applied(note: str) -> Support:
    return Support(How.NOT_APPLIED, note)


_CODE_ASSET = _adapted(
    "the asset lives in cdk.out, not in an asset bucket; a placeholder archive is deployed and the embedded Lambda"
    " (lambdas.py) runs the handler from the code asset"
)
_NEVER_DELETED = _not_applied("the embedded stack is never updated or deleted; every resource lives as long as it")

# Resource attributes (siblings of Properties) and what the deploy does with them.
RESOURCE_ATTRIBUTES: dict[str, Support] = {
    "DependsOn": _adapted("orders creation, with every Ref / Fn::GetAtt / Fn::Sub reference, as CloudFormation does"),
    "DeletionPolicy": _NEVER_DELETED,
    "UpdateReplacePolicy": _NEVER_DELETED,
    "Metadata": _not_applied("CDK's construct paths and cdk-nag notes: information for tools, not for AWS"),
}

# THE table: every property of every resource type the deploy knows, and what it does with it.
PROPERTIES: dict[str, dict[str, Support]] = {
    "AWS::KMS::Key": {
        "Description": A,
        "KeyPolicy": A,
        "EnableKeyRotation": A,
        "RotationPeriodInDays": A,
        "Enabled": A,
        "KeyUsage": A,
        "KeySpec": A,
        "MultiRegion": A,
        "Tags": A,
        "PendingWindowInDays": _not_applied("only matters when the key is deleted, which the embedded stack never is"),
    },
    "AWS::KMS::Alias": {"AliasName": A, "TargetKeyId": A},
    "AWS::S3::Bucket": {
        "BucketName": A,
        "ObjectLockEnabled": A,
        "ObjectLockConfiguration": A,
        "VersioningConfiguration": A,
        "LifecycleConfiguration": A,
        "BucketEncryption": A,
        "PublicAccessBlockConfiguration": A,
        "LoggingConfiguration": A,
        "OwnershipControls": A,
        "Tags": A,
    },
    "AWS::S3::BucketPolicy": {"Bucket": A, "PolicyDocument": A},
    "AWS::SNS::Topic": {
        "TopicName": A,
        "DisplayName": A,
        "KmsMasterKeyId": A,
        "FifoTopic": A,
        "ContentBasedDeduplication": A,
        "Subscription": A,
        "Tags": A,
    },
    "AWS::SNS::TopicPolicy": {"Topics": A, "PolicyDocument": A},
    "AWS::SNS::Subscription": {
        "TopicArn": A,
        "Protocol": A,
        "Endpoint": A,
        "FilterPolicy": A,
        "FilterPolicyScope": A,
        "RawMessageDelivery": A,
        "RedrivePolicy": A,
        "Region": _not_applied("the embedded AWS has one region"),
    },
    "AWS::SQS::Queue": {
        "QueueName": A,
        "KmsMasterKeyId": A,
        "KmsDataKeyReusePeriodSeconds": A,
        "MessageRetentionPeriod": A,
        "VisibilityTimeout": A,
        "DelaySeconds": A,
        "MaximumMessageSize": A,
        "ReceiveMessageWaitTimeSeconds": A,
        "RedrivePolicy": A,
        "SqsManagedSseEnabled": A,
        "FifoQueue": A,
        "ContentBasedDeduplication": A,
        "Tags": A,
    },
    "AWS::SQS::QueuePolicy": {"Queues": A, "PolicyDocument": A},
    "AWS::IAM::Role": {
        "RoleName": A,
        "AssumeRolePolicyDocument": A,
        "Description": A,
        "Path": A,
        "MaxSessionDuration": A,
        "Tags": A,
        "ManagedPolicyArns": IAM,
        "Policies": IAM,
        "PermissionsBoundary": IAM,
    },
    "AWS::IAM::Policy": {"PolicyName": IAM, "PolicyDocument": IAM, "Roles": IAM, "Users": IAM, "Groups": IAM},
    "AWS::IAM::ManagedPolicy": {
        "ManagedPolicyName": IAM,
        "PolicyDocument": IAM,
        "Roles": IAM,
        "Description": IAM,
        "Path": IAM,
    },
    "AWS::Logs::LogGroup": {
        "LogGroupName": A,
        "RetentionInDays": A,
        "KmsKeyId": A,
        "LogGroupClass": A,
        "Tags": A,
        "DataProtectionPolicy": _not_applied("moto 5.2.5 has no PutDataProtectionPolicy"),
    },
    "AWS::Lambda::LayerVersion": {
        "LayerName": A,
        "Description": A,
        "CompatibleRuntimes": A,
        "CompatibleArchitectures": A,
        "LicenseInfo": A,
        "Content": _CODE_ASSET,
    },
    "AWS::Lambda::Function": {
        "FunctionName": A,
        "Runtime": A,
        "Handler": A,
        "Role": A,
        "Timeout": A,
        "MemorySize": A,
        "Architectures": A,
        "Environment": A,
        "Description": A,
        "Layers": A,
        "TracingConfig": A,
        "EphemeralStorage": A,
        "DeadLetterConfig": A,
        "KmsKeyArn": A,
        "ReservedConcurrentExecutions": A,
        "Tags": A,
        "Code": _CODE_ASSET,
        "LoggingConfig": _not_applied(
            "moto 5.2.5's CreateFunction drops LoggingConfig (GetFunctionConfiguration never returns it); the log"
            " group itself is created"
        ),
    },
    "AWS::StepFunctions::StateMachine": {
        "StateMachineName": A,
        "StateMachineType": A,
        "DefinitionString": A,
        "Definition": A,
        "DefinitionSubstitutions": A,
        "RoleArn": A,
        "LoggingConfiguration": A,
        "TracingConfiguration": A,
        "Tags": A,
    },
    "AWS::Scheduler::ScheduleGroup": {"Name": A, "Tags": A},
    "AWS::Scheduler::Schedule": {
        "Name": A,
        "GroupName": A,
        "Description": A,
        "ScheduleExpression": A,
        "ScheduleExpressionTimezone": A,
        "FlexibleTimeWindow": A,
        "StartDate": A,
        "EndDate": A,
        "State": A,
        "KmsKeyArn": A,
        "Target": A,
    },
    "AWS::Events::Rule": {
        "Name": A,
        "Description": A,
        "EventPattern": A,
        "ScheduleExpression": A,
        "State": A,
        "EventBusName": A,
        "RoleArn": A,
        "Targets": A,
    },
    "AWS::CloudWatch::Alarm": {
        "AlarmName": A,
        "AlarmDescription": A,
        "ActionsEnabled": A,
        "AlarmActions": A,
        "OKActions": A,
        "InsufficientDataActions": A,
        "ComparisonOperator": A,
        "EvaluationPeriods": A,
        "DatapointsToAlarm": A,
        "Threshold": A,
        "ThresholdMetricId": A,
        "TreatMissingData": A,
        "EvaluateLowSampleCountPercentile": A,
        "MetricName": A,
        "Namespace": A,
        "Dimensions": A,
        "Period": A,
        "Statistic": A,
        "ExtendedStatistic": A,
        "Unit": A,
        "Metrics": A,
        "Tags": A,
    },
    "AWS::CloudWatch::Dashboard": {"DashboardName": A, "DashboardBody": A},
}

# Template sections besides Resources that the deploy reads; any other (Parameters, Conditions, ...) fails it.
TEMPLATE_SECTIONS = {"AWSTemplateFormatVersion", "Description", "Metadata", "Resources", "Outputs"}


def support_table_markdown() -> str:
    """The table as docs/embedded-aws.md shows it (``python -c`` this to refresh the docs after changing it)."""
    lines = ["| resource type | property | what the deploy does | why |", "| --- | --- | --- | --- |"]
    for attribute, support in RESOURCE_ATTRIBUTES.items():
        lines.append(f"| `(any)` | `{attribute}` | {support.how.value} | {support.note} |")
    for kind, properties in PROPERTIES.items():
        for prop, support in properties.items():
            lines.append(f"| `{kind}` | `{prop}` | {support.how.value} | {support.note} |")
    return "\n".join(lines)


def check_template(template: dict[str, Any]) -> None:
    """Fail, naming every offender, if the template has a section, type or property the table does not cover."""
    problems = [f"template section {name}" for name in template if name not in TEMPLATE_SECTIONS]
    for logical, resource in template.get("Resources", {}).items():
        kind = resource["Type"]
        if kind not in PROPERTIES:
            problems.append(f"{logical}: resource type {kind}")
            continue
        attributes = set(resource) - {"Type", "Properties"}
        problems += [f"{logical}: attribute {a}" for a in sorted(attributes) if a not in RESOURCE_ATTRIBUTES]
        known = PROPERTIES[kind]
        problems += [f"{logical}: {kind} property {p}" for p in resource.get("Properties", {}) if p not in known]
    if problems:
        raise UnappliedProperty(
            "the embedded deploy neither applies nor lists (see PROPERTIES in vaultline_dev/embedded/deploy.py): "
            + "; ".join(problems)
        )


@dataclass
class DeployedStack:
    """What a deploy created: physical ids (Ref values) and attributes by logical id, and the resolved outputs."""

    physical: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    schedules: list[str] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Properties as resolved and deployed, by logical id (what a fidelity check compares the services with).
    deployed_properties: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Created:
    """A created resource: its Ref value and its Fn::GetAtt attributes."""

    ref: str
    attributes: dict[str, str] = field(default_factory=dict)


class _Props:
    """A resource's resolved properties; a creator ``take``s each one it applies, so none is forgotten."""

    def __init__(self, kind: str, logical: str, values: dict[str, Any]) -> None:
        self.kind, self.logical, self.values = kind, logical, values
        self.taken: set[str] = set()

    def take(self, name: str, default: Any = None) -> Any:
        self.taken.add(name)
        return self.values.get(name, default)

    def has(self, name: str) -> bool:
        return name in self.values

    def check_all_taken(self) -> None:
        table = PROPERTIES[self.kind]
        missed = [p for p in self.values if table[p].how is How.APPLIED and p not in self.taken]
        if missed:
            raise UnappliedProperty(f"{self.logical}: {self.kind} properties listed as applied but not: {missed}")


@dataclass
class _Context:
    bucket_names: dict[str, str]
    stack: DeployedStack
    # Calls that must wait until every resource exists (see the S3 logging note).
    deferred: list[Callable[[], Any]] = field(default_factory=list)


Creator = Callable[[str, _Props, _Context], Created]


def _physical_name(logical: str, limit: int = 64) -> str:
    # CloudFormation names an unnamed resource <stack>-<logical id>-<random suffix>; deterministic here.
    return f"{STACK_NAME}-{logical}"[:limit]


def _json(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document)


def _tag_list(tags: list[dict[str, str]] | None, key: str = "Key", value: str = "Value") -> list[dict[str, str]]:
    return [{key: t["Key"], value: t["Value"]} for t in tags or []]


def _tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "the embedded AWS runs this function's code from its code asset")
    return buffer.getvalue()


# --- KMS ----------------------------------------------------------------------------------------------------


def _kms_key(logical: str, p: _Props, ctx: _Context) -> Created:
    kms = client("kms")
    args: dict[str, Any] = {"Description": p.take("Description", ""), "Policy": _json(p.take("KeyPolicy"))}
    for prop, arg in (("KeyUsage", "KeyUsage"), ("KeySpec", "KeySpec"), ("MultiRegion", "MultiRegion")):
        if p.has(prop):
            args[arg] = p.take(prop)
    if p.has("Tags"):
        args["Tags"] = _tag_list(p.take("Tags"), "TagKey", "TagValue")
    meta = kms.create_key(**args)["KeyMetadata"]
    if p.take("EnableKeyRotation"):
        rotation: dict[str, Any] = {"KeyId": meta["KeyId"]}
        if p.has("RotationPeriodInDays"):
            rotation["RotationPeriodInDays"] = int(p.take("RotationPeriodInDays"))
        kms.enable_key_rotation(**rotation)
    p.take("RotationPeriodInDays")
    if p.take("Enabled", True) is False:
        kms.disable_key(KeyId=meta["KeyId"])
    return Created(meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]})


def _kms_alias(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("AliasName")
    client("kms").create_alias(AliasName=name, TargetKeyId=p.take("TargetKeyId"))
    return Created(name)


# --- S3 -----------------------------------------------------------------------------------------------------

_LIFECYCLE_RULE_KEYS = {
    "Id",
    "Status",
    "Prefix",
    "TagFilters",
    "ObjectSizeGreaterThan",
    "ObjectSizeLessThan",
    "ExpirationInDays",
    "ExpirationDate",
    "ExpiredObjectDeleteMarker",
    "NoncurrentVersionExpiration",
    "NoncurrentVersionExpirationInDays",
    "AbortIncompleteMultipartUpload",
    "Transitions",
    "NoncurrentVersionTransitions",
}


def lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """One CloudFormation lifecycle rule in the S3 API's shape (they differ: Prefix -> Filter, *InDays -> ...)."""
    unknown = set(rule) - _LIFECYCLE_RULE_KEYS
    if unknown:
        raise UnappliedProperty(f"lifecycle rule {rule.get('Id')}: properties {sorted(unknown)} are not applied")
    conditions: list[dict[str, Any]] = []
    if "Prefix" in rule:
        conditions.append({"Prefix": rule["Prefix"]})
    conditions += [{"Tag": {"Key": t["Key"], "Value": t["Value"]}} for t in rule.get("TagFilters", [])]
    conditions += [{n: int(rule[n])} for n in ("ObjectSizeGreaterThan", "ObjectSizeLessThan") if n in rule]
    if len(conditions) > 1:
        merged: dict[str, Any] = {"Tags": []}
        for condition in conditions:
            if "Tag" in condition:
                merged["Tags"].append(condition["Tag"])
            else:
                merged.update(condition)
        rule_filter: dict[str, Any] = {"And": merged}
    else:
        rule_filter = conditions[0] if conditions else {"Prefix": ""}
    out: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": rule_filter}
    expiration: dict[str, Any] = {}
    if "ExpirationInDays" in rule:
        expiration["Days"] = int(rule["ExpirationInDays"])
    if "ExpirationDate" in rule:
        expiration["Date"] = rule["ExpirationDate"]
    if "ExpiredObjectDeleteMarker" in rule:
        expiration["ExpiredObjectDeleteMarker"] = bool(rule["ExpiredObjectDeleteMarker"])
    if expiration:
        out["Expiration"] = expiration
    noncurrent = dict(rule.get("NoncurrentVersionExpiration", {}))
    if "NoncurrentVersionExpirationInDays" in rule:
        noncurrent["NoncurrentDays"] = int(rule["NoncurrentVersionExpirationInDays"])
    if noncurrent:
        out["NoncurrentVersionExpiration"] = {k: int(v) for k, v in noncurrent.items()}
    if "AbortIncompleteMultipartUpload" in rule:
        days = int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": days}
    if "Transitions" in rule:
        out["Transitions"] = [
            {"Days": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
        ]
    if "NoncurrentVersionTransitions" in rule:
        out["NoncurrentVersionTransitions"] = [
            {"NoncurrentDays": int(t["TransitionInDays"]), "StorageClass": t["StorageClass"]}
            for t in rule["NoncurrentVersionTransitions"]
        ]
    return out


def encryption_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """One CloudFormation encryption rule in the S3 API's shape (ServerSideEncryptionByDefault is renamed)."""
    unknown = set(rule) - {"ServerSideEncryptionByDefault", "BucketKeyEnabled"}
    if unknown:
        raise UnappliedProperty(f"bucket encryption rule: properties {sorted(unknown)} are not applied")
    out: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
    if "BucketKeyEnabled" in rule:
        out["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
    return out


# Bucket properties that S3's API takes as they stand, under the same name, and the call that puts each (in this
# order: versioning before the Object Lock configuration that needs it).
_BUCKET_SETTINGS = {
    "VersioningConfiguration": "put_bucket_versioning",
    "ObjectLockConfiguration": "put_object_lock_configuration",
    "PublicAccessBlockConfiguration": "put_public_access_block",
    "OwnershipControls": "put_bucket_ownership_controls",
}


def _s3_bucket(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("BucketName") or ctx.bucket_names.get(logical) or f"vaultline-{logical.lower()[:40]}"
    s3 = client("s3")
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=bool(p.take("ObjectLockEnabled")))
    for prop, put in _BUCKET_SETTINGS.items():
        if p.has(prop):
            getattr(s3, put)(Bucket=name, **{prop: p.take(prop)})
    if p.has("BucketEncryption"):
        rules = [encryption_rule(r) for r in p.take("BucketEncryption")["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if p.has("LifecycleConfiguration"):
        rules = [lifecycle_rule(r) for r in p.take("LifecycleConfiguration")["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    if p.has("LoggingConfiguration"):
        config = p.take("LoggingConfiguration")
        enabled = {"TargetBucket": config["DestinationBucketName"], "TargetPrefix": config.get("LogFilePrefix", "")}
        # moto's PutBucketLogging refuses a target whose policy does not yet admit logging.s3.amazonaws.com (AWS
        # does not check), and that policy names this bucket: applied once every resource exists.
        ctx.deferred.append(lambda: s3.put_bucket_logging(Bucket=name, BucketLoggingStatus={"LoggingEnabled": enabled}))
    if p.has("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tag_list(p.take("Tags"))})
    arn = f"arn:aws:s3:::{name}"
    domain = f"{name}.s3.amazonaws.com"
    regional = f"{name}.s3.{REGION}.amazonaws.com"
    return Created(name, {"Arn": arn, "DomainName": domain, "RegionalDomainName": regional})


def _s3_bucket_policy(logical: str, p: _Props, ctx: _Context) -> Created:
    bucket = p.take("Bucket")
    client("s3").put_bucket_policy(Bucket=bucket, Policy=_json(p.take("PolicyDocument")))
    return Created(bucket)


# --- SNS and SQS --------------------------------------------------------------------------------------------


def _subscribe(topic_arn: str, protocol: str, endpoint: str, attributes: dict[str, str]) -> str:
    response = client("sns").subscribe(
        TopicArn=topic_arn, Protocol=protocol, Endpoint=endpoint, Attributes=attributes, ReturnSubscriptionArn=True
    )
    arn: str = response["SubscriptionArn"]
    return arn


def _sns_topic(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("TopicName") or logical
    attributes = {
        attr: str(p.take(prop)).lower() if isinstance(p.values.get(prop), bool) else str(p.take(prop))
        for prop, attr in (
            ("DisplayName", "DisplayName"),
            ("KmsMasterKeyId", "KmsMasterKeyId"),
            ("FifoTopic", "FifoTopic"),
            ("ContentBasedDeduplication", "ContentBasedDeduplication"),
        )
        if p.has(prop)
    }
    args: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if p.has("Tags"):
        args["Tags"] = _tag_list(p.take("Tags"))
    arn: str = client("sns").create_topic(**args)["TopicArn"]
    for subscription in p.take("Subscription") or []:
        _subscribe(arn, subscription["Protocol"], subscription["Endpoint"], {})
    return Created(arn, {"TopicArn": arn, "TopicName": name})


def _sns_topic_policy(logical: str, p: _Props, ctx: _Context) -> Created:
    policy = _json(p.take("PolicyDocument"))
    for topic in p.take("Topics"):
        client("sns").set_topic_attributes(TopicArn=topic, AttributeName="Policy", AttributeValue=policy)
    return Created(f"{STACK_NAME}-{logical}")


def _sns_subscription(logical: str, p: _Props, ctx: _Context) -> Created:
    attributes: dict[str, str] = {}
    for prop in ("FilterPolicy", "RedrivePolicy"):
        if p.has(prop):
            attributes[prop] = _json(p.take(prop))
    for prop in ("FilterPolicyScope", "RawMessageDelivery"):
        if p.has(prop):
            value = p.take(prop)
            attributes[prop] = str(value).lower() if isinstance(value, bool) else str(value)
    arn = _subscribe(p.take("TopicArn"), p.take("Protocol"), p.take("Endpoint"), attributes)
    return Created(arn, {"Arn": arn})


_QUEUE_ATTRIBUTES = (
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "MessageRetentionPeriod",
    "VisibilityTimeout",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
)


def _sqs_queue(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("QueueName") or logical
    attributes: dict[str, str] = {}
    for prop in _QUEUE_ATTRIBUTES:
        if p.has(prop):
            value = p.take(prop)
            attributes[prop] = str(value).lower() if isinstance(value, bool) else str(value)
    if p.has("RedrivePolicy"):
        attributes["RedrivePolicy"] = _json(p.take("RedrivePolicy"))
    args: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if p.has("Tags"):
        args["tags"] = _tag_dict(p.take("Tags"))
    url: str = client("sqs").create_queue(**args)["QueueUrl"]
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    return Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})


def _sqs_queue_policy(logical: str, p: _Props, ctx: _Context) -> Created:
    policy = _json(p.take("PolicyDocument"))
    for url in p.take("Queues"):
        client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": policy})
    return Created(f"{STACK_NAME}-{logical}")


# --- IAM (policies: iam_deploy) -----------------------------------------------------------------------------


def _iam_role(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("RoleName") or logical[:64]
    args: dict[str, Any] = {"RoleName": name, "AssumeRolePolicyDocument": _json(p.take("AssumeRolePolicyDocument"))}
    for prop in ("Description", "Path", "MaxSessionDuration"):
        if p.has(prop):
            args[prop] = p.take(prop)
    if p.has("Tags"):
        args["Tags"] = _tag_list(p.take("Tags"))
    role = client("iam").create_role(**args)["Role"]
    return Created(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})


# --- Logs, Lambda -------------------------------------------------------------------------------------------


def _log_group(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("LogGroupName") or _physical_name(logical, 512)
    logs = client("logs")
    args: dict[str, Any] = {"logGroupName": name}
    if p.has("KmsKeyId"):
        args["kmsKeyId"] = p.take("KmsKeyId")
    if p.has("LogGroupClass"):
        args["logGroupClass"] = p.take("LogGroupClass")
    if p.has("Tags"):
        args["tags"] = _tag_dict(p.take("Tags"))
    logs.create_log_group(**args)
    if p.has("RetentionInDays"):
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(p.take("RetentionInDays")))
    return Created(name, {"Arn": f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"})


def _layer_version(logical: str, p: _Props, ctx: _Context) -> Created:
    args: dict[str, Any] = {"LayerName": p.take("LayerName") or logical, "Content": {"ZipFile": _placeholder_zip()}}
    for prop in ("Description", "CompatibleRuntimes", "CompatibleArchitectures", "LicenseInfo"):
        if p.has(prop):
            args[prop] = p.take(prop)
    arn: str = client("lambda").publish_layer_version(**args)["LayerVersionArn"]
    return Created(arn, {"LayerVersionArn": arn})


def _lambda_function(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("FunctionName") or logical[:64]
    args: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": p.take("Runtime"),
        "Role": p.take("Role"),
        "Handler": p.take("Handler"),
        "Code": {"ZipFile": _placeholder_zip()},
        "Timeout": int(p.take("Timeout", 3)),
        "MemorySize": int(p.take("MemorySize", 128)),
    }
    for prop in (
        "Architectures",
        "Description",
        "Layers",
        "TracingConfig",
        "EphemeralStorage",
        "DeadLetterConfig",
        "KmsKeyArn",
        "Environment",
    ):
        if p.has(prop):
            args[prop] = p.take(prop)
    if "Environment" in args:
        args["Environment"] = {"Variables": {k: str(v) for k, v in args["Environment"].get("Variables", {}).items()}}
    if p.has("Tags"):
        args["Tags"] = _tag_dict(p.take("Tags"))
    lam = client("lambda")
    arn: str = lam.create_function(**args)["FunctionArn"]
    if p.has("ReservedConcurrentExecutions"):
        reserved = int(p.take("ReservedConcurrentExecutions"))
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=reserved)
    return Created(name, {"Arn": arn})


# --- Step Functions, Scheduler, EventBridge, CloudWatch ------------------------------------------------------


def state_machine_logging(config: dict[str, Any]) -> dict[str, Any]:
    """CloudFormation's LoggingConfiguration in the Step Functions API's (camel-case) shape."""
    out: dict[str, Any] = {"level": config.get("Level", "OFF")}
    if "IncludeExecutionData" in config:
        out["includeExecutionData"] = bool(config["IncludeExecutionData"])
    destinations = config.get("Destinations", [])
    out["destinations"] = [
        {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}} for d in destinations
    ]
    return out


def _state_machine(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("StateMachineName") or logical
    definition = p.take("DefinitionString") or json.dumps(p.take("Definition"))
    p.take("Definition")
    for key, value in (p.take("DefinitionSubstitutions") or {}).items():
        definition = definition.replace("${" + key + "}", str(value))
    args: dict[str, Any] = {
        "name": name,
        "definition": definition,
        "roleArn": p.take("RoleArn"),
        "type": p.take("StateMachineType", "STANDARD"),
    }
    if p.has("LoggingConfiguration"):
        args["loggingConfiguration"] = state_machine_logging(p.take("LoggingConfiguration"))
    if p.has("TracingConfiguration"):
        args["tracingConfiguration"] = {"enabled": bool(p.take("TracingConfiguration").get("Enabled"))}
    if p.has("Tags"):
        args["tags"] = [{"key": t["Key"], "value": t["Value"]} for t in p.take("Tags")]
    arn: str = client("stepfunctions").create_state_machine(**args)["stateMachineArn"]
    return Created(arn, {"Arn": arn, "Name": name})


def _schedule_group(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("Name") or _physical_name(logical)
    arn: str = client("scheduler").create_schedule_group(Name=name, Tags=_tag_list(p.take("Tags")))["ScheduleGroupArn"]
    return Created(name, {"Arn": arn})


def _schedule(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("Name") or _physical_name(logical)
    args: dict[str, Any] = {
        "Name": name,
        "ScheduleExpression": p.take("ScheduleExpression"),
        "FlexibleTimeWindow": p.take("FlexibleTimeWindow"),
        "Target": p.take("Target"),
    }
    for prop in ("GroupName", "Description", "ScheduleExpressionTimezone", "StartDate", "EndDate", "State"):
        if p.has(prop):
            args[prop] = p.take(prop)
    if p.has("KmsKeyArn"):
        args["KmsKeyArn"] = p.take("KmsKeyArn")
    arn: str = client("scheduler").create_schedule(**args)["ScheduleArn"]
    ctx.stack.schedules.append(name)
    return Created(name, {"Arn": arn})


def _events_rule(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("Name") or logical[:64]
    args: dict[str, Any] = {"Name": name, "State": p.take("State", "ENABLED")}
    if p.has("EventPattern"):
        args["EventPattern"] = _json(p.take("EventPattern"))
    for prop in ("ScheduleExpression", "Description", "EventBusName", "RoleArn"):
        if p.has(prop):
            args[prop] = p.take(prop)
    events = client("events")
    arn: str = events.put_rule(**args)["RuleArn"]
    targets = p.take("Targets")
    if targets:
        target_args: dict[str, Any] = {"Rule": name, "Targets": targets}
        if "EventBusName" in args:
            target_args["EventBusName"] = args["EventBusName"]
        events.put_targets(**target_args)
    return Created(name, {"Arn": arn})


_ALARM_ARGS = (
    "AlarmDescription",
    "ActionsEnabled",
    "AlarmActions",
    "OKActions",
    "InsufficientDataActions",
    "ComparisonOperator",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ThresholdMetricId",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "MetricName",
    "Namespace",
    "Dimensions",
    "Period",
    "Statistic",
    "ExtendedStatistic",
    "Unit",
    "Metrics",
)


def _alarm(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("AlarmName") or _physical_name(logical, 255)
    args: dict[str, Any] = {"AlarmName": name}
    for prop in _ALARM_ARGS:
        if p.has(prop):
            args[prop] = p.take(prop)
    for numeric in ("EvaluationPeriods", "DatapointsToAlarm", "Period"):
        if numeric in args:
            args[numeric] = int(args[numeric])
    if "Threshold" in args:
        args["Threshold"] = float(args["Threshold"])
    if p.has("Tags"):
        args["Tags"] = _tag_list(p.take("Tags"))
    client("cloudwatch").put_metric_alarm(**args)
    return Created(name, {"Arn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"})


def _dashboard(logical: str, p: _Props, ctx: _Context) -> Created:
    name = p.take("DashboardName") or _physical_name(logical, 255)
    client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=_json(p.take("DashboardBody")))
    return Created(name)


# One creator per resource type. vaultline_dev/embedded/iam_deploy.py registers AWS::IAM::Policy (and applies a role's
# managed and inline policies) here: the table marks those properties "applied by iam_deploy".
_CREATORS: dict[str, Creator] = {
    "AWS::KMS::Key": _kms_key,
    "AWS::KMS::Alias": _kms_alias,
    "AWS::S3::Bucket": _s3_bucket,
    "AWS::S3::BucketPolicy": _s3_bucket_policy,
    "AWS::SNS::Topic": _sns_topic,
    "AWS::SNS::TopicPolicy": _sns_topic_policy,
    "AWS::SNS::Subscription": _sns_subscription,
    "AWS::SQS::Queue": _sqs_queue,
    "AWS::SQS::QueuePolicy": _sqs_queue_policy,
    "AWS::IAM::Role": _iam_role,
    "AWS::Logs::LogGroup": _log_group,
    "AWS::Lambda::LayerVersion": _layer_version,
    "AWS::Lambda::Function": _lambda_function,
    "AWS::StepFunctions::StateMachine": _state_machine,
    "AWS::Scheduler::ScheduleGroup": _schedule_group,
    "AWS::Scheduler::Schedule": _schedule,
    "AWS::Events::Rule": _events_rule,
    "AWS::CloudWatch::Alarm": _alarm,
    "AWS::CloudWatch::Dashboard": _dashboard,
}


def _create(kind: str, logical: str, props: _Props, ctx: _Context) -> Created:
    creator = _CREATORS.get(kind)
    if creator is None:
        if kind == "AWS::IAM::ManagedPolicy":
            # Its Ref is its ARN (a role's PermissionsBoundary and ManagedPolicyArns name it so); iam_deploy.py
            # creates it under that name.
            name = props.values.get("ManagedPolicyName") or _physical_name(logical, 128)
            return Created(f"arn:aws:iam::{ACCOUNT}:policy{props.values.get('Path', '/')}{name}")
        if all(support.how is How.IAM_DEPLOY for support in PROPERTIES[kind].values()):
            # AWS::IAM::Policy and friends: vaultline_dev/embedded/iam_deploy.py registers their creator.
            return Created(_physical_name(logical))
        raise UnappliedProperty(f"{logical}: no creator for resource type {kind}")
    created = creator(logical, props, ctx)
    props.check_all_taken()
    return created


IDENTITY_POLICY_TYPES = ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::Role")
"""Resource types whose identity policies vaultline_dev/embedded/iam_deploy.py attaches (the table's IAM_DEPLOY)."""


def deploy_template(template: dict[str, Any], bucket_names: dict[str, str] | None = None) -> DeployedStack:
    """Create the template's resources in the embedded AWS as CloudFormation would; return ids and outputs.

    Raises :class:`UnappliedProperty` before creating anything if the template holds a resource type or property
    that :data:`PROPERTIES` does not cover.
    """
    check_template(template)
    stack = DeployedStack()
    resources: dict[str, dict[str, Any]] = template.get("Resources", {})
    stack.resources = resources
    resolve = Resolver(pseudo_parameters(ACCOUNT, REGION, STACK_NAME))
    ctx = _Context(bucket_names or {}, stack)
    for logical in creation_order(resources):
        kind = resources[logical]["Type"]
        try:
            values = resolve(resources[logical].get("Properties", {}))
        except TemplateError as exc:
            raise TemplateError(f"{logical}: {exc}") from None
        created = _create(kind, logical, _Props(kind, logical, values), ctx)
        resolve.refs[logical] = created.ref
        resolve.attributes[logical] = created.attributes
        stack.physical[logical] = created.ref
        stack.attributes[logical] = created.attributes
        stack.deployed_properties[logical] = values
        arn = created.attributes.get("Arn") or (created.ref if created.ref.startswith("arn:") else None)
        if arn:
            stack.arns[logical] = arn
    for call in ctx.deferred:
        call()
    # Identity policies last, as CloudFormation attaches them once the roles and what they name exist (the
    # resource policies of buckets, keys, topics and queues were set by their creators above).
    # Managed policies before the roles whose boundaries and ManagedPolicyArns name them.
    for kind in IDENTITY_POLICY_TYPES:
        for logical, resource in resources.items():
            if resource["Type"] == kind:
                apply_policies(kind, stack.deployed_properties[logical], stack.physical, logical)
    stack.outputs = {name: str(resolve(output["Value"])) for name, output in template.get("Outputs", {}).items()}
    return stack


def fire_schedule(name: str) -> str:
    """Do what EventBridge Scheduler does when schedule ``name`` comes due: start its target with its input.

    The start is made as the schedule's ``Target.RoleArn``, as the scheduler makes it.
    """
    schedule = client("scheduler").get_schedule(Name=name)
    target = schedule["Target"]
    schedule_arn = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{schedule.get('GroupName', 'default')}/{name}"
    role = assume_as_service(target["RoleArn"], "scheduler.amazonaws.com", f"scheduler-{name}", schedule_arn)
    response = (
        role.session(REGION)
        .client("stepfunctions")
        .start_execution(
            stateMachineArn=target["Arn"], input=target.get("Input", "{}"), name=f"{name}-{uuid.uuid4().hex}"
        )
    )
    execution_arn: str = response["executionArn"]
    return execution_arn


def register_stack(name: str, outputs: dict[str, str]) -> None:
    """Record the stack and its outputs in the embedded CloudFormation, so clients find it by name as in AWS.

    The resources themselves were created by :func:`deploy_template`; this stack holds only a marker resource.
    """
    template = {
        "Resources": {"DeployedByEmbeddedAws": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # moto warns that it does not model the marker resource; it need not
        client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))
