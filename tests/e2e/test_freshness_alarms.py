"""The good news the freshness alarms wait for is published by the real commits, with the very dimensions the
deployed alarms watch: a dimension spelled otherwise on either side fails here (the alarm would always fire)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import Deployment
from vaultline.aws import client
from vaultline.cli.stack import follow
from vaultline_dev.embedded.deploy import fire_schedule

pytestmark = pytest.mark.e2e


def _freshness_alarm(source_url: str) -> dict[str, Any]:
    alarms = client("cloudwatch").describe_alarms(AlarmTypes=["MetricAlarm"])["MetricAlarms"]
    found = [
        a
        for a in alarms
        if a.get("MetricName") == "RecoveryPointCreated"
        and {"Name": "source", "Value": source_url} in a.get("Dimensions", [])
    ]
    assert len(found) == 1, [a["AlarmName"] for a in alarms]
    return found[0]


def _sum_as_the_alarm_reads_it(alarm: dict[str, Any], metric_name: str | None = None) -> float:
    now = datetime.now(UTC)
    points = client("cloudwatch").get_metric_statistics(
        Namespace=alarm["Namespace"],
        MetricName=metric_name or alarm["MetricName"],
        Dimensions=alarm["Dimensions"],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=alarm["Period"],
        Statistics=[alarm["Statistic"]],
    )["Datapoints"]
    return sum(p[alarm["Statistic"]] for p in points)


def _schedule(d: Deployment, index: int) -> str:
    (name,) = [s for s in d.deployed.schedules if s == f"vaultline-demo-{index}"]
    return name


def test_a_scheduled_backup_publishes_the_heartbeat_its_freshness_alarm_and_the_freshness_check_read(
    deployment: Deployment,
) -> None:
    url = deployment.stack.plans["demo"][0]["source"]["url"]
    client("s3").create_bucket(Bucket=url.removeprefix("s3://"))
    client("s3").put_object(Bucket=url.removeprefix("s3://"), Key="a.txt", Body=b"good news")
    alarm = _freshness_alarm(url)
    assert alarm["TreatMissingData"] == "breaching"
    assert _sum_as_the_alarm_reads_it(alarm) == 0

    committed = follow(fire_schedule(_schedule(deployment, 1)), poll_seconds=0.05)["committed"]

    assert committed["source"] == url
    assert _sum_as_the_alarm_reads_it(alarm) == 1

    # A weekly source's alarm reads the freshness check's sum over its window, published with the same dimensions.
    dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
    event = {
        "namespace": alarm["Namespace"],
        "watched": [{"name": "RecoveryPointCreated", "dimensions": dimensions, "window_seconds": 8 * 86400}],
    }
    check = next(
        deployment.deployed.physical[logical]
        for logical, resource in deployment.deployed.resources.items()
        if resource["Type"] == "AWS::Lambda::Function" and logical.startswith("FunctionsFreshnessCheck")
    )
    # Invoked as its schedule would: the function's own role must be allowed to read the metrics.
    response = client("lambda").invoke(FunctionName=check, Payload=json.dumps(event).encode())

    assert "FunctionError" not in response, response["Payload"].read()
    report = json.loads(response["Payload"].read())
    assert report["counts"] == [{"name": "RecoveryPointCreatedInWindow", "dimensions": dimensions, "count": 1.0}]
    assert _sum_as_the_alarm_reads_it(alarm, "RecoveryPointCreatedInWindow") == 1
