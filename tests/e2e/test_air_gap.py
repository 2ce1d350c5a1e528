"""A vault in its own account: each attacker of docs/security.md tries, with its own credentials, on the enforcing
embedded AWS, and fails; the legitimate role's control succeeds, so each test can fail.

The embedded AWS's account (123456789012) is the vault account: the ``VaultlineVault`` stack is deployed there as
CloudFormation would. The protected account (222222222222) gets the protected ``Vaultline`` stack's roles, each with
its synthesized statements on the vault (the ones naming it: the vault is imported, so their ARNs are literal),
created straight in moto's IAM of that account; the rest of that stack (functions, machines) plays no part in who
may do what to the vault. One deployment per module; every test writes its own keys.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.iam.models import iam_backends

from tests.e2e.conftest import _post, shared_synth
from vaultline.aws import client, reset_clients
from vaultline.cli.stack import follow, start
from vaultline.operations.backup import run_backup
from vaultline.repository.layout import CONFIG_KEY, MANIFEST_PREFIX, key_slot_key, pack_id_of_key
from vaultline.repository.manifest import list_recovery_points
from vaultline.repository.object_lock import ObjectLockSettings, VaultObjectLock, create_object_lock
from vaultline.repository.vault import Vault
from vaultline.sources import open_source
from vaultline.storage import S3Storage
from vaultline_dev.embedded import EmbeddedAws, deploy_template
from vaultline_dev.embedded.deploy import DeployedStack, fire_schedule
from vaultline_dev.embedded.identity import role_credentials
from vaultline_dev.embedded.server import MOTO_CONFIG

pytestmark = pytest.mark.e2e

VAULT_ACCOUNT = "123456789012"
PROTECTED = "222222222222"
LOCK_DAYS = 7
CONTEXT = {
    "plansFile": "tests/e2e/plans.yaml",
    "objectLockMode": "GOVERNANCE",
    "objectLockRetentionDays": LOCK_DAYS,
    "vaultAccount": {"vaultAccountId": VAULT_ACCOUNT, "protectedAccountId": PROTECTED, "region": "us-east-1"},
}
BUCKET = f"vaultline-vault-{VAULT_ACCOUNT}-us-east-1"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
EVERYTHING = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


class AirGap:
    """The deployed vault account and the protected account's sessions."""

    def __init__(self, embedded: EmbeddedAws, template: dict[str, Any], protected: dict[str, Any]) -> None:
        self.embedded = embedded
        self.template = template
        self.protected = protected
        self.vault = self.redeploy()

    def redeploy(self) -> DeployedStack:
        """A fresh embedded AWS with the vault account's stack deployed and its vault initialized."""
        _post(self.embedded.endpoint + "/moto-api/reset", {})
        _post(self.embedded.endpoint + "/moto-api/config", MOTO_CONFIG)
        reset_clients()
        # Warm sandboxes hold the reset account's role credentials: a fresh deploy starts them afresh, as AWS would.
        self.embedded.lambdas.pool.shutdown()
        self.vault = deploy_template(self.template)
        # The vault account initializes the vault, with the stack's Object Lock (`init --object-lock governance
        # --lock-days 7`, docs/deploy.md): its maintenance locks what it writes, and extends, by that record.
        storage = S3Storage(BUCKET)
        Vault.init(storage)
        create_object_lock(storage, ObjectLockSettings.bounded("GOVERNANCE", LOCK_DAYS))
        return self.vault

    def protected_role(self, name: str, *logical_prefixes: str) -> boto3.session.Session:
        """A role ``Vaultline-<name>`` in the protected account with the vault statements of the protected stack's
        roles whose logical ids start with ``logical_prefixes`` (or every permission, for none)."""
        documents = [_vault_statements(self.protected, prefix) for prefix in logical_prefixes] or [EVERYTHING]
        return _role_in_protected_account(f"Vaultline-{name}", documents)

    def maintenance(self) -> boto3.session.Session:
        arn = self.vault.outputs["MaintenanceRoleArn"]
        return role_credentials(arn, "maintenance").session("us-east-1")


