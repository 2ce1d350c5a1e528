"""Synthesize the stack once per session (cdk-nag included) and share the template between the infra tests."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20,22")

from aws_cdk.assertions import Template

from infra.app import build_app

STACK = "Vaultline"


@dataclass
class Synth:
    """One synthesized stack: the template, its assertion wrapper and cdk-nag's report."""

    template: dict[str, Any]
    assertions: Template
    template_path: Path
    validation_report: dict[str, Any] | None
    synth_error: str | None

    def resources(self, type_name: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.template["Resources"].items() if v["Type"] == type_name}

    def only(self, type_name: str, path_part: str = "") -> tuple[str, dict[str, Any]]:
        """The one resource of a type whose logical id contains ``path_part``."""
        found = [(k, v) for k, v in self.resources(type_name).items() if path_part in k]
        assert len(found) == 1, f"expected one {type_name} matching {path_part!r}, got {[k for k, _ in found]}"
        return found[0]


def synthesize(context: dict[str, Any] | None = None, *, nag: bool) -> Synth:
    outdir = tempfile.mkdtemp(prefix="vaultline-synth-")
    app, _stack = build_app(context, nag=nag, outdir=outdir, stage_assets=False)
    error = None
    try:
        app.synth()
    except Exception as exc:  # cdk-nag findings make synth raise ValidationFailed; the report says which.
        if "ValidationFailed" not in str(exc):
            raise
        error = str(exc)
    template_path = Path(outdir) / f"{STACK}.template.json"
    report_path = Path(outdir) / "validation-report.json"
    template = json.loads(template_path.read_text())
    report = json.loads(report_path.read_text()) if report_path.is_file() else None
    return Synth(template, Template.from_json(template), template_path, report, error)


@pytest.fixture(scope="session")
def synth() -> Synth:
    """The stack as `cdk synth` builds it from cdk.json and plans.yaml, with the cdk-nag checks."""
    return synthesize(nag=True)


MULTI_PLANS = """\
version: 1
plans:
  - name: photos
    sources:
      - {type: s3, bucket: photo-originals, prefix: raw/, include: ["*.jpg"], exclude: ["*.tmp"]}
      - {type: s3, bucket: partner-photos, role_arn: "arn:aws:iam::123456789012:role/vaultline-read"}
    schedule: {expression: "cron(0 3 * * ? *)", timezone: Europe/Berlin, flexible_window_minutes: 0}
    worker_concurrency: 50
    compression_level: 9
    tags: {team: media}
  - name: docs
    sources:
      - type: s3
        bucket: company-docs
        inventory: {destination: "s3://company-inventories/reports/", configuration: daily-csv}
    schedule: {expression: "rate(6 hours)", timezone: UTC, flexible_window_minutes: 30}
"""


@pytest.fixture(scope="session")
def multi_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """A stack from two plans, one with two sources (one read through a cross-account role), no object lock default."""
    plans = tmp_path_factory.mktemp("plans") / "plans.yaml"
    plans.write_text(MULTI_PLANS)
    context = {
        "plansFile": str(plans),
        "objectLockRetentionDays": 0,
        "restoreTargetBuckets": ["restore-*", "scratch-bucket"],
    }
    return synthesize(context, nag=False)


def resolve(value: Any) -> str:
    """Flatten an Fn::Join of strings and intrinsics into one string, intrinsics as readable placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(part) for part in parts)
    if isinstance(value, dict) and "Ref" in value:
        return f"REF_{re.sub(r'[^A-Za-z0-9]', '_', value['Ref'])}"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return f"GETATT_{value['Fn::GetAtt'][0]}_{value['Fn::GetAtt'][1]}"
    return "PLACEHOLDER"


def definition(synth: Synth, kind: str) -> dict[str, Any]:
    """The parsed ASL definition of the Backup or Restore state machine."""
    _, machine = synth.only("AWS::StepFunctions::StateMachine", f"Workflows{kind}")
    parsed: dict[str, Any] = json.loads(resolve(machine["Properties"]["DefinitionString"]))
    return parsed


def assert_puts_event(state: dict[str, Any], detail_type: str, detail: str) -> None:
    """``state`` puts one ``vaultline`` event of ``detail_type`` (its detail: the path ``detail``) on the default bus,
    and the event does not replace the state."""
    assert state["Resource"].endswith(":states:::events:putEvents")
    assert state["Parameters"]["Entries"] == [{"Detail.$": detail, "DetailType": detail_type, "Source": "vaultline"}]
    assert state["ResultPath"] is None


def statements(synth: Synth, role_part: str) -> list[dict[str, Any]]:
    """All IAM statements of the policies attached to roles whose logical id contains ``role_part``."""
    found: list[dict[str, Any]] = []
    for _, policy in synth.resources("AWS::IAM::Policy").items():
        roles = [r.get("Ref", "") for r in policy["Properties"].get("Roles", [])]
        if any(role_part in r for r in roles):
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def actions_of(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return {action} if isinstance(action, str) else set(action)


def resources_of(statement: dict[str, Any]) -> list[str]:
    resource = statement["Resource"]
    return [resolve(r) for r in (resource if isinstance(resource, list) else [resource])]
