"""The freshness check against CloudWatch, the embedded AWS's EMF extraction of what the handlers publish, and the
alarm limits CloudWatch enforces (which moto alone forgives)."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import single_metric
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from infra.freshness import heartbeat_evaluation
from vaultline.runs.freshness_steps import count_in_windows
from vaultline.runs.metrics import FreshnessCheckEvent, WatchedMetric, recovery_point_dimensions
from vaultline_dev.embedded import emf

NAMESPACE = "Vaultline"
ALPHA = recovery_point_dimensions("vaultline", "nightly", "s3://alpha")
BETA = recovery_point_dimensions("vaultline", "nightly", "s3://beta")


@pytest.fixture
def cloudwatch(aws: None) -> Any:
    return boto3.client("cloudwatch", region_name="us-east-1")


def _beat(cloudwatch: Any, dimensions: dict[str, str], when: datetime) -> None:
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": "RecoveryPointCreated",
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                "Timestamp": when,
                "Value": 1,
            }
        ],
    )


def _watch(dimensions: dict[str, str], days: int) -> WatchedMetric:
    return WatchedMetric(name="RecoveryPointCreated", dimensions=dimensions, window_seconds=days * 86400)


def test_the_check_counts_each_sources_recovery_points_within_its_own_window(cloudwatch: Any) -> None:
    now = datetime.now(UTC)
    _beat(cloudwatch, ALPHA, now - timedelta(days=2))
    _beat(cloudwatch, ALPHA, now - timedelta(days=10))
    _beat(cloudwatch, BETA, now - timedelta(days=9))
    event = FreshnessCheckEvent(namespace=NAMESPACE, watched=[_watch(ALPHA, 8), _watch(ALPHA, 12), _watch(BETA, 8)])

    report = count_in_windows(cloudwatch, event, now)

    assert [(c.name, c.dimensions, c.count) for c in report.counts] == [
        ("RecoveryPointCreatedInWindow", ALPHA, 1.0),
        ("RecoveryPointCreatedInWindow", ALPHA, 2.0),
        ("RecoveryPointCreatedInWindow", BETA, 0.0),  # its last one is older than its window: the alarm's news
    ]


def test_the_check_with_nothing_to_watch_asks_nothing(cloudwatch: Any) -> None:
    assert count_in_windows(None, FreshnessCheckEvent(namespace=NAMESPACE, watched=[]), datetime.now(UTC)).counts == []


def test_powertools_metrics_reach_cloudwatch_with_exactly_their_dimensions(cloudwatch: Any) -> None:
    printed = io.StringIO()
    with (
        redirect_stdout(printed),
        single_metric(
            name="RecoveryPointCreated", unit=MetricUnit.Count, value=1, namespace=NAMESPACE, default_dimensions=ALPHA
        ),
    ):
        pass
    log = "START RequestId: r1\n" + printed.getvalue() + "not json {\nEND RequestId: r1\n"

    assert emf.ingest(log, "123456789012", "us-east-1") == 1

    now = datetime.now(UTC)
    points = cloudwatch.get_metric_statistics(
        Namespace=NAMESPACE,
        MetricName="RecoveryPointCreated",
        Dimensions=[{"Name": k, "Value": v} for k, v in ALPHA.items()],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
        Period=300,
        Statistics=["Sum"],
    )["Datapoints"]
    assert sum(p["Sum"] for p in points) == 1


def _alarm(cloudwatch: Any, period: int, periods: int, **extra: Any) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName="freshness",
        Namespace=NAMESPACE,
        MetricName="RecoveryPointCreated",
        Statistic="Sum",
        Period=period,
        EvaluationPeriods=periods,
        Threshold=1,
        ComparisonOperator="LessThanThreshold",
        TreatMissingData="breaching",
        **extra,
    )


@pytest.mark.parametrize(
    ("period", "periods", "extra"),
    [
        (90, 2, {}),  # not a multiple of 60
        (300, 289, {}),  # over a day with periods under an hour
        (3600, 169, {}),  # over seven days
        (86400, 8, {}),
        (3600, 3, {"DatapointsToAlarm": 4}),
    ],
)
def test_cloudwatch_refuses_an_alarm_it_cannot_evaluate(
    cloudwatch: Any, period: int, periods: int, extra: dict[str, Any]
) -> None:
    with pytest.raises(ClientError) as refused:
        _alarm(cloudwatch, period, periods, **extra)
    assert refused.value.response["Error"]["Code"] == "ValidationError"


@pytest.mark.parametrize("hours", [1, 3.25, 23, 24, 31, 100, 166])
def test_cloudwatch_takes_every_freshness_alarm_the_stack_makes(cloudwatch: Any, hours: float) -> None:
    evaluation = heartbeat_evaluation(timedelta(hours=hours))
    assert evaluation is not None
    _alarm(
        cloudwatch,
        evaluation.period_seconds,
        evaluation.evaluation_periods,
        DatapointsToAlarm=evaluation.evaluation_periods,
    )
    assert cloudwatch.describe_alarms(AlarmNames=["freshness"])["MetricAlarms"]
