"""The Maintenance state machine, its schedule, the drill scratch bucket, and the backup's Retention state."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra import constants as c
from tests.infra.conftest import Synth, actions_of, assert_puts_event, definition, resolve, resources_of, statements

LAMBDA_RETRY = {
    "ErrorEquals": [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "VaultlineRetryable",
    ],
    "IntervalSeconds": 2,
    "MaxAttempts": 6,
    "BackoffRate": 2,
    "JitterStrategy": "FULL",
}
CATCH_TO_FAILED = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "MaintenanceFailed"}]
# A verify's items and summary fail through VerifyAbort, which releases the verify's shared lock and staging.
CATCH_TO_VERIFY_ABORT = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "VerifyRun"}]


def _function_ref(synth: Synth, name: str) -> str:
    function_id = next(
        k for k in synth.resources("AWS::Lambda::Function") if re.fullmatch(f"Functions{name}[0-9A-F]{{8}}", k)
    )
    return f"GETATT_{function_id}_Arn"


@pytest.fixture(scope="module")
def machine(synth: Synth) -> dict[str, Any]:
    _, resource = synth.only("AWS::StepFunctions::StateMachine", "Maintenance")
    return resource


@pytest.fixture(scope="module")
def states(machine: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(resolve(machine["Properties"]["DefinitionString"]))
    assert parsed["StartAt"] == "ForgetPlan"
    return dict(parsed["States"])


def test_maintenance_machine_is_standard_traced_and_logs_without_execution_data(machine: dict[str, Any]) -> None:
    props = machine["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False


PRUNE_STATES = (
    "PruneStart",
    "PruneMark",
    "PrunePlan",
    "PruneDecide",
    "PruneSweep",
    "PruneFinish",
    "PruneFinishDone",
    "PruneResult",
    "PruneAbort",
)


LOCK_STATES = ("LockPlan", "LockMark", "LockExtend", "LockSummary")
FORGET_STATES = ("ForgetPlan", "ForgetRead", "ForgetDecide", "ForgetSummary")


def test_maintenance_flow(states: dict[str, Any]) -> None:
    assert set(states) == {
        *FORGET_STATES,
        "PruneEnabled",
        *PRUNE_STATES,
        *LOCK_STATES,
        "Compact",
        "Verify",
        "VerifyItems",
        "VerifySummary",
        "VerifyRun",
        "VerifyAbort",
        "DrillEnabled",
        "Drill",
        "DrillItems",
        "DrillSummary",
        "MaintenanceSucceeded",
        "Done",
        "MaintenanceFailed",
        "Failed",
    }
    assert [states[s]["Next"] for s in FORGET_STATES] == ["ForgetRead", "ForgetDecide", "ForgetSummary", "PruneEnabled"]
    assert states["PruneEnabled"]["Choices"][0]["Next"] == "PruneStart"
    # Lock extension follows the prune (so garbage it deleted is not looked at) or forget; compaction follows it
    # and precedes Verify.
    assert states["PruneEnabled"]["Default"] == "LockPlan"
    assert states["PruneResult"]["Next"] == "LockPlan"
    assert [states[s]["Next"] for s in ("LockPlan", "LockMark", "LockExtend", "LockSummary")] == [
        "LockMark",
        "LockExtend",
        "LockSummary",
        "Compact",
    ]
    assert states["Compact"]["Next"] == "Verify"
    assert states["Verify"]["Next"] == "VerifyItems"
    assert states["VerifyItems"]["Next"] == "VerifySummary"
    assert states["VerifySummary"]["Next"] == "DrillEnabled"
    drill_choice = states["DrillEnabled"]
    assert drill_choice["Choices"] == [
        {
            "And": [
                {"Variable": "$.drill.enabled", "IsPresent": True},
                {"Variable": "$.drill.enabled", "BooleanEquals": True},
            ],
            "Next": "Drill",
        }
    ]
    assert drill_choice["Default"] == "MaintenanceSucceeded"
    assert states["Drill"]["Next"] == "DrillItems"
    assert states["DrillItems"]["Next"] == "DrillSummary"
    assert states["DrillSummary"]["Next"] == "MaintenanceSucceeded"
    assert states["MaintenanceSucceeded"]["Next"] == "Done"
    assert states["MaintenanceFailed"]["Next"] == "Failed"
    assert states["VerifyRun"] == {
        "Type": "Pass",
        "Parameters": {"run_id.$": "$.verifying.run_id"},
        "ResultPath": "$.prepared",
        "Next": "VerifyAbort",
    }
    verify_abort = states["VerifyAbort"]
    assert verify_abort["ResultPath"] == "$.aborted" and verify_abort["Next"] == "MaintenanceFailed"
    assert verify_abort["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.abort_error", "Next": "MaintenanceFailed"}
    ]
    assert states["Failed"] == {
        "Type": "Fail",
        "Error": "MaintenanceFailed",
        "Cause": "A maintenance step failed; the 'Vaultline Maintenance Failed' event has the error.",
    }


@pytest.mark.parametrize(
    ("state", "function", "result"),
    [
        ("ForgetPlan", "MaintenanceForgetPlan", "$.forget_run"),
        ("ForgetSummary", "MaintenanceForgetSummary", "$.results.forget"),
        ("Compact", "MaintenanceCompact", "$.results.compact"),
        ("LockPlan", "MaintenanceLockPlan", "$.lock_run"),
        ("LockSummary", "MaintenanceLockSummary", "$.results.lock"),
        ("Verify", "MaintenanceVerifyPlan", "$.verifying"),
        ("VerifySummary", "MaintenanceVerifySummary", "$.results.verify"),
        ("Drill", "MaintenanceDrillPlan", "$.drilling"),
        ("DrillSummary", "MaintenanceDrillSummary", "$.results.drill"),
    ],
)
def test_each_step_gets_the_whole_state_and_stores_its_result_in_it(
    synth: Synth, states: dict[str, Any], state: str, function: str, result: str
) -> None:
    task = states[state]
    assert task["Resource"] == _function_ref(synth, function)
    assert "Parameters" not in task and "InputPath" not in task
    assert task["ResultPath"] == result
    assert task["Retry"][0] == LAMBDA_RETRY
    assert task["Catch"] == (CATCH_TO_VERIFY_ABORT if state == "VerifySummary" else CATCH_TO_FAILED)
    assert task["TimeoutSeconds"] == 910  # Lambda's own 900 s report their timeout first (Sandbox.Timedout)


def test_prune_waits_for_running_backups_and_compaction_for_a_running_prune_on_vault_locked(
    states: dict[str, Any],
) -> None:
    for state in ("PruneStart", "Compact", "Verify"):
        assert states[state]["Retry"][1] == {
            "ErrorEquals": ["VaultLocked"],
            "IntervalSeconds": 60,
            "MaxAttempts": 5,
            "BackoffRate": 2,
            "JitterStrategy": "FULL",
        }
    for state in ("ForgetPlan", "ForgetSummary", "VerifySummary", "Drill", "DrillSummary"):
        assert len(states[state]["Retry"]) == 1


@pytest.mark.parametrize(
    ("stage", "function", "planned", "output"),
    [
        ("Verify", "MaintenanceVerifyItem", "$.verifying", "$.verify_map"),
        ("Drill", "MaintenanceDrillItem", "$.drilling", "$.drill_map"),
    ],
)
def test_verify_and_drill_map_their_staged_work_lists_and_loop_an_item_on_its_cursor(
    synth: Synth, states: dict[str, Any], stage: str, function: str, planned: str, output: str
) -> None:
    items = states[f"{stage}Items"]
    assert items["Type"] == "Map" and items["ToleratedFailureCount"] == 0
    assert items["ItemReader"]["Resource"] == "arn:REF_AWS__Partition:states:::s3:getObject"
    assert items["ItemReader"]["Parameters"]["Key.$"] == f"{planned}.work_list_key"
    assert items["MaxConcurrencyPath"] == f"{planned}.worker_concurrency"
    assert items["ItemSelector"] == {"run_id.$": f"{planned}.run_id", "item.$": "$$.Map.Item.Value"}
    assert items["ResultPath"] == output
    assert items["Catch"] == (CATCH_TO_VERIFY_ABORT if stage == "Verify" else CATCH_TO_FAILED)
    processor = items["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    inner = processor["States"]
    assert processor["StartAt"] == f"{stage}Item"
    item = inner[f"{stage}Item"]
    assert item["Resource"] == _function_ref(synth, function) and item["ResultPath"] == "$.part"
    # An item is idempotent (it writes only its result, or its own scratch copy): a timed-out attempt runs again.
    assert "Sandbox.Timedout" in item["Retry"][0]["ErrorEquals"]
    assert inner[f"{stage}ItemDone"]["Choices"] == [
        {"Variable": "$.part.done", "BooleanEquals": True, "Next": f"{stage}ItemFinished"}
    ]
    assert inner[f"{stage}ItemDone"]["Default"] == f"{stage}NextPart"
    assert inner[f"{stage}NextPart"]["Parameters"] == {
        "run_id.$": "$.run_id",
        "item.$": "$.part.next.item",
        "cursor.$": "$.part.next.cursor",
    }
    assert inner[f"{stage}NextPart"]["Next"] == f"{stage}Item"
    assert inner[f"{stage}ItemFinished"] == {"Type": "Succeed", "OutputPath": "$.part"}


def test_results_and_failures_are_events_on_the_default_bus(states: dict[str, Any]) -> None:
    for name, detail_type, detail in (
        ("MaintenanceSucceeded", "Vaultline Maintenance Succeeded", "$.results"),
        ("MaintenanceFailed", "Vaultline Maintenance Failed", "$"),
    ):
        assert_puts_event(states[name], detail_type, detail)


def test_daily_schedule_sends_every_plan_sources_keep_rules(synth: Synth) -> None:
    (schedule,) = [
        v["Properties"]
        for v in synth.resources("AWS::Scheduler::Schedule").values()
        if v["Properties"]["Name"] == c.MAINTENANCE_SCHEDULE_NAME
    ]
    assert schedule["ScheduleExpression"] == "cron(0 3 * * ? *)"
    machine_id, _ = synth.only("AWS::StepFunctions::StateMachine", "Maintenance")
    assert schedule["Target"]["Arn"] == {"Ref": machine_id}
    sent = json.loads(resolve(schedule["Target"]["Input"]))
    rules = {"keep_last": 3, "keep_hourly": 24, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12}
    scratch_id, _ = synth.only("AWS::S3::Bucket", "DrillScratch")
    assert sent == {
        "policies": [
            {"source": "s3://vaultline-demo-source", "plan": "demo", "rules": rules},
            {"source": "dynamodb://vaultline-demo-table", "plan": "demo", "rules": rules},
        ],
        "prune": True,
        "verify": {"parts": 7},
        "drill": {"enabled": False, "scratch": f"s3://REF_{scratch_id}/drill-scratch"},
    }
    role = [s for s in statements(synth, "MaintenanceScheduleRole") if "states:StartExecution" in actions_of(s)]
    assert resources_of(role[0]) == [f"REF_{machine_id}"]


def test_schedule_and_drill_come_from_the_context() -> None:
    from tests.infra.conftest import synthesize

    s = synthesize({"maintenanceSchedule": "rate(12 hours)", "maintenanceDrill": True}, nag=False)
    (schedule,) = [
        v["Properties"]
        for v in s.resources("AWS::Scheduler::Schedule").values()
        if v["Properties"]["Name"] == c.MAINTENANCE_SCHEDULE_NAME
    ]
    assert schedule["ScheduleExpression"] == "rate(12 hours)"
    assert json.loads(resolve(schedule["Target"]["Input"]))["drill"]["enabled"] is True


def test_scratch_bucket_is_encrypted_private_logged_and_expires_leftovers(synth: Synth) -> None:
    _, bucket = synth.only("AWS::S3::Bucket", "DrillScratch")
    props = bucket["Properties"]
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] == "aws:kms"
    assert props["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"] is True
    assert props["LoggingConfiguration"]["LogFilePrefix"] == "drill-scratch/"
    (rule,) = props["LifecycleConfiguration"]["Rules"]
    assert rule["Prefix"] == "drill-scratch/" and rule["ExpirationInDays"] == 1


def _deletes(synth: Synth, function: str) -> list[str]:
    found = [s for s in statements(synth, f"Functions{function}ServiceRole") if "s3:DeleteObject" in actions_of(s)]
    found = [s for s in found if s["Effect"] == "Allow"]  # what it may delete; the denies are tested on their own
    return sorted(r for s in found for r in resources_of(s))


def test_only_forget_and_prune_delete_in_the_vault_and_only_their_prefixes(synth: Synth) -> None:
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    vault = f"GETATT_{vault_id}_Arn"
    # Forget: only Decide deletes manifests; the summary ends its run (staging, and the locks ends_run grants).
    assert _deletes(synth, "MaintenanceForgetDecide") == [f"{vault}/recovery-points/*"]
    assert _deletes(synth, "MaintenanceForgetPlan") == _deletes(synth, "MaintenanceForgetRead") == []
    assert _deletes(synth, "MaintenanceForgetSummary") == [f"{vault}/locks/*", f"{vault}/staging/*"]
    assert _deletes(synth, "ApplyRetention") == [f"{vault}/recovery-points/*"]
    # Prune: only Finish deletes packs and index objects; Start and Abort only their run's staging and locks.
    run = [f"{vault}/locks/*", f"{vault}/staging/*"]
    assert _deletes(synth, "MaintenancePruneFinish") == sorted(
        [f"{vault}/data/*", f"{vault}/index-catalogs/*", f"{vault}/index-shards/*", f"{vault}/index/*", *run, run[0]]
    )
    for function in ("MaintenancePrune", "MaintenancePruneAbort"):
        assert _deletes(synth, function) == run
    for function in ("MaintenancePruneMark", "MaintenancePrunePlan", "MaintenancePruneDecide", "MaintenancePruneSweep"):
        assert _deletes(synth, function) == []
    assert _deletes(synth, "MaintenanceVerifyPlan") == _deletes(synth, "MaintenanceVerifyItem") == []
    # The summary ends its run: its own staging, nothing a recovery point needs.
    assert _deletes(synth, "MaintenanceVerifySummary") == [f"{vault}/locks/*", f"{vault}/staging/*"]
    scratch_id, _ = synth.only("AWS::S3::Bucket", "DrillScratch")
    assert _deletes(synth, "MaintenanceDrillPlan") == _deletes(synth, "MaintenanceDrillItem") == []
    assert _deletes(synth, "MaintenanceDrillSummary") == [
        f"GETATT_{scratch_id}_Arn/drill-scratch/*",
        f"{vault}/locks/*",
        f"{vault}/staging/*",
    ]


def test_forget_and_prune_may_read_object_lock_state(synth: Synth) -> None:
    readers = ("MaintenanceForgetDecide", "MaintenancePruneDecide", "MaintenancePruneSweep", "MaintenancePruneFinish")
    for function in (*readers, "ApplyRetention"):
        granted = {a for s in statements(synth, f"Functions{function}ServiceRole") for a in actions_of(s)}
        assert {"s3:GetObjectRetention", "s3:GetObjectLegalHold", "s3:GetBucketObjectLockConfiguration"} <= granted
    for function in ("MaintenanceVerify", "MaintenancePrune", "MaintenancePruneMark", "MaintenancePrunePlan"):
        granted = {a for s in statements(synth, f"Functions{function}ServiceRole") for a in actions_of(s)}
        assert "s3:GetObjectRetention" not in granted


def test_lock_extension_maps_loop_their_items_and_fail_into_the_failure_event(states: dict[str, Any]) -> None:
    for name in ("Mark", "Extend"):
        processor = states[f"Lock{name}"]["ItemProcessor"]
        item = processor["States"][f"Lock{name}Item"]
        assert processor["StartAt"] == f"Lock{name}Item" and item["Next"] == f"Lock{name}Finished"
        assert processor["States"][f"Lock{name}Next"]["Next"] == f"Lock{name}Item"
        assert states[f"Lock{name}"]["ItemReader"]["Parameters"]["Key.$"] == f"$.lock_run.{name.lower()}_work_list_key"
    for state in LOCK_STATES:
        assert [c["Next"] for c in states[state]["Catch"]] == ["MaintenanceFailed"]


def test_forget_maps_loop_their_items_and_fail_into_the_failure_event(synth: Synth, states: dict[str, Any]) -> None:
    for name, function in (("Read", "MaintenanceForgetRead"), ("Decide", "MaintenanceForgetDecide")):
        forget_map = states[f"Forget{name}"]
        assert forget_map["Type"] == "Map" and forget_map["ToleratedFailureCount"] == 0
        assert forget_map["ItemReader"]["Parameters"]["Key.$"] == f"$.forget_run.{name.lower()}_work_list_key"
        assert forget_map["MaxConcurrencyPath"] == "$.forget_run.concurrency"
        assert forget_map["ItemSelector"] == {"run_id.$": "$.forget_run.run_id", "item.$": "$$.Map.Item.Value"}
        processor = forget_map["ItemProcessor"]
        item = processor["States"][f"Forget{name}Item"]
        assert processor["StartAt"] == f"Forget{name}Item" and item["Next"] == f"Forget{name}Finished"
        assert item["Resource"] == _function_ref(synth, function)
        assert "Sandbox.Timedout" in item["Retry"][0]["ErrorEquals"]  # idempotent: a timed-out attempt runs again
        assert processor["States"][f"Forget{name}Next"]["Next"] == f"Forget{name}Item"
        assert processor["States"][f"Forget{name}Next"]["Parameters"] == {
            "run_id.$": "$.run_id",
            "item.$": "$.part.next",
        }
    for state in FORGET_STATES:
        assert states[state]["Catch"] == CATCH_TO_FAILED


def test_only_the_lock_extension_may_set_retention_dates_and_only_on_what_is_locked(synth: Synth) -> None:
    vault = f"GETATT_{synth.only('AWS::S3::Bucket', 'VaultBucket')[0]}_Arn"
    for function in ("MaintenanceLockPlan", "MaintenanceLockMark", "MaintenanceLockExtend"):
        extend = [
            s for s in statements(synth, f"Functions{function}ServiceRole") if s.get("Sid") == "VaultObjectLockExtend"
        ]
        assert [sorted(actions_of(s)) for s in extend] == [["s3:GetObjectRetention", "s3:PutObjectRetention"]]
        assert set(resources_of(extend[0])) == {
            f"{vault}/data/*",
            f"{vault}/index/*",
            f"{vault}/recovery-points/*",
            f"{vault}/object-lock",
        }
        granted = {a for s in statements(synth, f"Functions{function}ServiceRole") for a in actions_of(s)}
        assert "s3:BypassGovernanceRetention" not in granted and _deletes(synth, function) == []
    summary = {a for s in statements(synth, "FunctionsMaintenanceLockSummaryServiceRole") for a in actions_of(s)}
    assert "s3:PutObjectRetention" not in summary


def test_stack_outputs_the_maintenance_state_machine(synth: Synth) -> None:
    machine_id, _ = synth.only("AWS::StepFunctions::StateMachine", "Maintenance")
    assert synth.template["Outputs"]["MaintenanceStateMachineArn"]["Value"] == {"Ref": machine_id}


def test_maintenance_failures_and_integrity_problems_reach_the_topic(synth: Synth) -> None:
    topic_id, _ = synth.only("AWS::SNS::Topic")
    rules = {k: v["Properties"] for k, v in synth.resources("AWS::Events::Rule").items() if "Maintenance" in k}
    patterns = [r["EventPattern"] for r in rules.values()]
    assert {"source": ["vaultline"], "detail-type": [c.MAINTENANCE_SUCCEEDED, c.MAINTENANCE_FAILED]} in patterns
    assert any(p.get("source") == ["aws.states"] for p in patterns)
    for rule in rules.values():
        assert rule["Targets"][0]["Arn"] == {"Ref": topic_id}
    _, alarm = synth.only("AWS::CloudWatch::Alarm", "MaintenanceIntegrity")
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Properties"]["Metrics"] if "MetricStat" in m}
    assert names == {"VerifyErrors", "DrillFailures"}
    assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]


def test_integrity_alarm_fires_on_verify_errors_while_drills_report_nothing(synth: Synth) -> None:
    # With drills off DrillFailures has no data; metric math over a missing point yields no point at all, so
    # the sum must FILL each metric with 0 or a verify error never alarms.
    _, alarm = synth.only("AWS::CloudWatch::Alarm", "MaintenanceIntegrity")
    metrics = alarm["Properties"]["Metrics"]
    ids = {m["MetricStat"]["Metric"]["MetricName"]: m["Id"] for m in metrics if "MetricStat" in m}
    expression = next(m["Expression"] for m in metrics if "Expression" in m)
    terms = [term.strip() for term in expression.split("+")]
    assert sorted(terms) == sorted(f"FILL({ids[name]}, 0)" for name in ("VerifyErrors", "DrillFailures"))
    assert alarm["Properties"]["Threshold"] == 1


# --- the backup's Retention state ---------------------------------------------------------------------------


def test_backup_retention_runs_after_both_commits_and_never_fails_the_backup(synth: Synth) -> None:
    backup_states = definition(synth, "Backup")["States"]
    assert backup_states["Commit"]["Next"] == "Retention"
    assert backup_states["DdbCommit"]["Next"] == "Retention"
    retention = backup_states["Retention"]
    assert retention["Resource"] == _function_ref(synth, "ApplyRetention")
    assert "Parameters" not in retention
    assert retention["ResultPath"] == "$.retention_result"
    assert retention["Next"] == "BackupSucceeded"
    assert retention["Retry"] == [LAMBDA_RETRY]
    assert retention["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.retention_error", "Next": "BackupSucceeded"}
    ]
    assert "Retention" not in definition(synth, "Restore")["States"]
