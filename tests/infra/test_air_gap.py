"""The vault-account mode: two stacks from one app, cdk-nag clean, and the policies that make the vault add-only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.air_gap_settings import AirGapSettings
from infra.app import build_app
from infra.settings import SettingsError
from infra.stack import PROTECTED_FUNCTIONS
from infra.vault_account import VAULT_ACCOUNT_FUNCTIONS
from tests.infra.conftest import Synth, resolve, synthesize
from vaultline_dev.embedded.iam import Caller, decide
from vaultline_dev.embedded.iam_requests import Check
from vaultline_dev.embedded.iam_simulator import Simulator
from vaultline_dev.embedded.intrinsics import Resolver, pseudo_parameters

VAULT, PROTECTED = "111111111111", "222222222222"
AIR_GAP = {"vaultAccountId": VAULT, "protectedAccountId": PROTECTED, "region": "eu-west-1"}
BUCKET = f"vaultline-vault-{VAULT}-eu-west-1"


@dataclass
class TwoStacks:
    protected: Synth
    vault: dict[str, Any]

    def logical(self, prefix: str, kind: str | None = None) -> str:
        """The one logical id of the vault stack starting with ``prefix`` (of type ``kind``)."""
        (found,) = [k for k, r in self.vault["Resources"].items() if k.startswith(prefix) and kind in (None, r["Type"])]
        return found

    def bucket_statements(self) -> dict[str, dict[str, Any]]:
        (policy,) = [
            r["Properties"]["PolicyDocument"]
            for r in self.vault["Resources"].values()
            if r["Type"] == "AWS::S3::BucketPolicy"
            and r["Properties"]["Bucket"] == {"Ref": self.logical("VaultBucket", "AWS::S3::Bucket")}
        ]
        return {s["Sid"]: s for s in policy["Statement"] if "Sid" in s}


@pytest.fixture(scope="module")
def stacks() -> TwoStacks:
    protected = synthesize({"vaultAccount": AIR_GAP, "objectLockRetentionDays": 30}, nag=True)
    vault = json.loads((protected.template_path.parent / "VaultlineVault.template.json").read_text())
    return TwoStacks(protected, vault)


def test_both_stacks_synthesize_with_no_unacknowledged_cdk_nag_finding(stacks: TwoStacks) -> None:
    assert stacks.protected.synth_error is None, stacks.protected.validation_report


def test_the_vault_stack_owns_a_named_object_locked_bucket_and_the_protected_stack_owns_none(stacks: TwoStacks) -> None:
    vault = Template.from_json(stacks.vault)
    vault.has_resource_properties("AWS::S3::Bucket", {"BucketName": BUCKET, "ObjectLockEnabled": True})
    # The vault's key, and the keys of the maintenance's logs and of its notifications.
    keys = [k[:-8] for k, r in stacks.vault["Resources"].items() if r["Type"] == "AWS::KMS::Key"]
    assert sorted(keys) == ["LogKey", "NotificationKey", "VaultKey"]
    buckets = stacks.protected.resources("AWS::S3::Bucket")
    assert all("Vault" not in logical for logical in buckets)  # only the drill scratch would be, and it is gone
    assert not stacks.protected.resources("AWS::KMS::Key").keys() & {"VaultKey"}


def test_the_protected_account_may_add_only_with_if_none_match_and_never_delete_what_a_recovery_point_needs(
    stacks: TwoStacks,
) -> None:
    statements = stacks.bucket_statements()
    overwrite = statements["ProtectedAccountNeverOverwrites"]
    assert overwrite["Effect"] == "Deny" and overwrite["Action"] == "s3:PutObject"
    assert overwrite["Condition"] == {"Null": {"s3:if-none-match": "true"}}
    assert json.dumps(overwrite["Principal"]).count(PROTECTED) == 1
    exempt = json.dumps(overwrite["NotResource"])
    assert "/staging/*" in exempt and "/locks/*" in exempt and "/data/" not in exempt
    deletes = statements["ProtectedAccountDeletesOnlyScratch"]
    assert deletes["Effect"] == "Deny" and deletes["Action"] == "s3:DeleteObject"
    never = statements["ProtectedAccountNeverUnprotects"]["Action"]
    assert {"s3:BypassGovernanceRetention", "s3:PutObjectLegalHold", "s3:PutBucketPolicy"} <= set(never)
    grants = statements["ProtectedStackAdds"]
    assert grants["Condition"] == {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{PROTECTED}:role/Vaultline-*"}}


def test_the_protected_stack_has_no_maintenance_no_retention_step_and_creates_no_vault(stacks: TwoStacks) -> None:
    template = stacks.protected.template
    assert "MaintenanceStateMachineArn" not in template["Outputs"]
    (backup,) = [r for k, r in stacks.protected.resources("AWS::StepFunctions::StateMachine").items() if "Backup" in k]
    assert '\\"Retention\\"' not in json.dumps(backup["Properties"]["DefinitionString"])
    creates = {
        k: f["Properties"]["Environment"]["Variables"].get("VAULT_CREATE")
        for k, f in stacks.protected.resources("AWS::Lambda::Function").items()
    }
    assert set(creates.values()) <= {"false", False, None}, creates
    assert f'"s3://{BUCKET}"' in json.dumps(template)


def test_nobody_deletes_the_config_and_only_the_vault_root_bypasses_retention(stacks: TwoStacks) -> None:
    statements = stacks.bucket_statements()
    assert statements["NobodyDeletesTheVaultConfig"]["Principal"] == {"AWS": "*"}
    bypass = statements["OnlyTheVaultRootBypassesRetention"]
    assert bypass["Condition"] == {"StringNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{VAULT}:root"}}


def test_vault_account_settings_name_the_context_key_when_wrong() -> None:
    with pytest.raises(SettingsError, match=r"cdk context vaultAccount: .*must differ"):
        build_app({"vaultAccount": {**AIR_GAP, "protectedAccountId": VAULT}}, nag=False, stage_assets=False)
    with pytest.raises(SettingsError, match=r"vaultAccount\.vaultAccountId"):
        build_app({"vaultAccount": {**AIR_GAP, "vaultAccountId": "12"}}, nag=False, stage_assets=False)
    other = "arn:aws:kms:eu-west-1:333333333333:key/00000000-0000-0000-0000-000000000000"
    with pytest.raises(ValueError, match="not a key of the vault account"):
        AirGapSettings.model_validate({**AIR_GAP, "vaultKeyArn": other})


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def test_the_vault_stack_schedules_its_maintenance_and_alarms_on_its_own_topic(stacks: TwoStacks) -> None:
    vault = stacks.vault
    (machine,) = _of_type(vault, "AWS::StepFunctions::StateMachine")
    (schedule,) = _of_type(vault, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Name"] == "vaultline-maintenance"
    assert schedule["Properties"]["Target"]["Arn"] == {"Ref": machine}
    sent = json.loads(resolve(schedule["Properties"]["Target"]["Input"]))
    assert sent["prune"] is True and {p["source"] for p in sent["policies"]}, sent
    topic = {"Ref": stacks.logical("ObservabilityTopic", "AWS::SNS::Topic")}
    alarms = {k[: -len("8372F9EC")]: r["Properties"] for k, r in _of_type(vault, "AWS::CloudWatch::Alarm").items()}
    assert set(alarms) == {
        "ObservabilityMaintenanceFailedAlarm",
        "ObservabilityScheduleFailedAlarm",
        "MaintenanceWorkflowIntegrityAlarm",
        "FreshnessVerifyFreshness",
    }
    assert all(alarm["AlarmActions"] == [topic] for alarm in alarms.values())
    rules = _of_type(vault, "AWS::Events::Rule").values()
    assert {json.dumps(r["Properties"]["EventPattern"]["detail-type"]) for r in rules} == {
        '["Step Functions Execution Status Change"]',
        '["Vaultline Maintenance Succeeded", "Vaultline Maintenance Failed"]',
    }
    assert all(r["Properties"]["Targets"][0]["Arn"] == topic for r in rules)
    (dashboard,) = _of_type(vault, "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert all(logical in body for logical in _of_type(vault, "AWS::CloudWatch::Alarm")), "every alarm on it"
    assert vault["Outputs"]["MaintenanceStateMachineArn"]["Value"] == {"Ref": machine}
    assert vault["Outputs"]["NotificationTopicArn"]["Value"] == topic


def test_the_vault_stack_runs_only_maintenance_and_touches_no_source(stacks: TwoStacks) -> None:
    handlers = {f["Properties"]["Handler"] for f in _of_type(stacks.vault, "AWS::Lambda::Function").values()}
    assert handlers == {f"{spec.name}.handler" for spec in VAULT_ACCOUNT_FUNCTIONS}
    assert all(h.startswith(("maintenance_", "abort.", "freshness_check.")) for h in handlers), handlers
    statements = [
        statement
        for policy in _of_type(stacks.vault, "AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not {a for a in actions if a.startswith(("dynamodb:", "sts:"))}, "no source table, no role to assume"
    assert not [s for s in statements if s.get("Sid", "").startswith(("Source", "Restore", "CopyTarget"))]


def test_every_role_of_the_vault_stack_is_bounded_by_the_maintenance_roles_statements(stacks: TwoStacks) -> None:
    boundary = stacks.logical("MaintenanceBoundary", "AWS::IAM::ManagedPolicy")
    roles = _of_type(stacks.vault, "AWS::IAM::Role")
    assert len(roles) > len(VAULT_ACCOUNT_FUNCTIONS)  # the functions', the state machine's, the schedules'
    assert all(r["Properties"].get("PermissionsBoundary") == {"Ref": boundary} for r in roles.values()), roles.keys()
    bounded = stacks.vault["Resources"][boundary]["Properties"]["PolicyDocument"]["Statement"]
    maintenance_role = stacks.logical("MaintenanceRole", "AWS::IAM::Role")
    (granted,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in _of_type(stacks.vault, "AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": maintenance_role}]
    ]
    assert [s for s in bounded if s["Sid"] != "OutsideTheVault"] == granted
    (outside,) = [s for s in bounded if s["Sid"] == "OutsideTheVault"]
    assert outside["Action"] == "*" and "Resource" not in outside and len(outside["NotResource"]) == 3


# --- the enforcing evaluator's decisions on the synthesized policies -------------------------------------------

KEY = f"arn:aws:kms:eu-west-1:{VAULT}:key/VaultKey"


def _resolved(template: dict[str, Any], account: str) -> dict[str, dict[str, Any]]:
    """Every resource's properties with intrinsics resolved, physical names made up as a deploy would make them."""
    resolve = Resolver(pseudo_parameters(account, "eu-west-1", "Vaultline"))
    for logical, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        service = kind.split("::")[1].lower()
        if kind == "AWS::S3::Bucket":
            name = props.get("BucketName") or logical.lower()
            resolve.refs[logical], arn = name, f"arn:aws:s3:::{name}"
        elif kind == "AWS::IAM::Role":
            resolve.refs[logical], arn = logical, f"arn:aws:iam::{account}:role/{logical}"
        elif kind == "AWS::IAM::ManagedPolicy":
            arn = resolve.refs[logical] = f"arn:aws:iam::{account}:policy/{logical}"
        elif kind == "AWS::KMS::Key":
            resolve.refs[logical], arn = logical, f"arn:aws:kms:eu-west-1:{account}:key/{logical[: -len('CB88EF1A')]}"
        elif kind == "AWS::StepFunctions::StateMachine":  # its Ref is its ARN
            arn = resolve.refs[logical] = f"arn:aws:states:eu-west-1:{account}:stateMachine:{logical}"
        else:
            resolve.refs[logical], arn = logical, f"arn:aws:{service}:eu-west-1:{account}:{logical}"
        resolve.attributes[logical] = {"Arn": arn, "Name": logical, "QueueName": logical, "LayerVersionArn": arn}
    kinds = {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::Role", "AWS::S3::BucketPolicy"}
    return {
        logical: {"Type": r["Type"], **resolve(r.get("Properties", {}))}
        for logical, r in template["Resources"].items()
        if r["Type"] in kinds
    }


@dataclass
class Policies:
    """The vault stack's and the protected stack's policies, resolved, and the evaluator that decides on them."""

    vault: dict[str, dict[str, Any]]
    protected: dict[str, dict[str, Any]]
    simulator: Simulator

    def bucket_policy(self) -> dict[str, Any]:
        (policy,) = [r["PolicyDocument"] for r in self.vault.values() if r.get("Bucket") == BUCKET]
        return policy

    def caller(self, role_prefix: str, *, protected: bool = False) -> Caller:
        resources = self.protected if protected else self.vault
        account = PROTECTED if protected else VAULT
        (role,) = [k for k, r in resources.items() if r["Type"] == "AWS::IAM::Role" and k.startswith(role_prefix)]
        documents = [
            r["PolicyDocument"] for r in resources.values() if r["Type"] == "AWS::IAM::Policy" and role in r["Roles"]
        ]
        boundary_arn = resources[role].get("PermissionsBoundary")
        boundary = resources[boundary_arn.rsplit("/", 1)[1]]["PolicyDocument"] if boundary_arn else None
        # CloudFormation names a role <stack>-<logical id>-<suffix>: what the bucket policy's pattern admits.
        name = f"Vaultline-{role}" if protected else role
        return Caller(f"arn:aws:sts::{account}:assumed-role/{name}/session", documents, boundary)

    def allowed(self, caller: Caller, action: str, key: str, **context: str) -> bool:
        check = Check(action, f"arn:aws:s3:::{BUCKET}/{key}", dict(context))
        return decide(self.simulator, caller, check, self.bucket_policy(), VAULT).allowed


@pytest.fixture(scope="module")
def policies(stacks: TwoStacks) -> Iterator[Policies]:
    simulator = Simulator()
    yield Policies(_resolved(stacks.vault, VAULT), _resolved(stacks.protected.template, PROTECTED), simulator)
    simulator.close()


@pytest.mark.parametrize(
    ("role", "action", "key"),
    [
        ("FunctionsMaintenanceForgetDecideServiceRole", "s3:DeleteObject", "recovery-points/rp"),
        ("FunctionsMaintenancePruneFinishServiceRole", "s3:DeleteObject", "data/ab/pack"),
        ("FunctionsMaintenancePruneFinishServiceRole", "s3:DeleteObject", "index/ab"),
        ("FunctionsMaintenancePruneSweepServiceRole", "s3:PutObject", "data/ab/pack"),
        ("FunctionsMaintenanceLockExtendServiceRole", "s3:PutObjectRetention", "data/ab/pack"),
        ("FunctionsMaintenanceLockPlanServiceRole", "s3:PutObjectRetention", "object-lock"),
        ("FunctionsMaintenanceCompactServiceRole", "s3:PutObject", "index-catalogs/g"),
        ("MaintenanceRole", "s3:DeleteObject", "data/ab/pack"),
    ],
)
def test_the_evaluator_lets_the_vault_accounts_maintenance_do_its_job(
    policies: Policies, role: str, action: str, key: str
) -> None:
    assert policies.allowed(policies.caller(role), action, key)


@pytest.mark.parametrize(
    ("role", "action", "key"),
    [
        ("FunctionsMaintenancePruneMarkServiceRole", "s3:PutObject", "holds/rp"),  # its own policy allows; the boundary
        ("FunctionsMaintenanceForgetDecideServiceRole", "s3:DeleteObjectVersion", "recovery-points/rp"),
        ("FunctionsMaintenancePruneFinishServiceRole", "s3:DeleteObject", "config"),
        ("MaintenanceRole", "s3:BypassGovernanceRetention", "data/ab/pack"),
        ("MaintenanceRole", "s3:PutObjectLegalHold", "data/ab/pack"),
        ("MaintenanceRole", "s3:DeleteObject", "object-lock"),
    ],
)
def test_the_evaluator_refuses_the_vault_accounts_maintenance_what_it_must_not(
    policies: Policies, role: str, action: str, key: str
) -> None:
    assert not policies.allowed(policies.caller(role), action, key)


def test_the_protected_stack_creates_only_the_functions_its_backups_restores_and_freshness_check_run(
    stacks: TwoStacks,
) -> None:
    # Maintenance, retention and copies are the vault account's: their functions, and the deletes their roles
    # would carry, are not created where an attacker who owns the protected account could use them.
    handlers = {
        f["Properties"]["Handler"] for f in _of_type(stacks.protected.template, "AWS::Lambda::Function").values()
    }
    assert handlers == {f"{spec.name}.handler" for spec in PROTECTED_FUNCTIONS}
    assert not [h for h in handlers if h.startswith(("maintenance_", "apply_retention", "copy_"))], handlers


@pytest.mark.parametrize("key", ["recovery-points/rp", "data/ab/pack", "index/ab", "config"])
def test_the_evaluator_refuses_every_delete_of_the_protected_accounts_roles(policies: Policies, key: str) -> None:
    # The protected roles that may delete at all (a run's staging and locks, a failed Prepare's undo) may not
    # delete what a recovery point needs.
    deleters = [
        logical
        for logical, resource in policies.protected.items()
        if resource["Type"] == "AWS::IAM::Role"
        and any(
            "s3:DeleteObject" in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
            for p in policies.caller(logical, protected=True).policies
            for s in p["Statement"]
        )
    ]
    assert {"FunctionsBackupCommitServiceRole", "FunctionsAbortServiceRole"} <= {
        d[: d.index("Role") + 4] for d in deleters
    }
    for role in deleters:
        assert not policies.allowed(policies.caller(role, protected=True), "s3:DeleteObject", key), role


def test_the_evaluator_lets_the_protected_backup_add_only(policies: Policies) -> None:
    worker = policies.caller("FunctionsBackupWorkerServiceRole", protected=True)
    assert policies.allowed(worker, "s3:PutObject", "data/ab/pack", **{"s3:if-none-match": "*"})  # the control
    assert not policies.allowed(worker, "s3:PutObject", "data/ab/pack")
