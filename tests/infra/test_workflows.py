"""The state machine definitions: the exact contract the handlers and the embedded-AWS harness rely on."""

from __future__ import annotations

from typing import Any

import pytest

from infra import constants as c
from infra.app import build_app
from infra.settings import SettingsError
from tests.infra.conftest import Synth, assert_puts_event, definition, synthesize

LAMBDA_TRANSIENT = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
# How Lambda reports a function that outlived its timeout, and a client that gave up on the invoke.
LAMBDA_TIMEOUTS = ["Sandbox.Timedout", "Lambda.ClientExecutionTimeoutException", "States.Timeout", "Runtime.ExitError"]
# A Prepare that meets a prune's exclusive lock waits its turn, with the backoff prune uses to wait for backups.
LOCKED_RETRY = {
    "ErrorEquals": ["VaultLocked"],
    "IntervalSeconds": 60,
    "MaxAttempts": 5,
    "BackoffRate": 2,
    "JitterStrategy": "FULL",
}
CATCH_TO_ABORT = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Abort"}]


def _retry(errors: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "ErrorEquals": errors,
            "IntervalSeconds": 2,
            "MaxAttempts": 6,
            "BackoffRate": 2,
            "JitterStrategy": "FULL",
        }
    ]


def _function_ref(synth: Synth, name: str) -> str:
    function_id = next(k for k in synth.resources("AWS::Lambda::Function") if k.startswith(f"Functions{name}"))
    return f"GETATT_{function_id}_Arn"


@pytest.fixture(scope="module")
def backup(synth: Synth) -> dict[str, Any]:
    return definition(synth, "Backup")


@pytest.fixture(scope="module")
def restore(synth: Synth) -> dict[str, Any]:
    return definition(synth, "Restore")


def test_both_state_machines_are_standard_traced_and_log_everything(synth: Synth) -> None:
    machines = {k: v for k, v in synth.resources("AWS::StepFunctions::StateMachine").items() if "Workflows" in k}
    assert len(machines) == 2  # the Maintenance machine: tests/infra/test_maintenance.py
    for machine in machines.values():
        props = machine["Properties"]
        assert props["StateMachineType"] == "STANDARD"
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert props["LoggingConfiguration"]["Level"] == "ALL"


S3_BACKUP_STATES = {
    "Prepare",
    "BackupBatches",
    "Commit",
    "Retention",
    "BackupSucceeded",
    "Done",
    "Abort",
    "BackupFailed",
    "Failed",
}
DDB_BACKUP_STATES = {
    "SourceType",
    "DdbPrepare",
    "DdbMode",
    "DdbScanWorkList",
    "DdbExportStatus",
    "DdbExportDone",
    "DdbExportWait",
    "DdbExportFailed",
    "DdbExportPollsStart",
    "DdbExportPollCount",
    "DdbExportPollsLeft",
    "DdbExportPollLimit",
    "DdbSegments",
    "DdbCommit",
}


def test_backup_starts_by_choosing_the_path_on_the_source_type(backup: dict[str, Any]) -> None:
    assert backup["StartAt"] == "SourceType"
    choice = backup["States"]["SourceType"]
    assert choice["Type"] == "Choice"
    assert choice["Choices"] == [
        {
            "And": [
                {"Variable": "$.source.type", "IsPresent": True},
                {"Variable": "$.source.type", "StringEquals": "dynamodb"},
            ],
            "Next": "DdbPrepare",
        }
    ]
    # s3 (and anything unknown, which the S3 Prepare rejects into Abort) takes the S3 path.
    assert choice["Default"] == "Prepare"


def test_backup_state_names_and_flow(backup: dict[str, Any]) -> None:
    states = backup["States"]
    assert set(states) == S3_BACKUP_STATES | DDB_BACKUP_STATES
    assert set(states) - DDB_BACKUP_STATES == S3_BACKUP_STATES
    assert states["Prepare"]["Next"] == "BackupBatches"
    assert states["BackupBatches"]["Next"] == "Commit"
    assert states["Commit"]["Next"] == "Retention"
    assert states["Retention"]["Next"] == "BackupSucceeded"
    assert states["BackupSucceeded"]["Next"] == "Done"
    assert states["Done"]["Type"] == "Succeed"
    assert states["Abort"]["Next"] == "BackupFailed"
    assert states["BackupFailed"]["Next"] == "Failed"
    assert states["Failed"]["Type"] == "Fail" and states["Failed"]["Error"] == "BackupFailed"


