"""IAM as AWS evaluates it: the template's roles and resource policies decide every call in the embedded AWS."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.e2e.conftest import Deployment, deploy_stack
from vaultline.aws import client
from vaultline.cli.stack import ExecutionFailed, follow, start
from vaultline_dev.embedded import EmbeddedAws
from vaultline_dev.embedded.deploy import fire_schedule
from vaultline_dev.embedded.iam import Caller
from vaultline_dev.embedded.iam_requests import Check
from vaultline_dev.embedded.identity import role_credentials

pytestmark = pytest.mark.e2e

Template = dict[str, Any]


def _logical(resources: dict[str, Any], prefix: str, kind: str | None = None) -> str:
    (found,) = [k for k, r in resources.items() if k.startswith(prefix) and (kind is None or r["Type"] == kind)]
    return found


def _as_role(d: Deployment, role_prefix: str) -> boto3.session.Session:
    role_arn = d.deployed.arns[_logical(d.deployed.resources, role_prefix, "AWS::IAM::Role")]
    return role_credentials(role_arn, "iam-test").session("us-east-1")


def _vault(d: Deployment) -> str:
    return d.stack.vault_bucket


def _demo_source(d: Deployment) -> str:
    return str(d.stack.plans["demo"][0]["source"]["url"]).removeprefix("s3://")


def _denied(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = error.value.response
    return (
        response["Error"]["Code"],
        response["Error"].get("Message", ""),
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def _edited(template: Template, edit: Callable[[dict[str, Any]], None]) -> Template:
    changed = copy.deepcopy(template)
    edit(changed["Resources"])
    return changed


def _role_policy_statements(resources: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    role = _logical(resources, role_prefix, "AWS::IAM::Role")
    return [
        statement
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]
    ]


def _drop_statements(resources: dict[str, Any], role_prefix: str, doomed: Callable[[dict[str, Any]], bool]) -> None:
    role = _logical(resources, role_prefix, "AWS::IAM::Role")
    dropped = 0
    for resource in resources.values():
        if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
            kept = [s for s in statements if not doomed(s)]
            dropped += len(statements) - len(kept)
            resource["Properties"]["PolicyDocument"]["Statement"] = kept
    assert dropped, f"no statement of {role_prefix} matched: the test edits nothing"


def _history_text(execution_arn: str) -> str:
    sfn = client("stepfunctions")
    events: list[Any] = []
    for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        events += page["events"]
    return json.dumps(events, default=str)


def _backup_failing(d: Deployment) -> str:
    # The plan's own source: the only bucket its roles may read, as on AWS.
    source = _demo_source(d)
    client("s3").create_bucket(Bucket=source)
    client("s3").put_object(Bucket=source, Key="a.txt", Body=b"a")
    execution = start(d.stack.backup_state_machine, d.plan_input(f"s3://{source}"))
    with pytest.raises(ExecutionFailed):
        follow(execution, poll_seconds=0.05)
    return _history_text(execution)


def test_backup_worker_role_may_write_packs_but_not_delete_them_or_read_an_unplanned_bucket(
    deployment: Deployment,
) -> None:
    s3 = _as_role(deployment, "FunctionsBackupWorkerServiceRole").client("s3")
    vault = _vault(deployment)
    client("s3").create_bucket(Bucket="unplanned")
    client("s3").put_object(Bucket="unplanned", Key="secret", Body=b"s")

    s3.put_object(Bucket=vault, Key="packs/ab/pack-1", Body=b"pack")

    with pytest.raises(ClientError) as delete:
        s3.delete_object(Bucket=vault, Key="packs/ab/pack-1")
    code, message, status = _denied(delete)
    assert (code, status) == ("AccessDenied", 403)
    assert "assumed-role/FunctionsBackupWorkerServiceRole" in message
    assert f"s3:DeleteObject on resource: arn:aws:s3:::{vault}/packs/ab/pack-1" in message
    assert "because no identity-based policy allows the s3:DeleteObject action" in message
    with pytest.raises(ClientError) as read:
        s3.get_object(Bucket="unplanned", Key="secret")
    assert (
        _denied(read)[0] == "AccessDenied"
        and "s3:GetObject on resource: arn:aws:s3:::unplanned/secret" in (_denied(read)[1])
    )


def test_other_services_answer_access_denied_in_their_own_protocol(deployment: Deployment) -> None:
    session = _as_role(deployment, "FunctionsBackupWorkerServiceRole")
    table_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/not-a-source"
    with pytest.raises(ClientError) as scan:
        session.client("dynamodb").scan(TableName="not-a-source")
    code, message, status = _denied(scan)
    assert (code, status) == ("AccessDeniedException", 400)
    assert f"dynamodb:Scan on resource: {table_arn}" in message
    with pytest.raises(ClientError) as invoke:
        session.client("lambda").invoke(
            FunctionName=deployment.deployed.physical[
                _logical(deployment.deployed.resources, "FunctionsBackupPrepare", "AWS::Lambda::Function")
            ]
        )
    assert _denied(invoke)[0] == "AccessDeniedException" and "lambda:InvokeFunction" in _denied(invoke)[1]


def test_missing_key_answers_404_to_a_role_that_may_list_the_bucket_and_403_to_one_that_may_not(
    deployment: Deployment,
) -> None:
    worker = _as_role(deployment, "FunctionsBackupWorkerServiceRole").client("s3")
    source = _demo_source(deployment)
    client("s3").create_bucket(Bucket=source)

    # The vault, and the plan's source (issue 9: the worker may ListBucket its source under the plan's prefix, so a
    # key deleted between listing and reading is a 404 the worker records as vanished, not a 403 that fails the run).
    for bucket, key in ((_vault(deployment), "packs/missing"), (source, "vanished.txt")):
        with pytest.raises(ClientError) as miss:
            worker.get_object(Bucket=bucket, Key=key)
        assert _denied(miss)[0] == "NoSuchKey", bucket
    # A role that may GetObject but not ListBucket: S3 will not say whether the key exists.
    iam = client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role_arn = iam.create_role(RoleName="objects-only", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    reads = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{source}/*"}
    iam.put_role_policy(
        RoleName="objects-only",
        PolicyName="reads",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [reads]}),
    )
    s3 = role_credentials(role_arn, "iam-test").session("us-east-1").client("s3")
    with pytest.raises(ClientError) as source_miss:
        s3.get_object(Bucket=source, Key="vanished.txt")
    code, message, status = _denied(source_miss)
    assert (code, status) == ("AccessDenied", 403)
    assert f"s3:ListBucket on resource: arn:aws:s3:::{source}" in message
    with pytest.raises(ClientError) as head_miss:
        s3.head_object(Bucket=source, Key="vanished.txt")
    assert _denied(head_miss)[2] == 403


def test_the_vault_bucket_policy_denies_a_request_without_tls_whatever_the_identity_allows(
    deployment: Deployment,
) -> None:
    assert deployment.aws.iam is not None
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    caller = Caller("arn:aws:sts::123456789012:assumed-role/Anyone/s", [everything])
    obj = f"arn:aws:s3:::{_vault(deployment)}/config"

    plain = deployment.aws.iam.decide(caller, Check("s3:PutObject", obj, {"aws:SecureTransport": "false"}))
    tls = deployment.aws.iam.decide(caller, Check("s3:PutObject", obj))

    assert (plain.result, plain.denials) == ("ExplicitlyDenied", ["Explicit:resource"])
    assert tls.allowed


def test_a_bucket_policy_deny_decides_even_when_the_role_allows(embedded: EmbeddedAws, template: Template) -> None:
    def deny_worker_packs(resources: dict[str, Any]) -> None:
        worker = _logical(resources, "FunctionsBackupWorkerServiceRole", "AWS::IAM::Role")
        vault = _logical(resources, "VaultBucket", "AWS::S3::Bucket")
        policy = resources[_logical(resources, "VaultBucketPolicy")]["Properties"]["PolicyDocument"]
        policy["Statement"].append(
            {
                "Effect": "Deny",
                "Principal": {"AWS": {"Fn::GetAtt": [worker, "Arn"]}},
                "Action": "s3:PutObject",
                "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [vault, "Arn"]}, "/packs/*"]]},
            }
        )

    d = deploy_stack(embedded, _edited(template, deny_worker_packs))
    s3 = _as_role(d, "FunctionsBackupWorkerServiceRole").client("s3")

    s3.put_object(Bucket=_vault(d), Key="index/1", Body=b"i")
    with pytest.raises(ClientError) as put:
        s3.put_object(Bucket=_vault(d), Key="packs/ab/1", Body=b"p")
    assert "s3:PutObject" in _denied(put)[1] and "with an explicit deny in a resource-based policy" in _denied(put)[1]


def test_a_key_policy_that_does_not_delegate_to_the_account_denies_what_the_role_allows(
    embedded: EmbeddedAws, template: Template
) -> None:
    def key_for_restore_worker_only(resources: dict[str, Any]) -> None:
        restore = _logical(resources, "FunctionsRestoreWorkerServiceRole", "AWS::IAM::Role")
        key = resources[_logical(resources, "VaultKey", "AWS::KMS::Key")]["Properties"]
        (statement,) = key["KeyPolicy"]["Statement"]
        statement["Principal"] = {"AWS": {"Fn::GetAtt": [restore, "Arn"]}}

    d = deploy_stack(embedded, _edited(template, key_for_restore_worker_only))
    key_arn = d.deployed.arns[_logical(d.deployed.resources, "VaultKey", "AWS::KMS::Key")]
    worker = _as_role(d, "FunctionsBackupWorkerServiceRole")

    _as_role(d, "FunctionsRestoreWorkerServiceRole").client("kms").decrypt(
        CiphertextBlob=client("kms").encrypt(KeyId=key_arn, Plaintext=b"x")["CiphertextBlob"]
    )
    with pytest.raises(ClientError) as direct:
        worker.client("kms").generate_data_key(KeyId=key_arn, KeySpec="AES_256")
    code, message, _ = _denied(direct)
    assert code == "AccessDeniedException"
    assert f"kms:GenerateDataKey on resource: {key_arn} because no resource-based policy allows" in message
    # S3 asks KMS as the caller when it encrypts an object of an SSE-KMS bucket: the write fails the same way.
    client("s3").put_bucket_encryption(
        Bucket=_vault(d),
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}}]
        },
    )
    with pytest.raises(ClientError) as through_s3:
        worker.client("s3").put_object(Bucket=_vault(d), Key="packs/ab/2", Body=b"p")
    assert (
        _denied(through_s3)[0] == "AccessDenied"
        and f"kms:GenerateDataKey on resource: {key_arn}" in (_denied(through_s3)[1])
    )


def test_backup_fails_with_access_denied_when_its_state_machine_may_not_invoke_prepare(
    embedded: EmbeddedAws, template: Template
) -> None:
    def no_prepare_invoke(resources: dict[str, Any]) -> None:
        prepare = _logical(resources, "FunctionsBackupPrepare", "AWS::Lambda::Function")
        _drop_statements(
            resources,
            "WorkflowsBackupStateMachineRole",
            lambda s: s["Action"] == "lambda:InvokeFunction" and prepare in json.dumps(s["Resource"]),
        )

    history = _backup_failing(deploy_stack(embedded, _edited(template, no_prepare_invoke)))

    assert "Lambda.AccessDeniedException" in history
    assert "WorkflowsBackupStateMachineRole" in history and "lambda:InvokeFunction on resource" in history


def test_backup_fails_with_access_denied_when_its_item_reader_may_not_read_the_work_list(
    embedded: EmbeddedAws, template: Template
) -> None:
    def drop_get_object(resources: dict[str, Any]) -> None:
        role = _logical(resources, "WorkflowsBackupStateMachineRole", "AWS::IAM::Role")
        changed = 0
        for resource in resources.values():
            if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role} in resource["Properties"]["Roles"]:
                for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    if "s3:GetObject" in actions:
                        changed += 1
                        statement["Action"] = [a for a in actions if a != "s3:GetObject"] or ["s3:GetObjectAcl"]
        assert changed

    history = _backup_failing(deploy_stack(embedded, _edited(template, drop_get_object)))

    assert "AccessDenied" in history and "s3:GetObject" in history


def test_a_schedule_starts_its_state_machine_as_the_schedule_role(embedded: EmbeddedAws, template: Template) -> None:
    def no_start(resources: dict[str, Any]) -> None:
        _drop_statements(resources, "SchedulesRole", lambda s: "states:StartExecution" in json.dumps(s["Action"]))

    d = deploy_stack(embedded, _edited(template, no_start))
    schedule = next(s for s in d.deployed.schedules if "demo" in s)

    with pytest.raises(ClientError) as fired:
        fire_schedule(schedule)
    code, message, _ = _denied(fired)
    assert code == "AccessDeniedException"
    assert "assumed-role/SchedulesRole" in message and "states:StartExecution" in message


def test_backup_fails_with_access_denied_when_prepare_may_not_write_the_vault(
    embedded: EmbeddedAws, template: Template
) -> None:
    # Prepare, not the worker: moto's Distributed Map reports a run whose iteration failed as succeeded, so a
    # worker's denial never reaches the execution's history (the Commit after it fails instead).
    def no_vault_write(resources: dict[str, Any]) -> None:
        _drop_statements(resources, "FunctionsBackupPrepareServiceRole", lambda s: s.get("Sid") == "VaultWrite")

    history = _backup_failing(deploy_stack(embedded, _edited(template, no_vault_write)))

    assert '"Prepare"' in history and "VaultError" in history and "AccessDenied" in history


def test_backup_prepare_may_read_its_sources_inventory_folder_and_no_other(deployment: Deployment) -> None:
    s3 = _as_role(deployment, "FunctionsBackupPrepareServiceRole").client("s3")
    client("s3").create_bucket(Bucket="inventories")
    for key in ("reports/inventoried/daily/2026-01-02T00-00Z/manifest.json", "reports/other-bucket/daily/x.json"):
        client("s3").put_object(Bucket="inventories", Key=key, Body=b"{}")

    folder = "reports/inventoried/daily/"
    listed = s3.list_objects_v2(Bucket="inventories", Prefix=folder, Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == [f"{folder}2026-01-02T00-00Z/"]
    assert s3.get_object(Bucket="inventories", Key=f"{folder}2026-01-02T00-00Z/manifest.json")["Body"].read() == b"{}"

    with pytest.raises(ClientError) as read:
        s3.get_object(Bucket="inventories", Key="reports/other-bucket/daily/x.json")
    assert _denied(read)[0] == "AccessDenied" and "s3:GetObject" in _denied(read)[1]
    with pytest.raises(ClientError) as listing:
        s3.list_objects_v2(Bucket="inventories", Prefix="reports/")
    assert _denied(listing)[0] == "AccessDenied"
    worker = _as_role(deployment, "FunctionsBackupWorkerServiceRole").client("s3")
    with pytest.raises(ClientError) as by_worker:
        worker.get_object(Bucket="inventories", Key=f"{folder}2026-01-02T00-00Z/manifest.json")
    assert _denied(by_worker)[0] == "AccessDenied"
