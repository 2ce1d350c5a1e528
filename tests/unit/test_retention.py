"""Keep rules against restic's documented `forget` semantics, table by table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vaultline.errors import UsageError
from vaultline.operations.retention import Duration, PointInTime, RetentionPolicy, apply_policy


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def points(*times: str, source: str = "s3://a", tags: dict[str, dict[str, str]] | None = None) -> list[PointInTime]:
    return [PointInTime(id=t, source=source, time=at(t), tags=(tags or {}).get(t, {})) for t in times]


def kept(policy: RetentionPolicy, pts: list[PointInTime]) -> list[str]:
    return [d.id for d in apply_policy(pts, policy) if d.keep]


DAYS = points(
    "2026-03-01T10:00",
    "2026-03-01T12:00",
    "2026-03-02T09:00",
    "2026-03-03T08:00",
    "2026-03-03T20:00",
    "2026-03-05T07:00",
)

CASES = [
    ("keep-last keeps the newest n", RetentionPolicy(keep_last=2), DAYS, ["2026-03-05T07:00", "2026-03-03T20:00"]),
    (
        "keep-daily keeps the newest of each day, newest days first",
        RetentionPolicy(keep_daily=3),
        DAYS,
        ["2026-03-05T07:00", "2026-03-03T20:00", "2026-03-02T09:00"],
    ),
    (
        "a rule with count left at the end keeps the oldest point too",
        RetentionPolicy(keep_daily=10),
        DAYS,
        ["2026-03-05T07:00", "2026-03-03T20:00", "2026-03-02T09:00", "2026-03-01T12:00", "2026-03-01T10:00"],
    ),
    (
        "unlimited (-1) daily",
        RetentionPolicy(keep_daily=-1),
        DAYS[2:],
        ["2026-03-05T07:00", "2026-03-03T20:00", "2026-03-02T09:00"],
    ),
    (
        "keep-hourly buckets by hour",
        RetentionPolicy(keep_hourly=2),
        points("2026-03-01T10:05", "2026-03-01T10:45", "2026-03-01T11:10", "2026-03-01T11:50"),
        ["2026-03-01T11:50", "2026-03-01T10:45"],
    ),
    (
        "keep-weekly buckets by ISO week (Sunday ends a week, Monday starts the next)",
        RetentionPolicy(keep_weekly=2),
        points("2026-03-01T10:00", "2026-03-07T10:00", "2026-03-08T10:00", "2026-03-09T10:00"),
        ["2026-03-09T10:00", "2026-03-08T10:00"],
    ),
    (
        "keep-monthly and keep-yearly",
        RetentionPolicy(keep_monthly=2, keep_yearly=2),
        points("2024-12-31T00:00", "2025-06-01T00:00", "2025-12-01T00:00", "2026-01-05T00:00", "2026-01-20T00:00"),
        ["2026-01-20T00:00", "2025-12-01T00:00"],
    ),
    (
        "keep-within is relative to the newest point, not to now, and strict",
        RetentionPolicy(keep_within="2d"),
        points("2026-03-01T12:00", "2026-03-01T12:01", "2026-03-03T12:00"),
        ["2026-03-03T12:00", "2026-03-01T12:01"],
    ),
    (
        "keep-within months overflow like Go AddDate: March 31 minus 1m is March 3",
        RetentionPolicy(keep_within="1m"),
        points("2026-03-03T12:00", "2026-03-03T12:01", "2026-03-31T12:00"),
        ["2026-03-31T12:00", "2026-03-03T12:01"],
    ),
    (
        "keep-tag keeps tagged points whatever their age",
        RetentionPolicy(keep_last=1, keep_tags=["release"]),
        points("2026-01-01T00:00", "2026-02-01T00:00", "2026-03-01T00:00", tags={"2026-01-01T00:00": {"release": "1"}}),
        ["2026-03-01T00:00", "2026-01-01T00:00"],
    ),
    (
        "keep-tag with k=v and a comma needs every tag",
        RetentionPolicy(keep_tags=["env=prod,release"]),
        points(
            "2026-01-01T00:00",
            "2026-02-01T00:00",
            tags={"2026-01-01T00:00": {"env": "prod", "release": ""}, "2026-02-01T00:00": {"env": "prod"}},
        ),
        ["2026-01-01T00:00"],
    ),
]


@pytest.mark.parametrize(("name", "policy", "pts", "expected"), CASES, ids=[c[0] for c in CASES])
def test_keep_rules_match_restic_semantics(
    name: str, policy: RetentionPolicy, pts: list[PointInTime], expected: list[str]
) -> None:
    assert kept(policy, pts) == expected


def test_rules_apply_per_source_and_reasons_name_every_rule_that_keeps() -> None:
    pts = points("2026-03-01T10:00", "2026-03-02T10:00", source="s3://a") + points("2026-03-01T11:00", source="/b")
    decisions = apply_policy(pts, RetentionPolicy(keep_last=1, keep_daily=1))
    by_id = {(d.source, d.id): d for d in decisions}
    assert by_id[("s3://a", "2026-03-02T10:00")].reasons == ["last snapshot", "daily snapshot"]
    assert not by_id[("s3://a", "2026-03-01T10:00")].keep
    assert by_id[("/b", "2026-03-01T11:00")].keep  # the newest of its own source


def test_an_empty_policy_is_refused() -> None:
    with pytest.raises(UsageError, match="no keep rule"):
        apply_policy(DAYS, RetentionPolicy())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1y2m3d4h", Duration(years=1, months=2, days=3, hours=4)),
        ("36h", Duration(hours=36)),
        ("2d1y", Duration(years=1, days=2)),
    ],
)
def test_durations_parse_like_restic(text: str, expected: Duration) -> None:
    assert Duration.parse(text) == expected


@pytest.mark.parametrize("text", ["", "2w", "1.5d", "d", "1y 2m"])
def test_malformed_durations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        Duration.parse(text)
