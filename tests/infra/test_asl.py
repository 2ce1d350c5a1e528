"""Every synthesized state-machine definition passes the ASL validator (npm asl-validator, pinned in package.json)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import Synth
from vaultline_dev.embedded.intrinsics import Resolver, pseudo_parameters

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "node_modules" / ".bin" / "asl-validator"
ACCOUNT, REGION = "123456789012", "us-east-1"

# What Ref gives for each type: an ARN, or a name (the rest of the resolver's output is the ARN below).
_REF_IS_ARN = {"AWS::StepFunctions::StateMachine", "AWS::SNS::Topic", "AWS::Lambda::LayerVersion"}
_ARNS = {
    "AWS::Lambda::Function": "arn:aws:lambda:{region}:{account}:function:{name}",
    "AWS::Lambda::LayerVersion": "arn:aws:lambda:{region}:{account}:layer:{name}:1",
    "AWS::StepFunctions::StateMachine": "arn:aws:states:{region}:{account}:stateMachine:{name}",
    "AWS::S3::Bucket": "arn:aws:s3:::{name}",
    "AWS::SNS::Topic": "arn:aws:sns:{region}:{account}:{name}",
    "AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{name}",
    "AWS::IAM::Role": "arn:aws:iam::{account}:role/{name}",
    "AWS::KMS::Key": "arn:aws:kms:{region}:{account}:key/0a1b2c3d-0000-4000-8000-000000000000",
    "AWS::Logs::LogGroup": "arn:aws:logs:{region}:{account}:log-group:{name}:*",
    "AWS::CloudWatch::Alarm": "arn:aws:cloudwatch:{region}:{account}:alarm:{name}",
    "AWS::Events::Rule": "arn:aws:events:{region}:{account}:rule/{name}",
    "AWS::Scheduler::Schedule": "arn:aws:scheduler:{region}:{account}:schedule/default/{name}",
}


def plausible_resolver(template: dict[str, Any]) -> Resolver:
    """Resolve intrinsics to ARNs and names of the form AWS would give the template's resources."""
    resolver = Resolver(pseudo_parameters(ACCOUNT, REGION, "Vaultline"))
    for logical, resource in template["Resources"].items():
        kind = resource["Type"]
        name = f"vaultline-{logical.lower()}" if kind == "AWS::S3::Bucket" else logical
        pattern = _ARNS.get(kind, "arn:aws:cloudformation:{region}:{account}:resource/{name}")
        arn = pattern.format(region=REGION, account=ACCOUNT, name=name)
        resolver.refs[logical] = arn if kind in _REF_IS_ARN else name
        resolver.attributes[logical] = {"Arn": arn, "Name": name, "QueueName": name}
    return resolver


def definitions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each state machine's definition, resolved to JSON, by logical id."""
    resolve = plausible_resolver(template)
    found: dict[str, dict[str, Any]] = {}
    for logical, resource in template["Resources"].items():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            found[logical] = json.loads(resolve(resource["Properties"]["DefinitionString"]))
    return found


def validate(definition: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(definition))
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.fixture(scope="module")
def machines(synth: Synth) -> dict[str, dict[str, Any]]:
    if not VALIDATOR.exists():
        pytest.fail(f"{VALIDATOR} is missing: run `make venv` (npm ci installs the pinned asl-validator)")
    found = definitions(synth.template)
    assert len(found) == 4
    return found


@pytest.mark.parametrize("kind", ["Backup", "Restore", "Maintenance", "Copy"])
def test_state_machine_definition_passes_asl_validator(
    machines: dict[str, dict[str, Any]], kind: str, tmp_path: Path
) -> None:
    (definition,) = [d for logical, d in machines.items() if kind in logical]
    result = validate(definition, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asl_validator_rejects_a_broken_definition(machines: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    # The check has teeth: a Next pointing at no state fails it.
    broken = json.loads(json.dumps(next(iter(machines.values()))))
    start = broken["StartAt"]
    broken["States"][start].pop("End", None)
    broken["States"][start]["Next"] = "NoSuchState"
    result = validate(broken, tmp_path)
    assert result.returncode != 0
