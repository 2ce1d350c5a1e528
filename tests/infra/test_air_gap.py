"""The vault-account mode: two stacks from one app, cdk-nag clean, and the policies that make the vault add-only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.air_gap_settings import AirGapSettings
from infra.app import build_app
from infra.settings import SettingsError
from tests.infra.conftest import Synth, synthesize

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
