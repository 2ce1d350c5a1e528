"""Alarms for missing good news: every plan source's freshness alarm, the verify's and the drill's, the freshness
check for windows beyond an alarm's range, a failure alarm for every workflow, and all of them on the dashboard."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra import constants as c
from infra.freshness import (
    MAX_EVALUATION_RANGE_SECONDS,
    Evaluation,
    alarm_window,
    heartbeat_evaluation,
    refused_by_cloudwatch,
    schedule_window,
)
from tests.infra.conftest import Synth, resolve, synthesize
from vaultline.plans import load_plans, parse_plans
from vaultline.runs.metrics import FreshnessCheckEvent, dimension_value, recovery_point_dimensions

WEEKLY_PLANS = """\
version: 1
plans:
  - name: archive
    sources: [{type: s3, bucket: company-archive}]
    schedule: {expression: "cron(0 2 ? * SUN *)", timezone: UTC}
  - name: hourly
    sources: [{type: dynamodb, table: orders}]
    schedule: {expression: "rate(1 hour)", alarm_margin_minutes: 30}
"""


@pytest.fixture(scope="module")
def weekly_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    plans = tmp_path_factory.mktemp("plans") / "plans.yaml"
    plans.write_text(WEEKLY_PLANS)
    return synthesize({"plansFile": str(plans), "maintenanceDrill": True}, nag=True)


def _alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in synth.resources("AWS::CloudWatch::Alarm").items()}


def _dimensions(alarm: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}


def _freshness_alarm(synth: Synth, metric: str, dimensions: dict[str, str]) -> dict[str, Any]:
    found = [a for a in _alarms(synth).values() if a.get("MetricName") == metric and _dimensions(a) == dimensions]
    assert len(found) == 1, f"expected one {metric} alarm on {dimensions}, got {len(found)}"
    return found[0]


def _covers(alarm: dict[str, Any], window: timedelta) -> None:
    """The alarm fires only when every one of its periods is empty, and its whole periods cover the window."""
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1
    assert alarm["Statistic"] == "Sum"
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"]
    assert (alarm["EvaluationPeriods"] - 1) * alarm["Period"] >= window.total_seconds()


# --- the window and the alarm's evaluation ------------------------------------------------------------------


def test_the_window_adds_the_flexible_window_the_retries_and_a_run_allowance() -> None:
    hour = timedelta(hours=1)
    assert alarm_window(hour, flexible_window_minutes=15) == hour + timedelta(minutes=15) + hour + hour
    assert alarm_window(timedelta(days=1)) == timedelta(days=1) + hour + timedelta(hours=6)
    assert alarm_window(hour, margin_minutes=10) == hour + hour + timedelta(minutes=10)


def test_a_weekly_schedule_needs_more_than_an_alarm_can_look_back() -> None:
    weekly = parse_plans(WEEKLY_PLANS).plans[0].schedule
    assert schedule_window(weekly) > timedelta(seconds=MAX_EVALUATION_RANGE_SECONDS)
    assert heartbeat_evaluation(schedule_window(weekly)) is None


@given(st.integers(min_value=60, max_value=MAX_EVALUATION_RANGE_SECONDS - 3600))
def test_every_window_an_alarm_can_watch_gets_an_evaluation_cloudwatch_takes(seconds: int) -> None:
    evaluation = heartbeat_evaluation(timedelta(seconds=seconds))
    assert evaluation is not None
    assert refused_by_cloudwatch(evaluation) is None
    assert (evaluation.evaluation_periods - 1) * evaluation.period_seconds >= seconds


def test_short_windows_are_watched_in_five_minute_periods() -> None:
    assert heartbeat_evaluation(timedelta(hours=3, minutes=15)) == Evaluation(300, 40)
    assert heartbeat_evaluation(timedelta(hours=31)) == Evaluation(3600, 32)


@pytest.mark.parametrize(
    ("evaluation", "reason"),
    [
        (Evaluation(90, 2), "not 10, 20, 30 or a multiple of 60"),
        (Evaluation(300, 289), "over 86400"),
        (Evaluation(3600, 169), "over 604800"),
        (Evaluation(3600, 0), "under 1"),
    ],
)
def test_what_cloudwatch_refuses_is_named(evaluation: Evaluation, reason: str) -> None:
    assert reason in (refused_by_cloudwatch(evaluation) or "")


def test_a_dimension_value_is_ascii_and_fits_the_alarm_limit() -> None:
    assert dimension_value("s3://bucket/photos/") == "s3://bucket/photos/"
    assert dimension_value("s3://bucket/fotos/straße") == "s3://bucket/fotos/stra%C3%9Fe"
    long_a, long_b = "s3://b/" + "a" * 300, "s3://b/" + "a" * 299 + "b"
    assert len(dimension_value(long_a)) == 255
    assert dimension_value(long_a) != dimension_value(long_b)


# --- the template -------------------------------------------------------------------------------------------


def test_every_plan_source_has_a_freshness_alarm_on_the_metric_its_commit_publishes(synth: Synth) -> None:
    plans = load_plans(c.ROOT / "plans.yaml")
    topic_id, _ = synth.only("AWS::SNS::Topic")
    for plan in plans.plans:
        for source in plan.sources:
            dimensions = recovery_point_dimensions(c.SERVICE_NAME, plan.name, source.url)
            alarm = _freshness_alarm(synth, "RecoveryPointCreated", dimensions)
            assert alarm["Namespace"] == c.METRICS_NAMESPACE
            assert alarm["AlarmActions"] == [{"Ref": topic_id}]
            assert source.url in alarm["AlarmDescription"]
            _covers(alarm, schedule_window(plan.schedule))


def test_the_scheduled_verify_has_a_freshness_alarm_and_the_drill_one_only_when_drills_run(
    synth: Synth, weekly_synth: Synth
) -> None:
    service = {"service": c.SERVICE_NAME}
    for stack in (synth, weekly_synth):
        _covers(_freshness_alarm(stack, "VerifyCompleted", service), timedelta(hours=31))
    assert not [a for a in _alarms(synth).values() if a.get("MetricName") == "DrillCompleted"]
    _covers(_freshness_alarm(weekly_synth, "DrillCompleted", service), timedelta(hours=31))


def test_a_weekly_source_is_watched_through_the_freshness_check(weekly_synth: Synth) -> None:
    dimensions = recovery_point_dimensions(c.SERVICE_NAME, "archive", "s3://company-archive")
    alarm = _freshness_alarm(weekly_synth, "RecoveryPointCreatedInWindow", dimensions)
    assert alarm["TreatMissingData"] == "breaching"  # a check that stopped running alarms too
    assert (alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (3600, 3, 3)

    _, schedule = weekly_synth.only("AWS::Scheduler::Schedule", "FreshnessCheckSchedule")
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "rate(1 hour)"
    check_id, _ = weekly_synth.only("AWS::Lambda::Function", "FreshnessCheck")
    assert props["Target"]["Arn"] == {"Fn::GetAtt": [check_id, "Arn"]}
    event = FreshnessCheckEvent.model_validate_json(props["Target"]["Input"])
    (watched,) = event.watched
    assert (watched.name, watched.dimensions) == ("RecoveryPointCreated", dimensions)
    weekly = parse_plans(WEEKLY_PLANS).plans[0].schedule
    assert watched.window_seconds == math.ceil(schedule_window(weekly).total_seconds())
    # The hourly source of the same stack still has its own alarm on the commits' metric.
    hourly = recovery_point_dimensions(c.SERVICE_NAME, "hourly", "dynamodb://orders")
    _covers(_freshness_alarm(weekly_synth, "RecoveryPointCreated", hourly), timedelta(hours=2, minutes=30))


def test_the_freshness_check_may_read_metrics_and_scheduler_may_invoke_only_it(weekly_synth: Synth) -> None:
    from tests.infra.conftest import actions_of, statements

    check_role = statements(weekly_synth, "FreshnessCheckServiceRole")
    assert any(actions_of(s) == {"cloudwatch:GetMetricData"} for s in check_role)
    check_id, _ = weekly_synth.only("AWS::Lambda::Function", "FreshnessCheck")
    invoke = [s for s in statements(weekly_synth, "FreshnessCheckRole") if "lambda:InvokeFunction" in actions_of(s)]
    assert [s["Resource"] for s in invoke] == [{"Fn::GetAtt": [check_id, "Arn"]}]


def test_a_stack_without_long_windows_schedules_no_freshness_check(synth: Synth) -> None:
    assert [k for k in synth.resources("AWS::Scheduler::Schedule") if "Freshness" in k] == []


def test_the_weekly_stack_passes_cdk_nag(weekly_synth: Synth) -> None:
    violations = [
        f"{v['ruleName']} at {construct['constructPath']}"
        for plugin in (weekly_synth.validation_report or {}).get("pluginReports", [])
        for v in plugin["violations"]
        for construct in v["violatingConstructs"]
    ]
    assert violations == [] and weekly_synth.synth_error is None


def test_every_state_machine_has_a_failure_alarm_counting_failed_timed_out_and_aborted_runs(synth: Synth) -> None:
    machines = synth.resources("AWS::StepFunctions::StateMachine")
    assert len(machines) >= 3
    watched: dict[str, set[str]] = {}
    for alarm in _alarms(synth).values():
        for query in alarm.get("Metrics", []):
            metric = query.get("MetricStat", {}).get("Metric", {})
            if metric.get("Namespace") == "AWS/States":
                (dimension,) = metric["Dimensions"]
                watched.setdefault(dimension["Value"]["Ref"], set()).add(metric["MetricName"])
    expected = {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    assert watched == {machine: expected for machine in machines}


def test_the_dashboard_shows_every_alarm_and_every_heartbeat(synth: Synth) -> None:
    _, dashboard = synth.only("AWS::CloudWatch::Dashboard")
    body = resolve(dashboard["Properties"]["DashboardBody"])
    for alarm_id in _alarms(synth):
        assert f"GETATT_{alarm_id}_Arn" in body, alarm_id
    widgets = json.loads(body.replace("GETATT_", "").replace("REF_", ""))["widgets"]
    graphed = json.dumps([w for w in widgets if w["type"] == "metric"])
    for metric in ("RecoveryPointCreated", "VerifyCompleted"):
        assert metric in graphed