def _vault_statements(template: dict[str, Any], logical_prefix: str) -> dict[str, Any]:
    resources = template["Resources"]
    (role,) = [k for k, r in resources.items() if k.startswith(logical_prefix) and r["Type"] == "AWS::IAM::Role"]
    statements = [
        statement
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
        if all(isinstance(r, str) and (BUCKET in r or ":kms:" in r) for r in _listed(statement.get("Resource")))
    ]
    assert statements, f"{logical_prefix} has no statement on the vault"
    return {"Version": "2012-10-17", "Statement": statements}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _role_in_protected_account(name: str, documents: list[dict[str, Any]]) -> boto3.session.Session:
    backend = iam_backends[PROTECTED]["global"]
    backend.create_role(name, json.dumps(TRUST), "/", None, "", [], None)
    for number, document in enumerate(documents):
        backend.put_role_policy(name, f"policy{number}", json.dumps(document))
    return role_credentials(f"arn:aws:iam::{PROTECTED}:role/{name}", name).session("us-east-1")


@pytest.fixture(scope="module")
def air_gap(embedded: EmbeddedAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirGap]:
    vault_template, out = shared_synth(tmp_path_factory, "VaultlineVault", CONTEXT)
    protected_template = json.loads((out / "Vaultline.template.json").read_text())
    yield AirGap(embedded, vault_template, protected_template)
    reset_clients()


def _key(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def _locked(key: str, days: int = LOCK_DAYS) -> str:
    """Write ``key`` as the vault account (the harness), under GOVERNANCE retention; return its version id."""
    until = datetime.now(UTC) + timedelta(days=days)
    put = client("s3").put_object(
        Bucket=BUCKET, Key=key, Body=b"locked", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=until
    )
    return str(put["VersionId"])


def _config() -> bytes:
    body: bytes = client("s3").get_object(Bucket=BUCKET, Key=CONFIG_KEY)["Body"].read()
    return body


def _refused(error: pytest.ExceptionInfo[ClientError]) -> str:
    response = error.value.response
    assert response["Error"]["Code"] in ("AccessDenied", "AccessDeniedException"), response["Error"]
    return str(response["Error"].get("Message", ""))


def test_backup_role_adds_a_pack_but_never_overwrites_or_deletes_one(air_gap: AirGap) -> None:
    s3 = air_gap.protected_role("Worker1", "FunctionsBackupWorkerServiceRole").client("s3")
    pack = _key("data/ab/")

    s3.put_object(Bucket=BUCKET, Key=pack, Body=b"pack", IfNoneMatch="*")  # the control: adding is allowed

    with pytest.raises(ClientError) as unconditional:  # the same role and key: only the header differs
        s3.put_object(Bucket=BUCKET, Key=pack, Body=b"evil")
    assert "with an explicit deny in a resource-based policy" in _refused(unconditional)
    with pytest.raises(ClientError) as conditional:
        s3.put_object(Bucket=BUCKET, Key=pack, Body=b"evil", IfNoneMatch="*")
    assert conditional.value.response["Error"]["Code"] == "PreconditionFailed"
    with pytest.raises(ClientError) as delete:
        s3.delete_object(Bucket=BUCKET, Key=pack)
    _refused(delete)
    assert client("s3").get_object(Bucket=BUCKET, Key=pack)["Body"].read() == b"pack"


def test_commit_role_cannot_overwrite_a_manifest(air_gap: AirGap) -> None:
    s3 = air_gap.protected_role("Commit1", "FunctionsBackupCommitServiceRole").client("s3")
    manifest = _key(MANIFEST_PREFIX)
    _locked(manifest)

    s3.put_object(Bucket=BUCKET, Key=_key(MANIFEST_PREFIX), Body=b"new", IfNoneMatch="*")
    with pytest.raises(ClientError) as overwrite:
        s3.put_object(Bucket=BUCKET, Key=manifest, Body=b"forged")
    _refused(overwrite)
    assert client("s3").get_object(Bucket=BUCKET, Key=manifest)["Body"].read() == b"locked"


def test_no_protected_role_shortens_a_retention_but_may_extend_it_within_the_vaults_terms(air_gap: AirGap) -> None:
    s3 = air_gap.protected_role("Worker2", "FunctionsBackupWorkerServiceRole").client("s3")
    pack = _key("data/cd/")
    _locked(pack, days=3)
    now = datetime.now(UTC)

    def retain(days: int, **extra: Any) -> None:
        until = now + timedelta(days=days)
        s3.put_object_retention(
            Bucket=BUCKET, Key=pack, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}, **extra
        )

    retain(5)  # the control: extending within the vault's lock days is allowed
    with pytest.raises(ClientError) as shorter:
        retain(1)
    assert "object lock" in _refused(shorter)
    with pytest.raises(ClientError) as bypass:
        retain(1, BypassGovernanceRetention=True)
    assert "s3:BypassGovernanceRetention" in _refused(bypass)
    with pytest.raises(ClientError) as forever:
        retain(3650)
    assert "with an explicit deny in a resource-based policy" in _refused(forever)
    head = client("s3").head_object(Bucket=BUCKET, Key=pack)
    assert head["ObjectLockRetainUntilDate"] > now + timedelta(days=4)