@pytest.mark.parametrize(
    ("kind", "run", "lock_retry"),
    [
        pytest.param("Backup", "recovery_point", [LOCKED_RETRY], id="backup-waits-for-a-prune"),
        pytest.param("Restore", "restore_id", [], id="restore-takes-no-lock"),
    ],
)
def test_prepare_sends_the_request_and_execution_and_keeps_a_small_result(
    synth: Synth, kind: str, run: str, lock_retry: list[dict[str, Any]]
) -> None:
    prepare = definition(synth, kind)["States"]["Prepare"]
    assert prepare["Resource"].endswith(":states:::lambda:invoke")
    assert prepare["Parameters"]["FunctionName"] == _function_ref(synth, f"{kind}Prepare")
    assert prepare["Parameters"]["Payload"] == {"request.$": "$", "execution.$": "$$.Execution.Id"}
    fields = (run, "vault_bucket", "work_list_key", "batches", "objects", "worker_concurrency")
    assert prepare["ResultSelector"] == {f"{field}.$": f"$.Payload.{field}" for field in fields}
    assert prepare["ResultPath"] == "$.prepared"
    assert prepare["Retry"] == [*lock_retry, *_retry([*LAMBDA_TRANSIENT, "VaultlineRetryable"])]
    assert prepare["Catch"] == CATCH_TO_ABORT


def test_backup_map_reads_the_work_list_from_the_vault_and_writes_results_there(
    synth: Synth, backup: dict[str, Any]
) -> None:
    batches = backup["States"]["BackupBatches"]
    vault = f"REF_{synth.only('AWS::S3::Bucket', 'VaultBucket')[0]}"
    assert batches["Type"] == "Map"
    assert batches["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert batches["ItemReader"] == {
        "Resource": "arn:REF_AWS__Partition:states:::s3:getObject",
        "ReaderConfig": {"InputType": "JSON"},
        "Parameters": {"Bucket": vault, "Key.$": "$.prepared.work_list_key"},
    }
    assert batches["ItemSelector"] == {"recovery_point.$": "$.prepared.recovery_point", "item.$": "$$.Map.Item.Value"}
    assert batches["MaxConcurrencyPath"] == "$.prepared.worker_concurrency"
    assert batches["ToleratedFailureCount"] == 0
    assert batches["ResultWriter"] == {
        "Resource": "arn:REF_AWS__Partition:states:::s3:putObject",
        "Parameters": {"Bucket": vault, "Prefix": "staging/map-results"},
    }
    assert batches["ResultPath"] == "$.map"
    assert batches["Catch"] == CATCH_TO_ABORT


def test_backup_worker_returns_its_payload_and_retries_transient_and_retryable_errors(
    synth: Synth, backup: dict[str, Any]
) -> None:
    processor = backup["States"]["BackupBatches"]["ItemProcessor"]
    assert processor["StartAt"] == "BackupWorker"
    worker = processor["States"]["BackupWorker"]
    # Direct function ARN = payload_response_only: the item is the event, the return value the result.
    assert worker["Resource"] == _function_ref(synth, "BackupWorker")
    assert "Parameters" not in worker
    assert worker["Retry"] == _retry([*LAMBDA_TRANSIENT, *LAMBDA_TIMEOUTS, "VaultlineRetryable"])
    # Lambda ends the function at 900 s and reports Sandbox.Timedout; the task's timeout is only a backstop.
    assert 900 < worker["TimeoutSeconds"] <= 910


