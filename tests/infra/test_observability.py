"""Notifications, alarms, dashboard and the stack outputs the CLI reads."""

from __future__ import annotations

import json

from aws_cdk.assertions import Match

from infra import constants as c
from tests.infra.conftest import Synth
from vaultline.plans import load_plans, plan_inputs


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
    synth.assertions.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "Namespace": "AWS/States",
            "MetricName": "ExecutionsFailed",
            "Dimensions": [{"Name": "StateMachineArn", "Value": {"Ref": backup_id}}],
            "Statistic": "Sum",
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": topic_id}],
        },
    )


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
