"""The real state machines, synthesized by CDK, executed by moto's interpreter with our handlers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline.cli.main import main as cli
from vaultline.cli.stack import ExecutionFailed, follow, start
from vaultline.repository.manifest import iter_entries, list_recovery_points
from vaultline.repository.vault import Vault
from vaultline_dev.embedded.deploy import fire_schedule

pytestmark = pytest.mark.e2e


def _fill(bucket: str, objects: dict[str, bytes], **extra: Any) -> None:
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    for key, body in objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)


def _sample(n: int = 40) -> dict[str, bytes]:
    objects = {f"docs/{i:03d}.txt": (f"line {i}\n" * (i * 50 + 1)).encode() for i in range(n)}
    objects["big/blob.bin"] = bytes(range(256)) * (20 * 4096)  # 20 MiB: CDC chunks and a multipart restore
    return objects


def _backup(d: Deployment, bucket: str, **extra: Any) -> dict[str, Any]:
    output = follow(start(d.stack.backup_state_machine, d.plan_input(f"s3://{bucket}", **extra)), poll_seconds=0.05)
    committed: dict[str, Any] = output["committed"]
    return committed


def _staging_keys(d: Deployment) -> list[str]:
    s3 = client("s3")
    listing = s3.list_objects_v2(Bucket=d.stack.vault_bucket, Prefix="staging/")
    return [o["Key"] for o in listing.get("Contents", [])]


def _lock_keys(d: Deployment) -> list[str]:
    listing = client("s3").list_objects_v2(Bucket=d.stack.vault_bucket, Prefix="locks/")
    return [o["Key"] for o in listing.get("Contents", [])]


def test_scheduled_backup_restores_bit_exact_through_the_restore_state_machine(deployment: Deployment) -> None:
    source = deployment.stack.plans["demo"][0]["source"]["url"][len("s3://") :]
    objects = _sample()
    _fill(source, objects, ContentType="text/plain", Metadata={"team": "data"}, Tagging="tier=hot")
    schedule = next(s for s in deployment.deployed.schedules if "demo" in s)

    committed = follow(fire_schedule(schedule), poll_seconds=0.05)["committed"]

    assert committed["stats"]["objects"] == len(objects)
    client("s3").create_bucket(Bucket="restored")
    finished = follow(
        start(
            deployment.stack.restore_state_machine,
            {"recovery_point": committed["recovery_point"], "target": "s3://restored", "worker_concurrency": 4},
        ),
        poll_seconds=0.05,
    )["finished"]
    assert finished["objects"] == len(objects)
    s3 = client("s3")
    for key, body in objects.items():
        restored = s3.get_object(Bucket="restored", Key=key)
        assert restored["Body"].read() == body, key
        assert restored["Metadata"] == {"team": "data"}
        assert s3.get_object_tagging(Bucket="restored", Key=key)["TagSet"] == [{"Key": "tier", "Value": "hot"}]
    assert _staging_keys(deployment) == []
    assert _lock_keys(deployment) == [], "the backup's shared vault lock outlived the run"


def test_second_run_reads_only_changed_objects(deployment: Deployment) -> None:
    objects = _sample(20)
    _fill("incremental", objects)
    first = _backup(deployment, "incremental")
    client("s3").put_object(Bucket="incremental", Key="docs/000.txt", Body=b"changed")

    second = _backup(deployment, "incremental")

    assert first["stats"]["objects_read"] == len(objects)
    assert second["stats"]["objects_read"] == 1
    assert second["stats"]["objects_unchanged"] == len(objects) - 1
    assert second["stats"]["bytes_stored"] < 64 * 1024


def test_worker_failing_once_is_retried_without_duplicate_data(deployment: Deployment) -> None:
    from vaultline.errors import VaultlineRetryable
    from vaultline_dev.embedded.lambdas import invocations

    _fill("flaky", _sample(10))
    failures = {"left": 1}

    def fail_first_worker(function: str, event: dict[str, Any]) -> None:
        if "Worker" in function and "Backup" in function and failures["left"]:
            failures["left"] -= 1
            raise VaultlineRetryable("injected transient failure")

    invocations.interceptors.append(fail_first_worker)
    committed = _backup(deployment, "flaky")

    assert failures["left"] == 0
    assert sum(v for k, v in invocations.errors.items() if "Worker" in k) == 1
    vault = Vault.open(deployment.stack.vault_url)
    stored_ids = [entry.id for entries in vault.index.packs.values() for entry in entries]
    assert len(stored_ids) == len(set(stored_ids)), "a retried worker stored a blob twice"
    assert committed["stats"]["objects"] == 11


def test_worker_that_always_fails_aborts_without_a_recovery_point(deployment: Deployment) -> None:
    from vaultline_dev.embedded.lambdas import invocations

    _fill("broken", _sample(5))
    events = client("events")
    sqs = client("sqs")
    queue = sqs.create_queue(QueueName="failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="failed-backups", EventPattern=json.dumps({"detail-type": ["Vaultline Backup Failed"]}))
    events.put_targets(Rule="failed-backups", Targets=[{"Id": "q", "Arn": queue_arn}])

    def always_fail(function: str, event: dict[str, Any]) -> None:
        if "Worker" in function and "Backup" in function:
            raise RuntimeError("injected permanent failure")

    invocations.interceptors.append(always_fail)
    with pytest.raises(ExecutionFailed, match=r"FAILED \(BackupFailed\)") as failed:
        _backup(deployment, "broken")
    # The item's own error lives in its child execution; the CLI finds it there, as it must on AWS.
    assert "1 of 1 items failed; the latest, arn:aws:states:" in str(failed.value)
    assert "injected permanent failure" in str(failed.value)

    # As on AWS, the map (which tolerates no failure) fails itself; Commit never runs on a partial result.
    (execution,) = client("stepfunctions").list_executions(stateMachineArn=deployment.stack.backup_state_machine)[
        "executions"
    ]
    history = client("stepfunctions").get_execution_history(executionArn=execution["executionArn"], maxResults=1000)
    failed_runs = [e["mapRunFailedEventDetails"] for e in history["events"] if e["type"] == "MapRunFailed"]
    assert [run["error"] for run in failed_runs] == ["States.ExceedToleratedFailureThreshold"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history["events"] if "stateEnteredEventDetails" in e]
    assert "Abort" in entered and "Commit" not in entered
    events = history["events"]
    (map_run,) = [e["mapRunStartedEventDetails"]["mapRunArn"] for e in events if e["type"] == "MapRunStarted"]
    (child,) = client("stepfunctions").list_executions(mapRunArn=map_run)["executions"]
    assert child["status"] == "FAILED" and child["mapRunArn"] == map_run
    assert client("stepfunctions").list_executions(mapRunArn=map_run, statusFilter="SUCCEEDED")["executions"] == []

    vault = Vault.open(deployment.stack.vault_url)
    assert list_recovery_points(vault) == []
    assert _staging_keys(deployment) == []
    assert _lock_keys(deployment) == [], "Abort left the run's vault lock behind"
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert any("Vaultline Backup Failed" in m["Body"] for m in messages)


def test_empty_bucket_commits_an_empty_recovery_point(deployment: Deployment) -> None:
    client("s3").create_bucket(Bucket="empty")
    committed = _backup(deployment, "empty")
    assert committed["stats"]["objects"] == 0
    vault = Vault.open(deployment.stack.vault_url)
    (rp,) = list_recovery_points(vault)
    assert list(iter_entries(vault, rp)) == []


@pytest.mark.slow
def test_bucket_of_many_pages_with_a_key_list_over_256_kib(deployment: Deployment) -> None:
    from moto.s3.models import s3_backends

    client("s3").create_bucket(Bucket="many")
    # Long keys put the key list over Step Functions' 256 KiB payload limit with few objects (1,200 objects, two
    # listing pages): what this pins is that no key list rides in a payload, not the object count, and every
    # object more is a second of embedded Lambda work.
    padding = "very/long/path/segment/for/payload/size/" * 5
    keys = [f"tenant-{i % 97:03d}/{padding}object-{i:06d}.json" for i in range(1_200)]
    assert sum(len(k) for k in keys) > 256 * 1024
    # Filled through moto's backend directly: a PUT per object over HTTP would cost fixture time.
    backend = s3_backends["123456789012"]["aws"]
    for key in keys:
        backend.put_object("many", key, key.encode())
    execution = start(deployment.stack.backup_state_machine, deployment.plan_input("s3://many", worker_concurrency=4))

    committed = follow(execution, poll_seconds=0.2)["committed"]

    assert committed["stats"]["objects"] == len(keys)
    description = client("stepfunctions").describe_execution(executionArn=execution)
    assert len(description["output"]) < 8 * 1024, "a state-machine payload grew with the bucket"
    vault = Vault.open(deployment.stack.vault_url)
    (rp,) = list_recovery_points(vault)
    assert sorted(e.key for e in iter_entries(vault, rp)) == sorted(keys)


def test_cli_plan_run_and_remote_restore(deployment: Deployment, capsys: pytest.CaptureFixture[str]) -> None:
    source = deployment.stack.plans["demo"][0]["source"]["url"][len("s3://") :]
    _fill(source, {"a.txt": b"a", "b/c.txt": b"c"})
    client("s3").create_bucket(Bucket="cli-restore")
    # The demo plan's second source is a table: `plan run` starts one execution per source, in order.
    table = deployment.stack.plans["demo"][1]["source"]["url"][len("dynamodb://") :]
    ddb = client("dynamodb")
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for i in range(3):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})

    assert cli(["plan", "run", "demo", "--json", "--poll", "0.05"]) == 0
    bucket_run, table_run = json.loads(capsys.readouterr().out)
    assert table_run["source"] == f"dynamodb://{table}"
    rp = bucket_run["recovery_point"]
    assert cli(["restore", rp, "--to", "s3://cli-restore", "--remote", "--json", "--poll", "0.05"]) == 0
    assert json.loads(capsys.readouterr().out)["objects"] == 2
    assert client("s3").get_object(Bucket="cli-restore", Key="b/c.txt")["Body"].read() == b"c"
    target = f"dynamodb://{table}-cli-restored"
    assert cli(["restore", table_run["recovery_point"], "--to", target, "--remote", "--json", "--poll", "0.05"]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == 3
    assert ddb.get_item(TableName=f"{table}-cli-restored", Key={"pk": {"S": "k2"}})["Item"]["n"] == {"N": "2"}
    assert cli(["plan", "run", "nope"]) == 2
