"""Deploy the template's policies into the embedded AWS, so that the IAM evaluator sees what AWS would.

CloudFormation attaches identity policies to roles (``AWS::IAM::Policy``, ``AWS::IAM::ManagedPolicy`` with its
``Roles``, as CDK writes a role's overflow past the 10,240-character inline limit, a role's inline ``Policies`` and
its ``ManagedPolicyArns``) and sets resource policies (``AWS::S3::BucketPolicy``, a key's ``KeyPolicy``,
``AWS::SNS::TopicPolicy``, ``AWS::SQS::QueuePolicy``), and a role's ``PermissionsBoundary``. ``deploy.py`` creates
the resources; it calls :func:`apply_policies` for every resource once all of them exist, with the properties
resolved, managed policies first (a boundary or ``ManagedPolicyArns`` names one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vaultline.aws import client

POLICY_TYPES = frozenset(
    {
        "AWS::IAM::Policy",
        "AWS::IAM::ManagedPolicy",
        "AWS::IAM::Role",
        "AWS::KMS::Key",
        "AWS::S3::BucketPolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SQS::QueuePolicy",
    }
)
"""The resource types :func:`apply_policies` acts on; the others carry no policy."""


def apply_policies(kind: str, props: Mapping[str, Any], physical: Mapping[str, str], logical: str) -> None:
    """Apply the policies of one resource (``props`` resolved; ``physical`` ids of the deployed resources)."""
    if kind == "AWS::IAM::Policy":
        iam = client("iam")
        document = json.dumps(props["PolicyDocument"])
        for role in props.get("Roles", []):
            iam.put_role_policy(RoleName=role, PolicyName=props["PolicyName"], PolicyDocument=document)
    elif kind == "AWS::IAM::ManagedPolicy":
        iam = client("iam")
        created = iam.create_policy(
            # The deploy names it (its Ref, the ARN: deploy.py) when the template does not.
            PolicyName=props.get("ManagedPolicyName") or physical[logical].rsplit("/", 1)[1],
            Path=props.get("Path", "/"),
            PolicyDocument=json.dumps(props["PolicyDocument"]),
            Description=props.get("Description", ""),
        )
        for role in props.get("Roles", []):
            iam.attach_role_policy(RoleName=role, PolicyArn=created["Policy"]["Arn"])
    elif kind == "AWS::IAM::Role":
        iam = client("iam")
        role = physical[logical]
        for inline in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=role, PolicyName=inline["PolicyName"], PolicyDocument=json.dumps(inline["PolicyDocument"])
            )
        for arn in props.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)
        if props.get("PermissionsBoundary"):
            # The evaluator reads it from the role of each session (iam.py): the role's permissions are then its
            # policies' allows that the boundary allows too.
            iam.put_role_permissions_boundary(RoleName=role, PermissionsBoundary=props["PermissionsBoundary"])
    elif kind == "AWS::KMS::Key" and props.get("KeyPolicy"):
        client("kms").put_key_policy(
            KeyId=physical[logical], PolicyName="default", Policy=json.dumps(props["KeyPolicy"])
        )
    elif kind == "AWS::S3::BucketPolicy":
        client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(props["PolicyDocument"]))
    elif kind == "AWS::SNS::TopicPolicy":
        for topic in props["Topics"]:
            client("sns").set_topic_attributes(
                TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
            )
    elif kind == "AWS::SQS::QueuePolicy":
        for queue in props["Queues"]:
            client("sqs").set_queue_attributes(
                QueueUrl=queue, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
            )
