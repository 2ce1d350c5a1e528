"""EventBridge Scheduler: one schedule per plan source, sending exactly `runs.requests.plan_input`."""

from __future__ import annotations

import json

from infra import constants as c
from tests.infra.conftest import MULTI_PLANS, Synth, actions_of, resources_of, statements
from vaultline.plans import load_plans, parse_plans
from vaultline.runs.requests import plan_input


def _schedules(synth: Synth) -> dict[str, dict]:
    """The plans' backup schedules (the maintenance schedule is tests/infra/test_maintenance.py's)."""
    return {
        v["Properties"]["Name"]: v["Properties"]
        for v in synth.resources("AWS::Scheduler::Schedule").values()
        if v["Properties"]["Name"] != c.MAINTENANCE_SCHEDULE_NAME
    }


def test_sample_plan_gets_one_hourly_schedule_per_source_starting_the_backup_state_machine(synth: Synth) -> None:
    schedules = _schedules(synth)
    assert list(schedules) == ["vaultline-demo-1", "vaultline-demo-2"]
    plans = load_plans(c.ROOT / "plans.yaml")
    for index, name in enumerate(schedules):
        sent = json.loads(schedules[name]["Target"]["Input"])
        assert sent == plan_input(plans.plans[0], plans.plans[0].sources[index])
    schedule = schedules["vaultline-demo-1"]
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    assert schedule["State"] == "ENABLED"
    machine_id, _ = synth.only("AWS::StepFunctions::StateMachine", "WorkflowsBackup")
    assert schedule["Target"]["Arn"] == {"Ref": machine_id}
    plans = load_plans(c.ROOT / "plans.yaml")
    assert json.loads(schedule["Target"]["Input"]) == plan_input(plans.plans[0], plans.plans[0].sources[0])


def test_schedule_input_is_the_backup_contract(synth: Synth) -> None:
    sent = json.loads(_schedules(synth)["vaultline-demo-1"]["Target"]["Input"])
    assert sent == {
        "plan": "demo",
        "source": {"type": "s3", "url": "s3://vaultline-demo-source", "include": [], "exclude": ["*.tmp", "tmp/**"]},
        "compression_level": 3,
        "worker_concurrency": 10,
        "tags": {"owner": "platform"},
        "retention": {"keep_last": 3, "keep_hourly": 24, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12},
    }


def test_table_source_schedule_sends_the_dynamodb_contract(synth: Synth) -> None:
    sent = json.loads(_schedules(synth)["vaultline-demo-2"]["Target"]["Input"])
    assert sent == {
        "plan": "demo",
        "source": {
            "type": "dynamodb",
            "url": "dynamodb://vaultline-demo-table",
            "options": {"mode": "scan", "consistent_read": False},
        },
        "compression_level": 3,
        "worker_concurrency": 10,
        "tags": {"owner": "platform"},
        "retention": {"keep_last": 3, "keep_hourly": 24, "keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12},
    }


def test_one_schedule_per_source_with_cron_timezone_and_window_off(multi_synth: Synth) -> None:
    schedules = _schedules(multi_synth)
    assert sorted(schedules) == ["vaultline-docs", "vaultline-photos-1", "vaultline-photos-2"]
    photos = parse_plans(MULTI_PLANS).get("photos")
    for index, name in enumerate(("vaultline-photos-1", "vaultline-photos-2")):
        schedule = schedules[name]
        assert schedule["ScheduleExpression"] == "cron(0 3 * * ? *)"
        assert schedule["ScheduleExpressionTimezone"] == "Europe/Berlin"
        assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
        assert json.loads(schedule["Target"]["Input"]) == plan_input(photos, photos.sources[index])
    assert json.loads(schedules["vaultline-photos-1"]["Target"]["Input"])["source"]["url"] == (
        "s3://photo-originals/raw/"
    )
    assert schedules["vaultline-docs"]["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 30}


def test_failed_starts_are_retried_then_dead_lettered_to_an_encrypted_queue(synth: Synth) -> None:
    target = _schedules(synth)["vaultline-demo-1"]["Target"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3}
    queue_id, queue = synth.only("AWS::SQS::Queue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert "KmsMasterKeyId" in queue["Properties"]


def test_scheduler_role_may_only_start_the_backup_and_dead_letter(synth: Synth) -> None:
    _, role = synth.only("AWS::IAM::Role", "SchedulesRole")
    principal = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert principal["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in principal["Condition"]["StringEquals"]
    granted = {a for s in statements(synth, "SchedulesRole") for a in actions_of(s)}
    assert granted == {"states:StartExecution", "sqs:SendMessage", "kms:GenerateDataKey", "kms:Decrypt"}
    machine_id, _ = synth.only("AWS::StepFunctions::StateMachine", "WorkflowsBackup")
    start = [s for s in statements(synth, "SchedulesRole") if "states:StartExecution" in actions_of(s)]
    assert resources_of(start[0]) == [f"REF_{machine_id}"]
