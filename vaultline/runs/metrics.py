"""The metrics that alarms watch, named once for both sides: the handlers that publish them and the stack's alarms.

A CloudWatch alarm matches a metric by its namespace, name and *every* dimension, exactly: a dimension the handler
spells otherwise than the alarm leaves the alarm watching a metric nobody publishes, which for a missing-data alarm
means an alarm that always fires, and for a threshold alarm one that never does. So both sides build the
dimensions here.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from pydantic import ConfigDict, Field

from vaultline.model import VaultlineModel

RECOVERY_POINT_CREATED = "RecoveryPointCreated"
"""1 per recovery point a plan's backup committed, dimensions :func:`recovery_point_dimensions`."""
VERIFY_COMPLETED = "VerifyCompleted"
"""1 per scheduled verify that ran to its summary (whatever it found: ``VerifyErrors`` counts that)."""
DRILL_COMPLETED = "DrillCompleted"
"""1 per restore drill that ran to its summary (``DrillFailures`` says whether it restored bit-exact)."""

IN_WINDOW_SUFFIX = "InWindow"
"""The freshness check republishes a watched metric's sum over its window as ``<name>InWindow``, same dimensions."""

# CloudWatch keeps 1-hour data points for 455 days: the longest window the freshness check can add up.
MAX_CHECKED_WINDOW_SECONDS = 455 * 86400

SERVICE_DIMENSION = "service"
PLAN_DIMENSION = "plan"
SOURCE_DIMENSION = "source"
# CloudFormation's AWS::CloudWatch::Alarm takes dimension values of 1-255 characters (PutMetricData 1024): the
# shorter bound holds for both.
MAX_DIMENSION_VALUE = 255
_DIGEST_CHARS = 16
# What a URL may keep as is: printable ASCII except the space and the percent sign, which quote() escapes.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


def dimension_value(text: str) -> str:
    """``text`` as a CloudWatch dimension value: printable ASCII (anything else percent-encoded, as in a URL), and
    at most 255 characters: a longer one keeps its start and ends in ``~`` and 16 hex digits of its SHA-256, so
    two long source URLs that share their first 238 characters still name two metrics."""
    value = quote(text, safe=_SAFE) or "-"
    if len(value) <= MAX_DIMENSION_VALUE:
        return value
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:_DIGEST_CHARS]
    return f"{value[: MAX_DIMENSION_VALUE - _DIGEST_CHARS - 1]}~{digest}"


def recovery_point_dimensions(service: str, plan: str, source: str) -> dict[str, str]:
    """The dimensions of :data:`RECOVERY_POINT_CREATED` for a plan's source (its URL, as the manifest names it)."""
    return {
        SERVICE_DIMENSION: service,
        PLAN_DIMENSION: dimension_value(plan),
        SOURCE_DIMENSION: dimension_value(source),
    }


def service_dimensions(service: str) -> dict[str, str]:
    """The dimensions of the metrics that are the service's as a whole (Powertools' default: the service)."""
    return {SERVICE_DIMENSION: service}


class WatchedMetric(VaultlineModel):
    """One heartbeat metric the freshness check adds up over a window longer than a CloudWatch alarm can look back
    (infra/freshness.py); its sum is published as ``<name>InWindow`` with the same dimensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    dimensions: dict[str, str]
    window_seconds: int = Field(ge=3600, le=MAX_CHECKED_WINDOW_SECONDS)

    @property
    def in_window_name(self) -> str:
        return self.name + IN_WINDOW_SUFFIX


class FreshnessCheckEvent(VaultlineModel):
    """The freshness check's input, as its schedule sends it."""

    model_config = ConfigDict(extra="ignore")

    namespace: str
    watched: list[WatchedMetric] = Field(max_length=500)


class MetricCount(VaultlineModel):
    name: str
    dimensions: dict[str, str]
    count: float


class FreshnessReport(VaultlineModel):
    """What the freshness check found: each watched metric's sum over its window."""

    counts: list[MetricCount] = Field(default_factory=list)


__all__ = [
    "DRILL_COMPLETED",
    "RECOVERY_POINT_CREATED",
    "VERIFY_COMPLETED",
    "FreshnessCheckEvent",
    "FreshnessReport",
    "MetricCount",
    "WatchedMetric",
    "dimension_value",
    "recovery_point_dimensions",
    "service_dimensions",
]
