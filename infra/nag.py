"""cdk-nag acknowledgments (suppressions), each with the reason the finding does not apply.

cdk-nag 3 runs as a CDK policy-validation plugin and reads CDK's native ``Validations.of(x).acknowledge()``: an
acknowledgment covers the construct and everything below it. Rules that report several findings per resource (IAM5
and IAM4) are acknowledged one finding at a time (``AwsSolutions-IAM5[Resource::*]``), so a new wildcard is never
waved through by an old acknowledgment.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

MIN_REASON_LENGTH = 40


def acknowledge(construct: IConstruct, rule: str, reason: str, findings: Sequence[str] = ()) -> None:
    """Acknowledge ``rule`` on ``construct`` (and below), or only its listed ``findings`` when given."""
    if len(reason) < MIN_REASON_LENGTH:
        raise ValueError(f"acknowledging {rule} needs a real reason, not {reason!r}")
    ids = [f"{rule}[{finding}]" for finding in findings] or [rule]
    Validations.of(construct).acknowledge(*(Acknowledgment(id=rule_id, reason=reason) for rule_id in ids))


def add_nag_checks(scope: IConstruct) -> None:
    """Run the AWS Solutions rules on every synth; an unacknowledged finding fails it."""
    Validations.of(scope).add_plugins(AwsSolutionsChecks(scope))


def logical_id(construct: IConstruct) -> str:
    """The CloudFormation logical id of an L2 construct's resource, as cdk-nag spells it in finding ids."""
    child = construct.node.default_child
    if not isinstance(child, CfnElement):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource")
    return Stack.of(construct).get_logical_id(child)
