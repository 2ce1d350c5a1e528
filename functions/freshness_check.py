"""Lambda handler: Add up each long-scheduled heartbeat metric over its window, publish it as <name>InWindow."""

from datetime import UTC, datetime
from typing import Any

from observability import lambda_handler, publish_count

from vaultline.aws import client
from vaultline.runs.freshness_steps import count_in_windows
from vaultline.runs.metrics import FreshnessCheckEvent, FreshnessReport


def step(event: dict[str, Any]) -> FreshnessReport:
    """Add up each long-scheduled heartbeat metric over its window, publish it as <name>InWindow."""
    report = count_in_windows(client("cloudwatch"), FreshnessCheckEvent.model_validate(event), datetime.now(UTC))
    for found in report.counts:
        publish_count(found.name, found.dimensions, found.count)
    return report


handler = lambda_handler(step)
