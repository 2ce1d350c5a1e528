"""Retention after each backup, and the scheduled Maintenance state machine, on the embedded AWS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline.cli.stack import ExecutionFailed, follow, start
from vaultline.repository.index import list_index_ids
from vaultline.repository.layout import catalog_key
from vaultline.repository.manifest import list_recovery_points
from vaultline.repository.sharded_index import ShardedIndex
from vaultline.repository.vault import Vault

pytestmark = pytest.mark.e2e

BUCKET = "vaultline-demo-source"  # the demo plan's source: the functions may read only planned buckets


def _backup(d: Deployment, round_: int) -> dict[str, Any]:
    """Each round replaces the bucket's contents with data of its own, so a forgotten round leaves garbage packs."""
    s3 = client("s3")
    for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        s3.delete_object(Bucket=BUCKET, Key=item["Key"])
    for i in range(5):
        s3.put_object(Bucket=BUCKET, Key=f"round/{i}.bin", Body=(f"round {round_} object {i} ".encode() * 4000))
    request = d.plan_input(f"s3://{BUCKET}", retention={"keep_last": 2}, worker_concurrency=2)
    output: dict[str, Any] = follow(start(d.stack.backup_state_machine, request), poll_seconds=0.05)
    return output


def _maintenance_input(d: Deployment) -> dict[str, Any]:
    """What the daily schedule sends, with this test's keep rule for its (planned) source, a drill and a full read."""
    schedule = client("scheduler").get_schedule(Name="vaultline-maintenance")
    sent: dict[str, Any] = json.loads(schedule["Target"]["Input"])
    planned = [p for p in sent["policies"] if p["source"] == f"s3://{BUCKET}"]
    assert len(planned) == 1, sent["policies"]
    planned[0]["rules"] = {"keep_last": 2}
    sent["verify"] = {"subset": "100%"}
    sent["drill"]["enabled"] = True
    return sent


