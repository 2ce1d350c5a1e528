"""Which IAM action, on which resource, with which context keys: one HTTP request of the embedded AWS.

moto names each request's operation, and for S3 and SQS also its resource; for most services it authorizes against
resource ``*``, which would let a grant on any table, key or function pass for every other one. This module is
the one table that turns a request into what AWS authorizes (docs/embedded-aws.md, "IAM", lists it):

- s3: the action from method, sub-resource and headers (:func:`s3_checks`: HeadBucket is ``ListBucket``,
  ``?retention`` is ``PutObjectRetention``, a copy also needs ``GetObject`` on its source, DeleteObjects is
  ``DeleteObject`` per key, ``x-amz-bypass-governance-retention: true`` also needs ``BypassGovernanceRetention``)
  on the bucket or object ARN (``arn:aws:s3:::B/K``); PutObjectRetention's ``s3:object-lock-mode``,
  ``s3:object-lock-retain-until-date`` and ``s3:object-lock-remaining-retention-days`` come from its body;
- dynamodb: ``table/T`` (``table/T/index/I`` with ``IndexName``), ``TableArn`` or ``ExportArn``; each table of a
  batch or transaction separately;
- kms: the key's ARN, whatever the request names it by (id, ARN, alias), for Decrypt the ciphertext's key;
- lambda: ``Invoke`` is ``lambda:InvokeFunction``, on ``function:NAME`` (``:QUALIFIER``);
- states: ``stateMachineArn``, ``executionArn`` or ``mapRunArn``;
- sns ``TopicArn``; sqs the queue ARN (moto's); events ``event-bus/NAME`` per PutEvents entry, ``rule/NAME``;
  scheduler ``schedule/GROUP/NAME``, ``schedule-group/NAME``;
- any other service (sts, iam, cloudformation, ...): the operation on moto's resource (``*`` unless it knows).

Context keys: every request carries ``aws:SecureTransport`` = true (the endpoint is plain HTTP on loopback, standing
in for AWS's TLS endpoints, so that the stack's deny-non-TLS policies decide as on AWS), the principal's
``aws:PrincipalArn``/``aws:PrincipalAccount``, ``aws:RequestedRegion`` and ``aws:CurrentTime``; S3 listings add
``s3:prefix``/``s3:delimiter``/``s3:max-keys``, S3 writes their ``x-amz-*`` headers, KMS the encryption context,
PutEvents ``events:source``/``events:detail-type``.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree

# Credential-scope service names whose IAM prefix differs.
_IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses"}
_OPERATION_TO_ACTION = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeWithResponseStream"): "InvokeFunction",
}


@dataclass(frozen=True)
class Check:
    """One authorization AWS performs for a request: ``action`` on ``resource`` with ``context`` keys."""

    action: str
    resource: str
    context: dict[str, str | list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    """What the table reads of one HTTP request (built from moto's response object by ``iam.py``)."""

    service: str
    """The credential scope's service name (``s3``, ``dynamodb``, ``states``, ...)."""
    operation: str
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    params: Mapping[str, Any]
    """The request's parameters: the JSON body, or the query/form values (first of each)."""
    body: bytes
    region: str
    account: str
    moto_resource: str = "*"
    bucket: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class KmsLookup:
    """How KMS references resolve to key ARNs (the embedded AWS answers from moto's KMS backend)."""

    key_arn: Callable[[str], str]
    """A key id, key ARN, alias name or alias ARN -> the key's ARN."""
    key_of_ciphertext: Callable[[bytes], str]
    """A ciphertext blob -> the ARN of the key that made it."""


def iam_prefix(service: str) -> str:
    """The IAM action prefix of a credential-scope service name (``monitoring`` -> ``cloudwatch``)."""
    return _IAM_PREFIX.get(service, service)


def checks_for(call: Call, kms: KmsLookup) -> list[Check]:
    """Every authorization ``call`` needs, without the global context keys (``iam.py`` adds those)."""
    if call.service == "s3":
        return s3_checks(call)
    prefix = iam_prefix(call.service)
    action = f"{prefix}:{_OPERATION_TO_ACTION.get((prefix, call.operation), call.operation)}"
    mapper = _MAPPERS.get(prefix)
    if mapper is None:
        return [Check(action, call.moto_resource)]
    return mapper(call, action, kms)


# --- S3 -----------------------------------------------------------------------------------------------------------

# Sub-resources (query parameters) by method for bucket requests; the first present wins, else the default.
_S3_BUCKET: dict[str, tuple[dict[str, str], str]] = {
    "HEAD": ({}, "ListBucket"),
    "GET": (
        {
            "uploads": "ListBucketMultipartUploads",
            "versions": "ListBucketVersions",
            "location": "GetBucketLocation",
            "lifecycle": "GetLifecycleConfiguration",
            "versioning": "GetBucketVersioning",
            "policy": "GetBucketPolicy",
            "policyStatus": "GetBucketPolicyStatus",
            "acl": "GetBucketAcl",
            "tagging": "GetBucketTagging",
            "logging": "GetBucketLogging",
            "cors": "GetBucketCORS",
            "notification": "GetBucketNotification",
            "object-lock": "GetBucketObjectLockConfiguration",
            "encryption": "GetEncryptionConfiguration",
            "ownershipControls": "GetBucketOwnershipControls",
            "publicAccessBlock": "GetBucketPublicAccessBlock",
            "website": "GetBucketWebsite",
            "accelerate": "GetAccelerateConfiguration",
            "replication": "GetReplicationConfiguration",
        },
        "ListBucket",
    ),
    "PUT": (
        {
            "lifecycle": "PutLifecycleConfiguration",
            "versioning": "PutBucketVersioning",
            "policy": "PutBucketPolicy",
            "acl": "PutBucketAcl",
            "tagging": "PutBucketTagging",
            "logging": "PutBucketLogging",
            "cors": "PutBucketCORS",
            "notification": "PutBucketNotification",
            "object-lock": "PutBucketObjectLockConfiguration",
            "encryption": "PutEncryptionConfiguration",
            "ownershipControls": "PutBucketOwnershipControls",
            "publicAccessBlock": "PutBucketPublicAccessBlock",
            "website": "PutBucketWebsite",
            "accelerate": "PutAccelerateConfiguration",
            "replication": "PutReplicationConfiguration",
        },
        "CreateBucket",
    ),
    "DELETE": (
        {
            "policy": "DeleteBucketPolicy",
            "lifecycle": "PutLifecycleConfiguration",
            "tagging": "PutBucketTagging",
            "cors": "PutBucketCORS",
            "encryption": "PutEncryptionConfiguration",
            "ownershipControls": "PutBucketOwnershipControls",
            "publicAccessBlock": "PutBucketPublicAccessBlock",
            "website": "DeleteBucketWebsite",
            "replication": "PutReplicationConfiguration",
        },
        "DeleteBucket",
    ),
}

# Object requests: (sub-resource, action, action when a versionId is given).
_S3_OBJECT: dict[str, list[tuple[str, str, str]]] = {
    "GET": [
        ("uploadId", "ListMultipartUploadParts", "ListMultipartUploadParts"),
        ("tagging", "GetObjectTagging", "GetObjectVersionTagging"),
        ("acl", "GetObjectAcl", "GetObjectVersionAcl"),
        ("retention", "GetObjectRetention", "GetObjectRetention"),
        ("legal-hold", "GetObjectLegalHold", "GetObjectLegalHold"),
        ("attributes", "GetObjectAttributes", "GetObjectVersionAttributes"),
        ("", "GetObject", "GetObjectVersion"),
    ],
    "PUT": [
        ("tagging", "PutObjectTagging", "PutObjectVersionTagging"),
        ("acl", "PutObjectAcl", "PutObjectVersionAcl"),
        ("retention", "PutObjectRetention", "PutObjectRetention"),
        ("legal-hold", "PutObjectLegalHold", "PutObjectLegalHold"),
        ("", "PutObject", "PutObject"),
    ],
    "DELETE": [
        ("uploadId", "AbortMultipartUpload", "AbortMultipartUpload"),
        ("tagging", "DeleteObjectTagging", "DeleteObjectVersionTagging"),
        ("", "DeleteObject", "DeleteObjectVersion"),
    ],
    "POST": [
        ("restore", "RestoreObject", "RestoreObject"),
        ("select", "GetObject", "GetObject"),
        ("", "PutObject", "PutObject"),  # CreateMultipartUpload (?uploads) and CompleteMultipartUpload (?uploadId)
    ],
}
_S3_OBJECT["HEAD"] = [("", "GetObject", "GetObjectVersion")]

# Request headers that are S3 condition keys of the writes (s3:<header>).
_S3_WRITE_HEADERS = (
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-object-lock-mode",
    "x-amz-object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold",
    "x-amz-storage-class",
    "x-amz-acl",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    # Conditional writes: bucket and identity policies may require them (s3:if-none-match, s3:if-match).
    "if-none-match",
    "if-match",
)


def _header(call: Call, name: str) -> str | None:
    for key, value in call.headers.items():
        if key.lower() == name:
            return value
    return None


def s3_checks(call: Call) -> list[Check]:
    """The checks of one S3 request (see the module's table)."""
    if not call.bucket:
        return [Check("s3:ListAllMyBuckets", "*")]
    bucket_arn = f"arn:aws:s3:::{call.bucket}"
    if not call.key:
        if call.method == "POST":
            if "delete" in call.query:
                return _delete_objects_checks(call, bucket_arn)
            return [Check("s3:PutObject", f"{bucket_arn}/*")]  # a browser form upload names its key in the form
        subresources, default = _S3_BUCKET.get(call.method, ({}, "ListBucket"))
        action = next((a for sub, a in subresources.items() if sub in call.query), default)
        context: dict[str, str | list[str]] = {}
        if action in ("ListBucket", "ListBucketVersions"):
            for name in ("prefix", "delimiter", "max-keys"):
                if name in call.query:
                    context[f"s3:{name}"] = call.query[name][0]
        return [Check(f"s3:{action}", bucket_arn, context)]

    object_arn = f"{bucket_arn}/{call.key}"
    version = call.query.get("versionId", [None])[0]
    action = next(
        (v if version else a for sub, a, v in _S3_OBJECT.get(call.method, []) if not sub or sub in call.query),
        "GetObject",
    )
    context = {}
    if version:
        context["s3:versionid"] = version
    checks = []
    if call.method in ("PUT", "POST"):
        for name in _S3_WRITE_HEADERS:
            value = _header(call, name)
            if value is not None:
                # The object-lock keys drop the x-amz- of their headers (s3:object-lock-mode); the others keep it.
                context["s3:" + (name.removeprefix("x-amz-") if "object-lock" in name else name)] = value
        source = _header(call, "x-amz-copy-source")
        if source is not None:
            checks.append(_copy_source_check(source))
        if action == "PutObjectRetention":
            context |= _retention_context(call.body)
    if action in _BYPASSING and (_header(call, "x-amz-bypass-governance-retention") or "").lower() == "true":
        # Weakening a GOVERNANCE retention (or deleting the version it protects) needs this grant too.
        checks.append(Check("s3:BypassGovernanceRetention", object_arn, context))
    return [Check(f"s3:{action}", object_arn, context), *checks]


# The requests whose x-amz-bypass-governance-retention header IAM authorizes as s3:BypassGovernanceRetention.
_BYPASSING = ("PutObjectRetention", "DeleteObject", "DeleteObjectVersion")


def _retention_context(body: bytes) -> dict[str, str | list[str]]:
    """PutObjectRetention's condition keys, which come from its XML body (Mode, RetainUntilDate)."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return {}
    fields = {element.tag.rsplit("}", 1)[-1]: (element.text or "").strip() for element in root.iter()}
    context: dict[str, str | list[str]] = {}
    if fields.get("Mode"):
        context["s3:object-lock-mode"] = fields["Mode"]
    until = fields.get("RetainUntilDate")
    if until:
        context["s3:object-lock-retain-until-date"] = until
        try:
            moment = datetime.fromisoformat(until.replace("Z", "+00:00"))
        except ValueError:
            return context
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        days = max(0, math.ceil((moment - datetime.now(UTC)).total_seconds() / 86400))
        context["s3:object-lock-remaining-retention-days"] = str(days)
    return context


def _copy_source_check(source: str) -> Check:
    # CopyObject and UploadPartCopy read their source: s3:GetObject (or ...Version) on it.
    path, _, query = unquote(source).lstrip("/").partition("?versionId=")
    return Check("s3:GetObjectVersion" if query else "s3:GetObject", f"arn:aws:s3:::{path}")


def _delete_objects_checks(call: Call, bucket_arn: str) -> list[Check]:
    # DeleteObjects is authorized object by object (s3:DeleteObject / s3:DeleteObjectVersion per key).
    checks = []
    try:
        root = ElementTree.fromstring(call.body)
    except ElementTree.ParseError:
        return [Check("s3:DeleteObject", f"{bucket_arn}/*")]
    for element in root.iter():
        if element.tag.rsplit("}", 1)[-1] != "Object":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: child.text or "" for child in element}
        action = "s3:DeleteObjectVersion" if fields.get("VersionId") else "s3:DeleteObject"
        context: dict[str, str | list[str]] = {"s3:versionid": fields["VersionId"]} if fields.get("VersionId") else {}
        checks.append(Check(action, f"{bucket_arn}/{fields.get('Key', '')}", context))
        if (_header(call, "x-amz-bypass-governance-retention") or "").lower() == "true":
            checks.append(Check("s3:BypassGovernanceRetention", f"{bucket_arn}/{fields.get('Key', '')}", context))
    return checks


# --- the other services --------------------------------------------------------------------------------------------


def _dynamodb(call: Call, action: str, kms: KmsLookup) -> list[Check]:
    base = f"arn:aws:dynamodb:{call.region}:{call.account}:table"
    params = call.params
    if "RequestItems" in params:
        return [Check(action, f"{base}/{table}") for table in params["RequestItems"]]
    if "TransactItems" in params:
        checks = []
        for item in params["TransactItems"]:
            ((operation, body),) = item.items()
            single = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "Get": "GetItem"}
            checks.append(Check(f"dynamodb:{single.get(operation, operation)}", f"{base}/{body['TableName']}"))
        return checks
    if "TableName" in params:
        resource = f"{base}/{params['TableName']}"
        if params.get("IndexName") and action in ("dynamodb:Query", "dynamodb:Scan"):
            resource += f"/index/{params['IndexName']}"
        return [Check(action, resource)]
    for name in ("TableArn", "ExportArn", "ResourceArn", "BackupArn"):
        if name in params:
            return [Check(action, str(params[name]))]
    return [Check(action, "*")]


def _kms(call: Call, action: str, kms: KmsLookup) -> list[Check]:
    params = call.params
    context: dict[str, str | list[str]] = {"kms:CallerAccount": call.account}
    encryption_context = params.get("EncryptionContext") or {}
    for key, value in encryption_context.items():
        context[f"kms:EncryptionContext:{key}"] = str(value)
    if encryption_context:
        context["kms:EncryptionContextKeys"] = sorted(encryption_context)
    if "KeyId" in params:
        return [Check(action, kms.key_arn(str(params["KeyId"])), context)]
    if "CiphertextBlob" in params:  # Decrypt and ReEncrypt may leave the key to the ciphertext
        source = kms.key_of_ciphertext(base64.b64decode(params["CiphertextBlob"]))
        if action == "kms:ReEncrypt":
            destination = kms.key_arn(str(params.get("DestinationKeyId", "")))
            return [Check("kms:ReEncryptFrom", source, context), Check("kms:ReEncryptTo", destination, context)]
        return [Check(action, source, context)]
    if "AliasName" in params and "TargetKeyId" in params:  # CreateAlias/UpdateAlias: on the alias and the key
        alias = f"arn:aws:kms:{call.region}:{call.account}:{params['AliasName']}"
        return [Check(action, alias), Check(action, kms.key_arn(str(params["TargetKeyId"])))]
    return [Check(action, "*", context)]


_LAMBDA_PATH = re.compile(r"/functions/([^/]+)")


def _lambda_function_arn(reference: str, region: str, account: str, qualifier: str | None) -> str:
    # FunctionName may be a name, an ARN or a partial ARN ("123456789012:function:name"), each with a qualifier.
    name = reference.split(":function:", 1)[1] if ":function:" in reference else reference
    arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier and ":" not in name else arn


def _lambda(call: Call, action: str, kms: KmsLookup) -> list[Check]:
    match = _LAMBDA_PATH.search(call.path)
    reference = unquote(match.group(1)) if match else call.params.get("FunctionName")
    if not reference:
        return [Check(action, "*")]
    qualifier = call.query.get("Qualifier", [None])[0]
    return [Check(action, _lambda_function_arn(str(reference), call.region, call.account, qualifier))]


def _states(call: Call, action: str, kms: KmsLookup) -> list[Check]:
    params = call.params
    for name in ("executionArn", "mapRunArn", "stateMachineArn", "activityArn", "resourceArn"):
        if params.get(name):
            return [Check(action, str(params[name]))]
    if action == "states:CreateStateMachine" and params.get("name"):
        return [Check(action, f"arn:aws:states:{call.region}:{call.account}:stateMachine:{params['name']}")]
    return [Check(action, "*")]


def _sns(call: Call, action: str, kms: KmsLookup) -> list[Check]:
    params = call.params
    arn = params.get("TopicArn") or params.get("TargetArn")
    if not arn and action == "sns:CreateTopic" and params.get("Name"):
        arn = f"arn:aws:sns:{call.region}:{call.account}:{params['Name']}"
    return [Check(action, str(arn or "*"))]


def _sqs(call: Call, action: str, kms: KmsLookup) -> list[Check]:
    if call.moto_resource == "*" and call.params.get("QueueName"):
        return [Check(action, f"arn:aws:sqs:{call.region}:{call.account}:{call.params['QueueName']}")]
    return [Check(action, call.moto_resource)]


def _events(call: Call, action: str, kms: KmsLookup) -> list[Check]:
    params = call.params
    base = f"arn:aws:events:{call.region}:{call.account}"
    if action == "events:PutEvents":
        checks: list[Check] = []
        for entry in params.get("Entries", []):
            bus = str(entry.get("EventBusName") or "default")
            arn = bus if bus.startswith("arn:") else f"{base}:event-bus/{bus}"
            context: dict[str, str | list[str]] = {
                "events:source": str(entry.get("Source", "")),
                "events:detail-type": str(entry.get("DetailType", "")),
            }
            checks.append(Check(action, arn, context))
        return checks or [Check(action, f"{base}:event-bus/default")]
    rule = str(params.get("Rule") or params.get("Name") or "")
    if rule and action != "events:ListRules":
        rule_bus = str(params.get("EventBusName") or "default")
        path = f"rule/{rule}" if rule_bus == "default" else f"rule/{rule_bus}/{rule}"
        return [Check(action, f"{base}:{path}")]
    return [Check(action, "*")]


_SCHEDULER_PATH = re.compile(r"/(schedules|schedule-groups)/([^/?]+)")


def _scheduler(call: Call, action: str, kms: KmsLookup) -> list[Check]:
    match = _SCHEDULER_PATH.search(call.path)
    if not match:
        return [Check(action, "*")]
    base = f"arn:aws:scheduler:{call.region}:{call.account}"
    kind, name = match.group(1), unquote(match.group(2))
    if kind == "schedule-groups":
        return [Check(action, f"{base}:schedule-group/{name}")]
    group = call.query.get("groupName", [None])[0] or call.params.get("GroupName") or "default"
    return [Check(action, f"{base}:schedule/{group}/{name}")]


_MAPPERS: dict[str, Callable[[Call, str, KmsLookup], list[Check]]] = {
    "dynamodb": _dynamodb,
    "kms": _kms,
    "lambda": _lambda,
    "states": _states,
    "sns": _sns,
    "sqs": _sqs,
    "events": _events,
    "scheduler": _scheduler,
}


def parse_params(body: bytes, query: Mapping[str, list[str]]) -> dict[str, Any]:
    """A request's parameters: its JSON body if it has one, else the first value of each query/form field."""
    text = body.strip()
    if text.startswith(b"{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            return parsed
    return {key: values[0] for key, values in query.items() if values}