def test_backup_commit_gets_the_whole_state_and_stores_its_result(synth: Synth, backup: dict[str, Any]) -> None:
    commit = backup["States"]["Commit"]
    assert commit["Resource"] == _function_ref(synth, "BackupCommit")
    assert "Parameters" not in commit and "InputPath" not in commit
    assert commit["ResultPath"] == "$.committed"
    assert commit["Retry"] == _retry([*LAMBDA_TRANSIENT, "VaultlineRetryable"])
    assert commit["Catch"] == CATCH_TO_ABORT


def test_backup_success_and_failure_events_go_to_the_default_bus(backup: dict[str, Any]) -> None:
    states = backup["States"]
    for name, detail_type, detail in (
        ("BackupSucceeded", "Vaultline Backup Succeeded", "$.committed"),
        ("BackupFailed", "Vaultline Backup Failed", "$"),
    ):
        assert_puts_event(states[name], detail_type, detail)


def test_abort_gets_the_state_with_the_error_and_failure_is_announced_even_if_abort_fails(
    synth: Synth, backup: dict[str, Any]
) -> None:
    abort = backup["States"]["Abort"]
    assert abort["Resource"] == _function_ref(synth, "Abort")
    assert abort["ResultPath"] == "$.aborted"
    assert abort["Retry"] == _retry([*LAMBDA_TRANSIENT, "VaultlineRetryable"])
    assert abort["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.abort_error", "Next": "BackupFailed"}]