def test_retention_after_commit_then_maintenance_prunes_verifies_and_drills(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaultline_dev.embedded.lambdas import LambdaContext, invocations

    client("s3").create_bucket(Bucket=BUCKET)
    sqs, events = client("sqs"), client("events")
    queue = sqs.create_queue(QueueName="maintenance-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="maintenance", EventPattern=json.dumps({"detail-type": ["Vaultline Maintenance Succeeded"]}))
    events.put_targets(Rule="maintenance", Targets=[{"Id": "q", "Arn": queue_arn}])

    outputs = [_backup(deployment, n) for n in range(3)]

    assert [o["retention_result"]["removed"] for o in outputs[:2]] == [[], []]
    first = outputs[0]["committed"]["recovery_point"]
    assert outputs[2]["retention"] == {"keep_last": 2}
    assert outputs[2]["retention_result"] == {
        "source": f"s3://{BUCKET}",
        "applied": True,
        "deferred": False,
        "recovery_points": 0,
        "removed": [first],
        "kept": 2,
        "held_count": 0,
    }
    vault = Vault.open(deployment.stack.vault_url)
    kept = sorted(rp.id for rp in list_recovery_points(vault))
    assert kept == sorted(o["committed"]["recovery_point"] for o in outputs[1:])

    scheduled = _maintenance_input(deployment)
    scratch = scheduled["drill"]["scratch"]
    assert scratch.startswith("s3://") and scratch.endswith("/drill-scratch")
    arn = deployment.deployed.outputs["MaintenanceStateMachineArn"]
    # Every verify item's time budget is spent once it starts: each item verifies one pack or one recovery point
    # per invocation, so the map item's cursor loop (VerifyItemDone -> VerifyNextPart -> VerifyItem) runs for real.
    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", lambda self: 1_000)
    output = follow(start(arn, scheduled), poll_seconds=0.05)
    results = output["results"]

    assert results["forget"]["removed_count"] == 0 and results["forget"]["kept"] == 2, results["forget"]
    prune = results["prune"]
    assert prune["packs_deleted"] >= 1 and prune["bytes_freed"] > 0, prune
    # Compaction ran after the prune: its generation consolidates the pruned index, and the next worker to open the
    # vault (a later backup's) looks chunks up through it rather than loading the whole index.
    compacted = results["compact"]
    assert not compacted["up_to_date"] and compacted["shards"] >= 1 and compacted["bytes_written"] > 0, compacted
    assert vault.storage.exists(catalog_key(compacted["generation"]))
    lookup = Vault.open(deployment.stack.vault_url).lookup
    assert isinstance(lookup, ShardedIndex) and lookup.catalog.generation == compacted["generation"]
    assert sorted(lookup.catalog.index_objects) == sorted(list_index_ids(vault.storage)) and not lookup.recent.packs
    verify = results["verify"]
    assert verify["ok"] and verify["error_count"] == 0 and verify["recovery_points"] == 2, verify
    assert verify["packs_read"] == prune["packs_after"] and verify["objects"] == 10
    item_calls = sum(n for name, n in invocations.calls.items() if "MaintenanceVerifyItem" in name)
    assert item_calls == verify["packs_read"] + verify["recovery_points"] > output["verifying"]["items"]
    assert not [o.key for o in vault.storage.list("staging/verify-")], "the summary clears the verify's run"
    drill = results["drill"]
    assert drill["ok"] and drill["mismatches"] == [] and drill["cleaned_up"], drill
    assert drill["recovery_point"] in kept and drill["verified"] == 5
    scratch_bucket = scratch[len("s3://") :].split("/")[0]
    assert client("s3").list_objects_v2(Bucket=scratch_bucket).get("KeyCount", 0) == 0
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    details = [json.loads(m["Body"])["detail"] for m in messages]
    assert any(d.get("prune", {}).get("packs_deleted") == prune["packs_deleted"] for d in details), details
    # Prune released its exclusive lock across its steps' end and left nothing of its run in staging but the report
    # a rerun of its Finish would return (the next prune's Start deletes it).
    assert list(vault.storage.list("locks/")) == []
    assert [o.key.rsplit("/", 1)[1] for o in vault.storage.list("staging/prune-")] == ["finished.json"]


def test_retention_failure_does_not_fail_the_backup(deployment: Deployment) -> None:
    from vaultline_dev.embedded.lambdas import invocations

    client("s3").create_bucket(Bucket=BUCKET)

    def broken_retention(function: str, event: dict[str, Any]) -> None:
        if "ApplyRetention" in function:
            raise RuntimeError("injected retention failure")

    invocations.interceptors.append(broken_retention)
    output = _backup(deployment, 0)

    assert output["committed"]["stats"]["objects"] == 5
    assert output["retention_error"]["Error"] == "RuntimeError"
    assert "retention_result" not in output


def test_maintenance_failure_sends_the_failed_event(deployment: Deployment) -> None:
    from vaultline_dev.embedded.lambdas import invocations

    def broken_verify(function: str, event: dict[str, Any]) -> None:
        if "MaintenanceVerify" in function:
            raise RuntimeError("injected verify failure")

    client("s3").create_bucket(Bucket=BUCKET)
    sqs, events = client("sqs"), client("events")
    queue = sqs.create_queue(QueueName="maintenance-failures")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="failed-maintenance", EventPattern=json.dumps({"detail-type": ["Vaultline Maintenance Failed"]})
    )
    events.put_targets(Rule="failed-maintenance", Targets=[{"Id": "q", "Arn": queue_arn}])
    _backup(deployment, 0)
    invocations.interceptors.append(broken_verify)

    arn = deployment.deployed.outputs["MaintenanceStateMachineArn"]
    with pytest.raises(ExecutionFailed, match=r"MaintenanceFailed"):
        follow(start(arn, _maintenance_input(deployment)), poll_seconds=0.05)

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    (detail,) = [json.loads(m["Body"])["detail"] for m in messages]
    assert detail["error"]["Error"] == "RuntimeError"
    assert "prune" in detail["results"], "the steps before the failure are reported with it"


@pytest.fixture(scope="session")
def locked_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The stack as cdk.json deploys it: 30 days of governance-mode Object Lock set by the functions per object."""
    from tests.e2e.conftest import E2E_CONTEXT, shared_synth

    context = {k: v for k, v in E2E_CONTEXT.items() if k != "objectLockRetentionDays"}
    return shared_synth(tmp_path_factory, "Vaultline", context)[0]


def test_under_the_deployed_object_lock_runs_tidy_up_and_maintenance_reports_what_the_lock_holds(
    embedded: Any, locked_template: dict[str, Any]
) -> None:
    from tests.e2e.conftest import deploy_stack

    deployment = deploy_stack(embedded, locked_template)
    client("s3").create_bucket(Bucket=BUCKET)
    vault_bucket = deployment.stack.vault_bucket
    lock = client("s3").get_object_lock_configuration(Bucket=vault_bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled" and not lock.get("Rule", {}).get("DefaultRetention"), lock

    outputs = [_backup(deployment, n) for n in range(3)]

    # Locks and staging are not locked (a bucket default would lock them: every run would leave them behind).
    leftovers = client("s3").list_objects_v2(Bucket=vault_bucket, Prefix="locks/").get("KeyCount", 0)
    leftovers += client("s3").list_objects_v2(Bucket=vault_bucket, Prefix="staging/").get("KeyCount", 0)
    assert leftovers == 0
    # What a recovery point needs is locked by the functions, per object; what says how to read the vault is not.
    s3 = client("s3")
    latest = outputs[2]["committed"]["recovery_point"]
    manifest = s3.head_object(Bucket=vault_bucket, Key=f"recovery-points/{latest}")
    assert manifest.get("ObjectLockMode") == "GOVERNANCE" and manifest.get("ObjectLockRetainUntilDate"), manifest
    config = s3.head_object(Bucket=vault_bucket, Key="config")
    assert "ObjectLockMode" not in config and "ObjectLockRetainUntilDate" not in config, config
    # The first recovery point, due to be forgotten after the third backup, is held by its lock, not deleted.
    assert outputs[2]["retention_result"]["held_count"] >= 1, outputs[2]["retention_result"]

    arn = deployment.deployed.outputs["MaintenanceStateMachineArn"]
    results = follow(start(arn, _maintenance_input(deployment)), poll_seconds=0.05)["results"]

    assert results["forget"]["held_count"] >= 1, results["forget"]
    assert results["verify"]["ok"], results["verify"]
    # The lock extension looked at every object the three recovery points need; all were written a moment ago for
    # the stack's days, so none was due.
    lock = results["lock"]
    assert lock["enabled"] and lock["recovery_points"] == 3 and lock["manifests"]["checked"] == 3, lock
    assert lock["packs"]["checked"] >= 3 and lock["objects_extended"] == 0 and lock["blobs_unindexed"] == 0, lock
    assert client("s3").list_objects_v2(Bucket=vault_bucket, Prefix="staging/lock-").get("KeyCount", 0) == 0
    assert len(list_recovery_points(Vault.open(deployment.stack.vault_url))) == 3
