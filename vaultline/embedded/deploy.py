"""Deploy a synthesized CloudFormation template into the embedded AWS with the service APIs.

moto's CloudFormation cannot deploy our stack (no AWS::S3::BucketPolicy, state machines missing from listings),
so each resource type we use is created by its own API, and intrinsic functions are resolved here. The state
machine definitions deployed are the synthesized ones, resolved, not copies.

The one adaptation (see docs/state-machines.md): none. moto runs STANDARD child workflows in a Distributed Map,
and our definitions already use STANDARD.
"""

from __future__ import annotations

import io
import json
import re
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3

from vaultline.aws import client
from vaultline.embedded.iam import assume_as_service
from vaultline.embedded.iam_deploy import POLICY_TYPES, apply_policies

ACCOUNT = "123456789012"
REGION = "us-east-1"


def _dummy_zip() -> bytes:
    # moto wants a code archive; the real code is routed in-process by handler string.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README", "code is loaded from the functions/ directory by the embedded AWS")
    return buffer.getvalue()


@dataclass
class DeployedStack:
    """What a deploy created: physical ids and attributes by logical id, and the resolved outputs."""

    physical: dict[str, str] = field(default_factory=dict)
    arns: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    schedules: list[str] = field(default_factory=list)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Resolver:
    def __init__(self, stack: DeployedStack) -> None:
        self.stack = stack

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((name, arg),) = value.items()
                if name == "Ref":
                    return self.ref(arg)
                if name == "Fn::GetAtt":
                    logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                    return self.get_att(logical, attribute)
                if name == "Fn::Join":
                    separator, parts = arg
                    return separator.join(str(self(p)) for p in parts)
                if name == "Fn::Sub":
                    return self.sub(arg)
                if name == "Fn::Select":
                    index, items = arg
                    return self(items)[int(index)]
                if name == "Fn::Split":
                    separator, text = arg
                    return str(self(text)).split(separator)
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        return value

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "Vaultline",
            "AWS::NoValue": "",
        }
        if name in pseudo:
            return pseudo[name]
        return self.stack.physical.get(name, name.lower())

    def get_att(self, logical: str, attribute: str) -> str:
        if attribute == "Arn" or attribute.endswith("Arn"):
            return self.stack.arns.get(logical, f"arn:aws:unknown:{REGION}:{ACCOUNT}:{logical}")
        if attribute == "Name":
            return self.stack.physical.get(logical, logical)
        return self.stack.physical.get(logical, logical)

    def sub(self, arg: Any) -> str:
        template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self(arg[1]))
        out = template
        for match in re.findall(r"\$\{([^}]+)\}", template):
            if match in variables:
                value = variables[match]
            elif "." in match:
                logical, attribute = match.split(".", 1)
                value = self.get_att(logical, attribute)
            else:
                value = self.ref(match)
            out = out.replace("${" + match + "}", str(value))
        return out


def deploy_template(template: dict[str, Any], bucket_names: dict[str, str] | None = None) -> DeployedStack:
    """Create the template's resources in the embedded AWS; return their ids and the resolved outputs."""
    stack = DeployedStack()
    resolve = _Resolver(stack)
    resources: dict[str, dict[str, Any]] = template.get("Resources", {})
    stack.resources = resources
    # Order by dependency class: keys and buckets, then roles, then functions, then workflows and schedules.
    order = [
        "AWS::KMS::Key",
        "AWS::KMS::Alias",
        "AWS::S3::Bucket",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::IAM::Role",
        "AWS::Lambda::Function",
        "AWS::StepFunctions::StateMachine",
        "AWS::Scheduler::Schedule",
        "AWS::Events::Rule",
    ]
    for kind in order:
        for logical, resource in resources.items():
            if resource["Type"] == kind:
                _create(kind, logical, resolve(resource.get("Properties", {})), stack, bucket_names or {})
    for logical, resource in resources.items():  # policies last: they name roles, buckets, keys, topics, queues
        if resource["Type"] in POLICY_TYPES:
            apply_policies(resource["Type"], resolve(resource.get("Properties", {})), stack.physical, logical)
    stack.outputs = {name: str(resolve(output["Value"])) for name, output in template.get("Outputs", {}).items()}
    return stack