def test_restore_state_names_and_contract(synth: Synth, restore: dict[str, Any]) -> None:
    states = restore["States"]
    assert restore["StartAt"] == "TargetType"
    assert states["TargetType"]["Default"] == "Prepare"
    assert set(states) - {"TargetType", "DdbRestorePrepare", "DdbRestoreParts", "DdbRestoreFinish"} == {
        "Prepare",
        "RestoreBatches",
        "Finish",
        "RestoreSucceeded",
        "Done",
        "Abort",
        "RestoreFailed",
        "Failed",
    }
    # Prepare: test_prepare_sends_the_request_and_execution_and_keeps_a_small_result
    batches = states["RestoreBatches"]
    assert batches["ItemSelector"] == {
        "restore_id.$": "$.prepared.restore_id",
        "target.$": "$.target",
        "item.$": "$$.Map.Item.Value",
    }
    assert batches["ItemReader"]["Parameters"]["Key.$"] == "$.prepared.work_list_key"
    assert batches["MaxConcurrencyPath"] == "$.prepared.worker_concurrency"
    assert batches["ToleratedFailureCount"] == 0
    assert batches["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] == "STANDARD"
    assert batches["ItemProcessor"]["States"]["RestoreWorker"]["Resource"] == _function_ref(synth, "RestoreWorker")
    finish = states["Finish"]
    assert finish["Resource"] == _function_ref(synth, "RestoreFinish")
    assert finish["ResultPath"] == "$.finished"
    for name in ("Prepare", "RestoreBatches", "Finish"):
        assert states[name]["Catch"] == CATCH_TO_ABORT
    assert states["RestoreSucceeded"]["Parameters"]["Entries"][0]["DetailType"] == "Vaultline Restore Succeeded"
    assert states["RestoreSucceeded"]["Parameters"]["Entries"][0]["Detail.$"] == "$.finished"
    assert states["RestoreFailed"]["Parameters"]["Entries"][0]["DetailType"] == "Vaultline Restore Failed"
    assert states["Failed"]["Error"] == "RestoreFailed"


def test_state_machine_roles_may_use_the_vault_key_for_item_reader_and_result_writer(synth: Synth) -> None:
    from tests.infra.conftest import actions_of, resources_of, statements

    key = f"GETATT_{synth.only('AWS::KMS::Key', 'VaultKey')[0]}_Arn"
    for kind in ("Backup", "Restore"):
        kms = [s for s in statements(synth, f"Workflows{kind}StateMachineRole") if "kms:Decrypt" in actions_of(s)]
        assert len(kms) == 1 and resources_of(kms[0]) == [key]


# --- DynamoDB -------------------------------------------------------------------------------------------------


def test_backup_dynamodb_prepare_keeps_a_small_result_and_branches_on_the_mode(
    synth: Synth, backup: dict[str, Any]
) -> None:
    states = backup["States"]
    prepare = states["DdbPrepare"]
    assert prepare["Parameters"]["FunctionName"] == _function_ref(synth, "DdbBackupPrepare")
    assert prepare["Parameters"]["Payload"] == {"request.$": "$", "execution.$": "$$.Execution.Id"}
    assert prepare["ResultSelector"] == {
        f"{field}.$": f"$.Payload.{field}"
        for field in (
            "recovery_point",
            "vault_bucket",
            "mode",
            "work_list_key",
            "segments",
            "export_arn",
            "worker_concurrency",
        )
    }
    assert prepare["ResultPath"] == "$.prepared"
    assert prepare["Retry"] == [LOCKED_RETRY, *_retry([*LAMBDA_TRANSIENT, "VaultlineRetryable"])]
    assert prepare["Catch"] == CATCH_TO_ABORT
    assert prepare["Next"] == "DdbMode"
    mode = states["DdbMode"]
    assert mode["Choices"] == [{"Variable": "$.prepared.mode", "StringEquals": "export", "Next": "DdbExportPollsStart"}]
    assert mode["Default"] == "DdbScanWorkList"
    scan = states["DdbScanWorkList"]
    assert scan["Type"] == "Pass" and scan["ResultPath"] == "$.work" and scan["Next"] == "DdbSegments"
    assert scan["Parameters"]["work_list_key.$"] == "$.prepared.work_list_key"


def test_backup_dynamodb_export_mode_polls_until_the_export_completes(synth: Synth, backup: dict[str, Any]) -> None:
    states = backup["States"]
    status = states["DdbExportStatus"]
    assert status["Resource"] == _function_ref(synth, "DdbExportStatus")
    assert status["ResultPath"] == "$.work" and status["Next"] == "DdbExportDone"
    assert status["Retry"] == _retry([*LAMBDA_TRANSIENT, *LAMBDA_TIMEOUTS, "VaultlineRetryable"])
    assert status["Catch"] == CATCH_TO_ABORT
    done = states["DdbExportDone"]
    assert done["Choices"] == [
        {"Variable": "$.work.status", "StringEquals": "COMPLETED", "Next": "DdbSegments"},
        {"Variable": "$.work.status", "StringEquals": "IN_PROGRESS", "Next": "DdbExportPollCount"},
    ]
    assert done["Default"] == "DdbExportFailed"
    assert states["DdbExportWait"] == {"Type": "Wait", "Seconds": 30, "Next": "DdbExportStatus"}
    failed = states["DdbExportFailed"]
    assert failed["ResultPath"] == "$.error" and failed["Result"]["Error"] == "ExportFailed"
    assert failed["Next"] == "Abort"


def test_backup_dynamodb_segment_map_loops_each_segment_on_its_cursor(synth: Synth, backup: dict[str, Any]) -> None:
    segments = backup["States"]["DdbSegments"]
    vault = f"REF_{synth.only('AWS::S3::Bucket', 'VaultBucket')[0]}"
    assert segments["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert segments["ItemReader"]["Parameters"] == {"Bucket": vault, "Key.$": "$.work.work_list_key"}
    assert segments["ItemReader"]["ReaderConfig"] == {"InputType": "JSON"}
    assert segments["ItemSelector"] == {"recovery_point.$": "$.prepared.recovery_point", "item.$": "$$.Map.Item.Value"}
    assert segments["MaxConcurrencyPath"] == "$.prepared.worker_concurrency"
    assert segments["ToleratedFailureCount"] == 0
    assert segments["ResultWriter"]["Parameters"] == {"Bucket": vault, "Prefix": "staging/map-results"}
    assert segments["ResultPath"] == "$.map"
    assert segments["Catch"] == CATCH_TO_ABORT
    assert segments["Next"] == "DdbCommit"

    processor = segments["ItemProcessor"]
    assert processor["StartAt"] == "DdbSegmentWorker"
    inner = processor["States"]
    worker = inner["DdbSegmentWorker"]
    assert worker["Resource"] == _function_ref(synth, "DdbSegmentWorker")
    assert worker["ResultPath"] == "$.part" and worker["Next"] == "DdbSegmentDone"
    assert worker["Retry"] == _retry([*LAMBDA_TRANSIENT, *LAMBDA_TIMEOUTS, "VaultlineRetryable"])
    assert 900 < worker["TimeoutSeconds"] <= 910
    assert inner["DdbSegmentDone"]["Choices"] == [
        {"Variable": "$.part.done", "BooleanEquals": True, "Next": "DdbSegmentStored"}
    ]
    assert inner["DdbSegmentDone"]["Default"] == "DdbNextPart"
    assert inner["DdbNextPart"] == {
        "Type": "Pass",
        "Parameters": {"recovery_point.$": "$.recovery_point", "item.$": "$.part.next"},
        "Next": "DdbSegmentWorker",
    }
    assert inner["DdbSegmentStored"] == {"Type": "Succeed", "OutputPath": "$.part"}


def test_backup_dynamodb_commit_shares_the_success_event_and_abort(synth: Synth, backup: dict[str, Any]) -> None:
    commit = backup["States"]["DdbCommit"]
    assert commit["Resource"] == _function_ref(synth, "DdbBackupCommit")
    assert commit["ResultPath"] == "$.committed"
    assert commit["Next"] == "Retention"
    assert commit["Retry"] == _retry([*LAMBDA_TRANSIENT, "VaultlineRetryable"])
    assert commit["Catch"] == CATCH_TO_ABORT


def test_restore_dynamodb_targets_take_the_table_branch(synth: Synth, restore: dict[str, Any]) -> None:
    states = restore["States"]
    assert states["TargetType"]["Choices"] == [
        {
            "And": [
                {"Variable": "$.target", "IsPresent": True},
                {"Variable": "$.target", "StringMatches": "dynamodb://*"},
            ],
            "Next": "DdbRestorePrepare",
        }
    ]
    prepare = states["DdbRestorePrepare"]
    assert prepare["Parameters"]["FunctionName"] == _function_ref(synth, "DdbRestorePrepare")
    assert prepare["ResultPath"] == "$.prepared" and prepare["Next"] == "DdbRestoreParts"
    assert set(prepare["ResultSelector"]) == {
        f"{f}.$"
        for f in (
            "restore_id",
            "recovery_point",
            "vault_bucket",
            "work_list_key",
            "parts",
            "table_created",
            "worker_concurrency",
        )
    }
    parts = states["DdbRestoreParts"]
    assert parts["ItemReader"]["Parameters"]["Key.$"] == "$.prepared.work_list_key"
    assert parts["ItemSelector"] == {"restore_id.$": "$.prepared.restore_id", "item.$": "$$.Map.Item.Value"}
    assert parts["ToleratedFailureCount"] == 0 and parts["MaxConcurrencyPath"] == "$.prepared.worker_concurrency"
    worker = parts["ItemProcessor"]["States"]["DdbRestoreWorker"]
    assert worker["Resource"] == _function_ref(synth, "DdbRestoreWorker")
    assert worker["Retry"] == _retry([*LAMBDA_TRANSIENT, *LAMBDA_TIMEOUTS, "VaultlineRetryable"])
    finish = states["DdbRestoreFinish"]
    assert finish["Resource"] == _function_ref(synth, "DdbRestoreFinish")
    assert finish["ResultPath"] == "$.finished" and finish["Next"] == "RestoreSucceeded"
    for name in ("DdbRestorePrepare", "DdbRestoreParts", "DdbRestoreFinish"):
        assert states[name]["Catch"] == CATCH_TO_ABORT


def test_export_poll_interval_comes_from_the_context() -> None:
    quick = definition(synthesize({"exportPollSeconds": 5}, nag=False), "Backup")
    assert quick["States"]["DdbExportWait"]["Seconds"] == 5


def test_an_export_poll_interval_out_of_range_names_the_context_key() -> None:
    with pytest.raises(SettingsError, match=r"^cdk context exportPollSeconds: .*greater than or equal to 1"):
        build_app({"exportPollSeconds": 0}, nag=False, stage_assets=False)


def _run_export_polls(backup: dict[str, Any], status: str) -> tuple[list[str], dict[str, Any]]:
    """Walk the export branch from DdbMode with a DescribeExport that always answers ``status``; return the states
    visited up to the first state outside the loop, and the state data there. Only what the loop uses is modelled:
    Pass (Result or a States.MathAdd parameter), Choice on numbers and strings, Wait, and the status task."""
    states = backup["States"]
    data: dict[str, Any] = {"prepared": {"mode": "export"}}
    name = states["DdbMode"]["Choices"][0]["Next"]
    visited: list[str] = []
    loop = {"DdbExportPollsStart", "DdbExportPollCount", "DdbExportPollsLeft", "DdbExportWait", "DdbExportStatus"}
    loop |= {"DdbExportDone"}
    # Unbounded, the loop would poll forever; past the history's worth of states it has no bound at all.
    while name in loop and len(visited) < 25_000:
        visited.append(name)
        state = states[name]
        if name == "DdbExportStatus":
            data["work"] = {"status": status}
        elif state["Type"] == "Pass":
            if "Result" in state:
                result = state["Result"]
            else:
                ((field, expression),) = state["Parameters"].items()
                assert field == "count.$" and expression == "States.MathAdd($.export_polls.count, 1)"
                result = {"count": data["export_polls"]["count"] + 1}
            assert state["ResultPath"] == "$.export_polls"
            data["export_polls"] = result
        elif state["Type"] == "Choice":
            nxt = state["Default"]
            for choice in state["Choices"]:
                path = choice["Variable"].removeprefix("$.").split(".")
                value: Any = data
                for part in path:
                    value = value[part]
                if ("StringEquals" in choice and value == choice["StringEquals"]) or (
                    "NumericGreaterThanEquals" in choice and value >= choice["NumericGreaterThanEquals"]
                ):
                    nxt = choice["Next"]
                    break
            name = nxt
            continue
        name = state["Next"]
    visited.append(name)
    return visited, data


def test_export_poll_loop_fails_clearly_before_the_execution_history_limit(backup: dict[str, Any]) -> None:
    visited, data = _run_export_polls(backup, "IN_PROGRESS")
    polls = visited.count("DdbExportStatus")
    assert visited[-1] == "DdbExportPollLimit"
    assert polls == c.MAX_EXPORT_POLLS == data["export_polls"]["count"]
    # Events per round as Step Functions writes them: a Lambda task 5 (entered, scheduled, started, succeeded,
    # exited), each Pass, Choice and Wait 2; the rounds and the rest of a run fit the 25,000-event history.
    per_round = 5 + 2 * (visited.count("DdbExportPollCount") + visited.count("DdbExportPollsLeft")) // polls
    per_round += 2 * (visited.count("DdbExportDone") + visited.count("DdbExportWait")) // polls
    assert per_round <= c.EVENTS_PER_EXPORT_POLL
    assert polls * c.EVENTS_PER_EXPORT_POLL + c.HISTORY_EVENT_RESERVE <= 25_000
    limit = backup["States"]["DdbExportPollLimit"]
    assert limit["ResultPath"] == "$.error" and limit["Next"] == "Abort"
    assert limit["Result"]["Error"] == "ExportPollLimit"
    assert f"after {c.MAX_EXPORT_POLLS} polls 30 s apart" in limit["Result"]["Cause"]


def test_a_completed_export_leaves_the_poll_loop_for_the_segment_map(backup: dict[str, Any]) -> None:
    visited, data = _run_export_polls(backup, "COMPLETED")
    assert visited == ["DdbExportPollsStart", "DdbExportStatus", "DdbExportDone", "DdbSegments"]
    assert data["export_polls"] == {"count": 0}


def test_only_the_backup_prepares_wait_out_a_vault_lock(restore: dict[str, Any]) -> None:
    for name in ("Prepare", "DdbRestorePrepare"):
        assert restore["States"][name]["Retry"] == _retry([*LAMBDA_TRANSIENT, "VaultlineRetryable"])