def test_no_protected_role_removes_the_config_not_even_one_allowed_to_forget(air_gap: AirGap) -> None:
    config = _config()
    # The protected stack creates no role that may forget (retention is the vault account's): a role of the
    # protected account whose identity allows every delete stands in for one.
    retention = air_gap.protected_role("Forgetter1").client("s3")
    manifest = _key(MANIFEST_PREFIX)
    client("s3").put_object(Bucket=BUCKET, Key=manifest, Body=b"unlocked")

    for attempt in (
        lambda: retention.delete_object(Bucket=BUCKET, Key=CONFIG_KEY),
        lambda: retention.put_object(Bucket=BUCKET, Key=CONFIG_KEY, Body=b"{}", IfNoneMatch="*"),
        lambda: retention.delete_object(Bucket=BUCKET, Key=manifest),  # its identity allows this; the vault does not
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        _refused(refused)
    assert _config() == config
    # The control: the vault account's maintenance forgets the manifest its rules no longer keep.
    air_gap.maintenance().client("s3").delete_object(Bucket=BUCKET, Key=manifest)


def test_no_protected_role_wraps_the_data_key_under_its_own_key(air_gap: AirGap) -> None:
    admin = air_gap.protected_role("Admin1")  # every permission its own account can give
    key_arn = air_gap.vault.outputs["VaultKeyArn"]

    with pytest.raises(ClientError) as slot:
        admin.client("s3").put_object(Bucket=BUCKET, Key=key_slot_key("attacker"), Body=b"{}", IfNoneMatch="*")
    _refused(slot)
    for attempt in (
        lambda: admin.client("kms").put_key_policy(KeyId=key_arn, PolicyName="default", Policy=json.dumps(EVERYTHING)),
        lambda: admin.client("kms").schedule_key_deletion(KeyId=key_arn, PendingWindowInDays=7),
        lambda: admin.client("kms").disable_key(KeyId=key_arn),
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        _refused(refused)
    # The control: the vault account adds a key slot (the CLI's `key add`, run there), and takes it away again.
    slot_key = key_slot_key(uuid.uuid4().hex)
    client("s3").put_object(Bucket=BUCKET, Key=slot_key, Body=b"{}", IfNoneMatch="*")
    client("s3").delete_object(Bucket=BUCKET, Key=slot_key)


def test_protected_admin_cannot_change_the_vault_bucket_or_lift_a_hold(air_gap: AirGap) -> None:
    s3 = air_gap.protected_role("Admin2").client("s3")
    held = _key("data/ef/")
    client("s3").put_object(Bucket=BUCKET, Key=held, Body=b"held", ObjectLockLegalHoldStatus="ON")

    s3.put_object(Bucket=BUCKET, Key=_key("data/ef/"), Body=b"new", IfNoneMatch="*")  # the control: it may add
    for attempt in (
        lambda: s3.put_object_legal_hold(Bucket=BUCKET, Key=held, LegalHold={"Status": "OFF"}),
        lambda: s3.delete_bucket_policy(Bucket=BUCKET),
        lambda: s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": []})),
        lambda: s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"}),
        lambda: s3.put_bucket_lifecycle_configuration(
            Bucket=BUCKET,
            LifecycleConfiguration={
                "Rules": [{"ID": "x", "Status": "Enabled", "Prefix": "", "Expiration": {"Days": 1}}]
            },
        ),
        lambda: s3.delete_object(Bucket=BUCKET, Key=held),
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        _refused(refused)
    assert client("s3").get_object_legal_hold(Bucket=BUCKET, Key=held)["LegalHold"]["Status"] == "ON"


def test_maintenance_deletes_unlocked_garbage_but_no_locked_version_nor_the_config(air_gap: AirGap) -> None:
    s3 = air_gap.maintenance().client("s3")
    garbage = _key("data/01/")
    client("s3").put_object(Bucket=BUCKET, Key=garbage, Body=b"garbage")
    pack = _key("data/02/")
    version = _locked(pack)
    config = _config()

    s3.delete_object(Bucket=BUCKET, Key=garbage)  # the control: prune removes what nothing needs
    for attempt in (
        lambda: s3.delete_object(Bucket=BUCKET, Key=pack, VersionId=version),
        lambda: s3.delete_object(Bucket=BUCKET, Key=pack, VersionId=version, BypassGovernanceRetention=True),
        lambda: s3.put_object_retention(
            Bucket=BUCKET,
            Key=pack,
            VersionId=version,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(days=1)},
        ),
        lambda: s3.delete_object(Bucket=BUCKET, Key=CONFIG_KEY),
        lambda: s3.delete_bucket_policy(Bucket=BUCKET),
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        _refused(refused)
    assert _config() == config
    # A delete without a version only stacks a delete marker on a versioned bucket: the locked version stays.
    s3.delete_object(Bucket=BUCKET, Key=pack)
    assert client("s3").get_object(Bucket=BUCKET, Key=pack, VersionId=version)["Body"].read() == b"locked"


def test_a_backup_with_the_protected_roles_succeeds_writing_only_new_objects(air_gap: AirGap, tmp_path: Path) -> None:
    # The engine's whole write path (locks, packs, index, manifest) under the add-only policy: any write without
    # If-None-Match outside staging/ and locks/ is an explicit deny, and fails the backup.
    source = tmp_path / "source"
    source.mkdir()
    for number in range(5):
        (source / f"file-{number}.txt").write_bytes(f"contents {number}\n".encode() * 200)
    backup = air_gap.protected_role(
        "Backup1",
        "FunctionsBackupPrepareServiceRole",
        "FunctionsBackupWorkerServiceRole",
        "FunctionsBackupCommitServiceRole",
    )

    # As the deployed functions open it: they lock by the stack's settings, not by reading object-lock's versions.
    storage = S3Storage(BUCKET, s3=backup.client("s3"))
    storage.lock_policy = VaultObjectLock.fixed(ObjectLockSettings(mode="GOVERNANCE", days=LOCK_DAYS))
    vault = Vault.open(storage)
    first = run_backup(vault, open_source(str(source)))
    (source / "file-0.txt").write_bytes(b"changed\n")
    second = run_backup(vault, open_source(str(source)))

    assert first.id != second.id
    assert {first.id, second.id} <= {rp.id for rp in list_recovery_points(Vault.open(S3Storage(BUCKET)))}
    assert first.stats.packs >= 1
    listed = client("s3").list_objects_v2(Bucket=BUCKET, Prefix="data/")["Contents"]
    pack = next(o["Key"] for o in listed if pack_id_of_key(o["Key"]))
    with pytest.raises(ClientError) as overwrite:
        backup.client("s3").put_object(Bucket=BUCKET, Key=pack, Body=b"x")
    _refused(overwrite)


def test_protected_admin_cannot_run_or_change_the_vault_accounts_maintenance(air_gap: AirGap) -> None:
    admin = air_gap.protected_role("Admin3")  # every permission its own account can give
    machine = air_gap.vault.outputs["MaintenanceStateMachineArn"]
    forget = next(
        arn for logical, arn in air_gap.vault.arns.items() if logical.startswith("FunctionsMaintenanceForgetPlan")
    )
    for attempt in (
        lambda: admin.client("stepfunctions").start_execution(stateMachineArn=machine, input="{}"),
        lambda: admin.client("lambda").invoke(FunctionName=forget, Payload=b"{}"),
        lambda: admin.client("scheduler").delete_schedule(Name="vaultline-maintenance"),
    ):
        with pytest.raises(ClientError) as refused:
            attempt()
        _refused(refused)
    # The control: the vault account's schedule is still there to start it.
    assert client("scheduler").get_schedule(Name="vaultline-maintenance")["Target"]["Arn"] == machine


def _write_round(source: Path, round_: int) -> None:
    """Replace the source's files with ones of this round only, so a forgotten round leaves only garbage packs."""
    for old in source.glob("*"):
        old.unlink()
    for number in range(4):
        (source / f"round-{round_}-{number}.bin").write_bytes(f"round {round_} file {number} ".encode() * 3000)


def _packs() -> set[str]:
    listed = client("s3").list_objects_v2(Bucket=BUCKET, Prefix="data/").get("Contents", [])
    return {o["Key"] for o in listed if pack_id_of_key(o["Key"])}


def _retained_until(key: str) -> datetime:
    until: datetime = client("s3").head_object(Bucket=BUCKET, Key=key)["ObjectLockRetainUntilDate"]
    return until


def test_the_vault_accounts_maintenance_forgets_prunes_and_extends_locks_as_the_vault_account(
    air_gap: AirGap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    air_gap.redeploy()  # a vault holding only this test's recovery points (the others write keys of their own)
    backup = air_gap.protected_role(
        "Backup2",
        "FunctionsBackupPrepareServiceRole",
        "FunctionsBackupWorkerServiceRole",
        "FunctionsBackupCommitServiceRole",
    )
    source = tmp_path / "source"
    source.mkdir()
    storage = S3Storage(BUCKET, s3=backup.client("s3"))
    # The first recovery point's lock has lapsed (it was written with none); the second's lapses in 3 days, before
    # maintenance's next-but-one run, so maintenance must extend it to the vault's 7 days.
    storage.lock_policy = VaultObjectLock.fixed(None)
    _write_round(source, 1)
    first = run_backup(Vault.open(storage), open_source(str(source)))
    first_packs = _packs()
    storage.lock_policy = VaultObjectLock.fixed(ObjectLockSettings(mode="GOVERNANCE", days=3))
    _write_round(source, 2)
    second = run_backup(Vault.open(storage), open_source(str(source)))
    assert first_packs and _packs() > first_packs
    # As the protected account, none of it could be undone: forgetting the first is the vault account's.
    with pytest.raises(ClientError) as forget:
        backup.client("s3").delete_object(Bucket=BUCKET, Key=f"{MANIFEST_PREFIX}{first.id}")
    _refused(forget)

    scheduled = json.loads(client("scheduler").get_schedule(Name="vaultline-maintenance")["Target"]["Input"])
    scheduled["policies"] = [{"source": first.source, "rules": {"keep_last": 1}}]
    scheduled["verify"] = {"subset": "100%"}
    scheduled["drill"]["enabled"] = True  # into the vault account's own scratch bucket, as its maintenance role may
    decisions: list[tuple[str, str, str, bool]] = []
    enforcer = air_gap.embedded.iam
    assert enforcer is not None
    decide = enforcer.decide

    def recorded(caller: Any, check: Any) -> Any:
        verdict = decide(caller, check)
        decisions.append((caller.arn, check.action, check.resource, verdict.allowed))
        return verdict

    monkeypatch.setattr(enforcer, "decide", recorded)
    started = datetime.now(UTC)
    output = follow(start(air_gap.vault.outputs["MaintenanceStateMachineArn"], scheduled), poll_seconds=0.05)
    results = output["results"]

    assert results["forget"]["removed"] == [first.id], results["forget"]
    assert [rp.id for rp in list_recovery_points(Vault.open(S3Storage(BUCKET)))] == [second.id]
    assert results["prune"]["packs_deleted"] >= len(first_packs), results["prune"]
    assert not _packs() & first_packs, "prune removed every pack only the forgotten recovery point needed"
    assert results["lock"]["objects_extended"] >= 1 + len(_packs()), results["lock"]
    for key in (f"{MANIFEST_PREFIX}{second.id}", *_packs()):
        assert _retained_until(key) >= started + timedelta(days=LOCK_DAYS) - timedelta(minutes=5), key
    assert results["verify"]["ok"] and results["verify"]["recovery_points"] == 1, results["verify"]
    drill = results["drill"]
    assert drill["ok"] and drill["cleaned_up"] and drill["recovery_point"] == second.id and drill["verified"] == 4, (
        drill
    )

    # Who did it: only the vault account's own roles, each bounded by what its maintenance role may do.
    changes = {"s3:DeleteObject", "s3:PutObjectRetention"}
    done = [(arn, resource) for arn, action, resource, allowed in decisions if allowed and action in changes]
    assert any(f":::{BUCKET}/{MANIFEST_PREFIX}{first.id}" in resource for _, resource in done)
    assert any(f":::{BUCKET}/data/" in resource for _, resource in done)
    roles = {arn.split("/")[1] for arn, _ in done}
    assert all(arn.startswith(f"arn:aws:sts::{VAULT_ACCOUNT}:assumed-role/") for arn, _ in done), done
    boundary = air_gap.vault.physical[next(k for k in air_gap.vault.physical if k.startswith("MaintenanceBoundary"))]
    for role in roles:
        assert (
            client("iam").get_role(RoleName=role)["Role"]["PermissionsBoundary"]["PermissionsBoundaryArn"] == boundary
        )
    assert not [d for d in decisions if PROTECTED in d[0]], "no step ran as the protected account"


def test_no_role_of_the_vault_account_does_more_to_the_vault_than_its_maintenance_role(air_gap: AirGap) -> None:
    # Prune's mark step's own policy lets it write anywhere in the vault but config and key slots (its spec names
    # no prefixes); the stack's boundary, the maintenance role's statements, keeps it to what maintenance writes.
    (role,) = [
        arn
        for logical, arn in air_gap.vault.arns.items()
        if logical.startswith("FunctionsMaintenancePruneMarkServiceRole") and ":role/" in arn
    ]
    mark = role_credentials(role, "prune-mark").session("us-east-1").client("s3")
    hold = _key("holds/")

    mark.put_object(Bucket=BUCKET, Key=_key("staging/"), Body=b"{}")  # the control: its staging is maintenance's
    with pytest.raises(ClientError) as refused:
        mark.put_object(Bucket=BUCKET, Key=hold, Body=b"{}")
    assert "because no permissions boundary allows the s3:PutObject action" in _refused(refused)
    assert client("s3").list_objects_v2(Bucket=BUCKET, Prefix=hold).get("KeyCount", 0) == 0


def test_the_vault_accounts_schedule_starts_its_maintenance_as_the_scheduler_does(air_gap: AirGap) -> None:
    air_gap.redeploy()  # an empty vault: the run has nothing to forget, and finds nothing wrong
    # Started as the schedule's own role (bounded like every role of the vault stack), with the input it sends.
    execution = fire_schedule("vaultline-maintenance")
    output = follow(execution, poll_seconds=0.05)

    machine = client("stepfunctions").describe_execution(executionArn=execution)["stateMachineArn"]
    assert machine == air_gap.vault.outputs["MaintenanceStateMachineArn"]
    results = output["results"]
    assert results["forget"]["removed_count"] == 0 and results["prune"]["packs_deleted"] == 0, results
    assert results["verify"]["ok"] and results["lock"]["enabled"], results
