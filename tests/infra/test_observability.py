"""Notifications, alarms, dashboard and the stack outputs the CLI reads."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from infra import constants as c
from infra.app import build_app
from infra.settings import SettingsError
from tests.infra.conftest import Synth, resolve, synthesize
from vaultline.plans import load_plans
from vaultline.runs.requests import plan_inputs


def test_topic_is_kms_encrypted_with_a_rotated_key(synth: Synth) -> None:
    _, topic = synth.only("AWS::SNS::Topic")
    key_id, key = synth.only("AWS::KMS::Key", "NotificationKey")
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True


def test_failed_timed_out_and_aborted_executions_of_both_machines_reach_the_topic(synth: Synth) -> None:
    topic_id, _ = synth.only("AWS::SNS::Topic")
    backup_id, _ = synth.only("AWS::StepFunctions::StateMachine", "WorkflowsBackup")
    restore_id, _ = synth.only("AWS::StepFunctions::StateMachine", "WorkflowsRestore")
    synth.assertions.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {
                    "status": ["FAILED", "TIMED_OUT", "ABORTED"],
                    "stateMachineArn": [{"Ref": backup_id}, {"Ref": restore_id}],
                },
            },
            "Targets": [Match.object_like({"Arn": {"Ref": topic_id}})],
        },
    )


def test_vaultline_outcome_events_reach_the_topic(synth: Synth) -> None:
    topic_id, _ = synth.only("AWS::SNS::Topic")
    synth.assertions.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["vaultline"],
                "detail-type": Match.array_with(["Vaultline Backup Failed", "Vaultline Restore Failed"]),
            },
            "Targets": [Match.object_like({"Arn": {"Ref": topic_id}})],
        },
    )


def test_alarm_on_failed_backup_executions_notifies_the_topic(synth: Synth) -> None:
    topic_id, _ = synth.only("AWS::SNS::Topic")
    backup_id, _ = synth.only("AWS::StepFunctions::StateMachine", "WorkflowsBackup")
    _, alarm = synth.only("AWS::CloudWatch::Alarm", "BackupFailedAlarm")
    props = alarm["Properties"]
    assert (props["Threshold"], props["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    assert props["TreatMissingData"] == "notBreaching"
    assert props["AlarmActions"] == [{"Ref": topic_id}]
    stats = {q["Id"]: q["MetricStat"] for q in props["Metrics"] if "MetricStat" in q}
    assert {s["Metric"]["MetricName"] for s in stats.values()} == {
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
    }
    for stat in stats.values():
        assert stat["Metric"]["Namespace"] == "AWS/States" and stat["Stat"] == "Sum"
        assert stat["Metric"]["Dimensions"] == [{"Name": "StateMachineArn", "Value": {"Ref": backup_id}}]
    (expression,) = [q for q in props["Metrics"] if "Expression" in q]
    # A timed-out run must alarm even when no run failed: a missing point counts as 0, not as "no data".
    assert expression["Expression"] == "FILL(failed, 0) + FILL(timed_out, 0) + FILL(aborted, 0)"


def test_a_dashboard_exists(synth: Synth) -> None:
    synth.assertions.resource_count_is("AWS::CloudWatch::Dashboard", 1)


def test_outputs_let_the_cli_drive_the_stack(synth: Synth) -> None:
    outputs = synth.template["Outputs"]
    backup_id, _ = synth.only("AWS::StepFunctions::StateMachine", "WorkflowsBackup")
    restore_id, _ = synth.only("AWS::StepFunctions::StateMachine", "WorkflowsRestore")
    vault_id, _ = synth.only("AWS::S3::Bucket", "VaultBucket")
    key_id, _ = synth.only("AWS::KMS::Key", "VaultKey")
    assert outputs["BackupStateMachineArn"]["Value"] == {"Ref": backup_id}
    assert outputs["RestoreStateMachineArn"]["Value"] == {"Ref": restore_id}
    assert outputs["VaultBucketName"]["Value"] == {"Ref": vault_id}
    assert outputs["VaultKeyArn"]["Value"] == {"Fn::GetAtt": [key_id, "Arn"]}
    plans = json.loads(outputs["Plans"]["Value"])
    assert plans == plan_inputs(load_plans(c.ROOT / "plans.yaml"))


def test_cloudwatch_alarms_of_this_account_may_publish_to_the_topic(synth: Synth) -> None:
    topic_id, _ = synth.only("AWS::SNS::Topic")
    policies = [p["Properties"] for p in synth.resources("AWS::SNS::TopicPolicy").values()]
    statements = [s for p in policies if {"Ref": topic_id} in p["Topics"] for s in p["PolicyDocument"]["Statement"]]
    alarms = [s for s in statements if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}]
    assert len(alarms) == 1
    assert alarms[0]["Effect"] == "Allow" and alarms[0]["Action"] == "sns:Publish"
    assert alarms[0]["Resource"] == {"Ref": topic_id}
    assert alarms[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert resolve(alarms[0]["Condition"]["ArnLike"]["aws:SourceArn"]) == (
        "arn:REF_AWS__Partition:cloudwatch:REF_AWS__Region:REF_AWS__AccountId:alarm:*"
    )
    # EventBridge rules publish too (the SnsTopic target's statement).
    assert any(s.get("Principal") == {"Service": "events.amazonaws.com"} for s in statements)


def test_the_topic_key_lets_cloudwatch_and_eventbridge_encrypt_for_this_account(synth: Synth) -> None:
    _, key = synth.only("AWS::KMS::Key", "NotificationKey")
    statement = next(s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Sid") == "AllowServicePublishers")
    assert set(statement["Principal"]["Service"]) == {"events.amazonaws.com", "cloudwatch.amazonaws.com"}
    assert set(statement["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_the_stack_outputs_the_topic_arn(synth: Synth) -> None:
    topic_id, _ = synth.only("AWS::SNS::Topic")
    assert synth.template["Outputs"]["NotificationTopicArn"]["Value"] == {"Ref": topic_id}


def test_no_subscription_without_a_notification_email(synth: Synth) -> None:
    assert synth.resources("AWS::SNS::Subscription") == {}


def test_notification_email_subscribes_to_the_topic() -> None:
    emailed = synthesize({"notificationEmail": "ops@example.com"}, nag=False)
    topic_id, _ = emailed.only("AWS::SNS::Topic")
    _, subscription = emailed.only("AWS::SNS::Subscription")
    assert subscription["Properties"] == {
        "Protocol": "email",
        "TopicArn": {"Ref": topic_id},
        "Endpoint": "ops@example.com",
    }


@pytest.mark.parametrize("bad", ["ops", "ops@", "ops@example", "Ops <ops@example.com>", "a b@example.com"])
def test_a_notification_email_that_is_not_an_address_names_the_context_key(bad: str) -> None:
    with pytest.raises(SettingsError, match=r"^cdk context notificationEmail: .*is not an email address"):
        build_app({"notificationEmail": bad}, nag=False, stage_assets=False)
