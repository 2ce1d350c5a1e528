"""The freshness check: each watched heartbeat metric's sum over a window longer than CloudWatch alarms look back.

A CloudWatch alarm evaluates at most seven days of data (Period x EvaluationPeriods <= 604,800 s), so "no recovery
point within a weekly schedule plus its margin" cannot be one alarm on the commits' metric. The check runs on a
schedule, asks CloudWatch (GetMetricData) for each watched metric's sum over its own window, and the handler
publishes it as ``<name>InWindow``: the alarm on that says ``< 1``, and its missing data breaches, so a check that
stops running alarms too. Memory and requests grow with the number of watched metrics (at most 500, one
GetMetricData request per 500), never with the data.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from vaultline.runs.metrics import FreshnessCheckEvent, FreshnessReport, MetricCount

_HOUR = 3600


def count_in_windows(cloudwatch: Any, event: FreshnessCheckEvent, now: datetime) -> FreshnessReport:
    """Sum each watched metric over the window that ends ``now``."""
    report = FreshnessReport()
    if not event.watched:
        return report
    latest = max(w.window_seconds for w in event.watched)
    queries = [
        {
            "Id": f"m{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": event.namespace,
                    "MetricName": watched.name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in sorted(watched.dimensions.items())],
                },
                # Hourly sums (the resolution CloudWatch keeps longest), added up below over each own window.
                "Period": _HOUR,
                "Stat": "Sum",
            },
        }
        for index, watched in enumerate(event.watched)
    ]
    start = now - timedelta(seconds=latest)
    sums: dict[str, float] = {}
    paginator_args: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": now}
    while True:
        page = cloudwatch.get_metric_data(**paginator_args)
        for result in page["MetricDataResults"]:
            index = int(result["Id"][1:])
            since = now - timedelta(seconds=event.watched[index].window_seconds)
            inside = (v for t, v in zip(result["Timestamps"], result["Values"], strict=True) if t >= since)
            sums[result["Id"]] = sums.get(result["Id"], 0.0) + sum(inside)
        token = page.get("NextToken")
        if not token:
            break
        paginator_args["NextToken"] = token
    for index, watched in enumerate(event.watched):
        report.counts.append(
            MetricCount(name=watched.in_window_name, dimensions=watched.dimensions, count=sums.get(f"m{index}", 0.0))
        )
    return report


__all__ = ["count_in_windows"]
