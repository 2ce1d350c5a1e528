"""Where moto, given the deployed template, behaves unlike AWS: closed here, in one place, while it is open.

- EventBridge rules whose target is an SNS topic: moto 5.2.5 delivers to log groups, SQS and event buses only and
  raises on any other target, which fails the ``events:putEvents`` task of every state machine. AWS publishes the
  event (or the target's ``Input``) to the topic; so does this.
- Bucket policies: moto evaluates a bucket policy without its conditions, so CDK's ``enforceSSL`` statement (Deny
  ``s3:*`` to ``*`` when ``aws:SecureTransport`` is false) denies every request. Clients reach AWS over TLS, so on
  AWS that statement denies nothing a Vaultline client sends; moto's condition-blind check is switched off, and
  resource policies are authorized by the embedded AWS's IAM evaluation (iam_deploy / the IAM layer), with
  their conditions.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from moto.events.models import Rule
from moto.iam.access_control import PermissionResult
from moto.s3.models import FakeBucket
from moto.sns.models import sns_backends
from moto.utilities.arns import parse_arn

_original_send_to_targets = Rule.send_to_targets
_original_get_permission = FakeBucket.get_permission


def _send_to_targets(self: Rule, original_event: Any, transform_input: bool = True) -> None:
    topics = [t for t in self.targets if parse_arn(t["Arn"]).service == "sns"]
    others = [t for t in self.targets if t not in topics]
    if others or not topics:
        rest = copy.copy(self)
        rest.targets = others
        _original_send_to_targets(rest, original_event, transform_input)
    if not topics or not self.event_pattern.matches_event(original_event):
        return
    for target in topics:
        arn = parse_arn(target["Arn"])
        message = target.get("Input") or json.dumps(original_event)
        sns_backends[arn.account][arn.region].publish(message=message, arn=target["Arn"])


def _get_permission(self: FakeBucket, action: str, resource: str) -> Any:
    return PermissionResult.NEUTRAL


def install() -> None:
    """Close the gaps (idempotent)."""
    Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign]
    FakeBucket.get_permission = _get_permission  # type: ignore[method-assign]


def uninstall() -> None:
    """Give moto its own behaviour back."""
    Rule.send_to_targets = _original_send_to_targets  # type: ignore[method-assign]
    FakeBucket.get_permission = _original_get_permission  # type: ignore[method-assign]
