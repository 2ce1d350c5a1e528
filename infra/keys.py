"""The customer-managed keys of the stack (vault, logs, notifications): one rule for all of them."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from constructs import Construct


def customer_key(scope: Construct, description: str) -> kms.Key:
    """A CMK ``Key`` of ``scope``, rotated yearly and retained on stack deletion: what it encrypted outlives the
    stack (the vault's data, the record of what ran), and would be unreadable without it."""
    return kms.Key(scope, "Key", description=description, enable_key_rotation=True, removal_policy=RemovalPolicy.RETAIN)
