"""CloudWatch Logs' embedded metric format (EMF), as the embedded AWS's Lambda needs it: a function's log line that is
an EMF document becomes metrics in CloudWatch, which is how Powertools Metrics publish on Lambda (no PutMetricData,
so no IAM permission of the function's: the log ingestion extracts them).

An EMF document is a JSON object whose ``_aws`` member holds ``Timestamp`` (epoch milliseconds) and
``CloudWatchMetrics``: directives of a ``Namespace``, ``Dimensions`` (sets of member names) and ``Metrics`` (each a
``Name`` and ``Unit``); the values are the object's members of those names. Each metric is put once per dimension
set, with the dimensions' values read from the object. Lines that are not EMF are logs and stay logs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends


def metric_data(line: str) -> list[tuple[str, dict[str, Any]]]:
    """The (namespace, PutMetricData datum) pairs one log line holds; none for a line that is not EMF."""
    line = line.strip()
    if not line.startswith("{"):
        return []
    try:
        document = json.loads(line)
    except ValueError:
        return []
    meta = document.get("_aws") if isinstance(document, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("CloudWatchMetrics"), list):
        return []
    # moto keeps metric timestamps as naive UTC datetimes (and parses requests' times so).
    timestamp = datetime.fromtimestamp(int(meta.get("Timestamp", 0)) / 1000, UTC).replace(tzinfo=None)
    found: list[tuple[str, dict[str, Any]]] = []
    for directive in meta["CloudWatchMetrics"]:
        for dimension_set in directive.get("Dimensions") or [[]]:
            dimensions = [{"Name": name, "Value": str(document[name])} for name in dimension_set]
            for metric in directive.get("Metrics", []):
                values = document.get(metric["Name"])
                for value in values if isinstance(values, list) else [values]:
                    datum = {
                        "MetricName": metric["Name"],
                        "Dimensions": dimensions,
                        "Timestamp": timestamp,
                        "Value": float(value),
                        "Unit": metric.get("Unit", "None"),
                    }
                    found.append((directive["Namespace"], datum))
    return found


def ingest(log_text: str, account: str, region: str) -> int:
    """Put the metrics of every EMF line of ``log_text`` into the embedded CloudWatch; how many."""
    backend = cloudwatch_backends[account][region]
    count = 0
    for line in log_text.splitlines():
        for namespace, datum in metric_data(line):
            backend.put_metric_data(namespace, [datum])
            count += 1
    return count


__all__ = ["ingest", "metric_data"]