def _create(kind: str, logical: str, props: dict[str, Any], stack: DeployedStack, names: dict[str, str]) -> None:
    if kind == "AWS::KMS::Key":
        meta = client("kms").create_key(Description=props.get("Description", logical))["KeyMetadata"]
        stack.physical[logical], stack.arns[logical] = meta["KeyId"], meta["Arn"]
    elif kind == "AWS::KMS::Alias":
        client("kms").create_alias(AliasName=props["AliasName"], TargetKeyId=props["TargetKeyId"])
        stack.physical[logical] = props["AliasName"]
    elif kind == "AWS::S3::Bucket":
        name = props.get("BucketName") or names.get(logical) or f"vaultline-{logical.lower()[:40]}"
        s3 = client("s3")
        s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=bool(props.get("ObjectLockEnabled")))
        if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        stack.physical[logical], stack.arns[logical] = name, f"arn:aws:s3:::{name}"
    elif kind == "AWS::SNS::Topic":
        arn = client("sns").create_topic(Name=props.get("TopicName", logical))["TopicArn"]
        stack.physical[logical] = stack.arns[logical] = arn
    elif kind == "AWS::SQS::Queue":
        url = client("sqs").create_queue(QueueName=props.get("QueueName", logical))["QueueUrl"]
        stack.physical[logical] = url
        stack.arns[logical] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{props.get('QueueName', logical)}"
    elif kind == "AWS::IAM::Role":
        name = props.get("RoleName", logical[:64])
        policy = props.get("AssumeRolePolicyDocument", {})
        arn = client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(policy))["Role"]["Arn"]
        stack.physical[logical], stack.arns[logical] = name, arn
    elif kind == "AWS::Lambda::Function":
        name = props.get("FunctionName", logical[:64])
        response = client("lambda").create_function(
            FunctionName=name,
            Runtime=props.get("Runtime", "python3.12"),
            Role=props["Role"],
            Handler=props["Handler"],
            Code={"ZipFile": _dummy_zip()},
            Timeout=int(props.get("Timeout", 3)),
            MemorySize=int(props.get("MemorySize", 128)),
            Architectures=props.get("Architectures", ["arm64"]),
            Environment={"Variables": props.get("Environment", {}).get("Variables", {})},
        )
        stack.physical[logical], stack.arns[logical] = name, response["FunctionArn"]
    elif kind == "AWS::StepFunctions::StateMachine":
        definition = props.get("DefinitionString") or json.dumps(props["Definition"])
        name = props.get("StateMachineName", logical)
        arn = client("stepfunctions").create_state_machine(
            name=name, definition=definition, roleArn=props["RoleArn"], type=props.get("StateMachineType", "STANDARD")
        )["stateMachineArn"]
        stack.physical[logical] = stack.arns[logical] = arn
    elif kind == "AWS::Scheduler::Schedule":
        name = props.get("Name", logical)
        args: dict[str, Any] = {
            "Name": name,
            "ScheduleExpression": props["ScheduleExpression"],
            "FlexibleTimeWindow": props.get("FlexibleTimeWindow", {"Mode": "OFF"}),
            "Target": {k: v for k, v in props["Target"].items() if k in ("Arn", "RoleArn", "Input", "RetryPolicy")},
        }
        if props.get("ScheduleExpressionTimezone"):
            args["ScheduleExpressionTimezone"] = props["ScheduleExpressionTimezone"]
        client("scheduler").create_schedule(**args)
        stack.physical[logical] = name
        stack.schedules.append(name)
    elif kind == "AWS::Events::Rule":
        name = props.get("Name", logical[:64])
        pattern = props.get("EventPattern")
        if pattern is not None:
            client("events").put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED")
        stack.physical[logical] = name


def fire_schedule(name: str) -> str:
    """Do what EventBridge Scheduler does when schedule ``name`` comes due: start its target with its input.

    The start is made as the schedule's ``Target.RoleArn``, as the scheduler makes it.
    """
    schedule = client("scheduler").get_schedule(Name=name)
    target = schedule["Target"]
    schedule_arn = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/{schedule.get('GroupName', 'default')}/{name}"
    role = assume_as_service(target["RoleArn"], "scheduler.amazonaws.com", f"scheduler-{name}", schedule_arn)
    scheduler_session = boto3.session.Session(
        role.access_key_id, role.secret_access_key, role.session_token, region_name=REGION
    )
    response = scheduler_session.client("stepfunctions").start_execution(
        stateMachineArn=target["Arn"], input=target.get("Input", "{}"), name=f"{name}-{uuid.uuid4().hex}"
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
