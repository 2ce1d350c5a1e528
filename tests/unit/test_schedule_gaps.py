"""A schedule's longest gap between starts (what a source's freshness alarm waits), from rate and cron alike."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vaultline.plans import PlansFileError, parse_plans
from vaultline.schedule_gaps import UnboundedSchedule, longest_gap

DAY = timedelta(days=1)


@pytest.mark.parametrize(
    ("expression", "gap"),
    [
        ("rate(1 minute)", timedelta(minutes=1)),
        ("rate(15 minutes)", timedelta(minutes=15)),
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(7 days)", 7 * DAY),
        ("cron(0/15 * * * ? *)", timedelta(minutes=15)),
        ("cron(0 0,12 * * ? *)", timedelta(hours=12)),
        ("cron(0 3 * * ? *)", DAY),
        ("cron(30 1 ? * SUN *)", 7 * DAY),
        ("cron(0 3 1 * ? *)", 31 * DAY),  # January 1st to February 1st
        ("cron(0 3 1 1 ? *)", 366 * DAY),  # across a leap year
    ],
)
def test_a_regular_schedule_waits_its_period(expression: str, gap: timedelta) -> None:
    assert longest_gap(expression) == gap


def test_weekdays_only_wait_over_the_weekend() -> None:
    assert longest_gap("cron(0 3 ? * MON-FRI *)") == 3 * DAY


def test_uneven_hours_wait_their_longest_stretch() -> None:
    # 06:00, 09:00, 18:00: the night from 18:00 to 06:00 is the longest gap.
    assert longest_gap("cron(0 6,9,18 * * ? *)") == timedelta(hours=12)


def test_the_last_day_of_the_month_waits_up_to_31_days() -> None:
    assert longest_gap("cron(0 3 L * ? *)") == 31 * DAY


def test_the_nth_and_the_last_weekday_of_a_month_wait_up_to_five_weeks() -> None:
    assert longest_gap("cron(0 3 ? * 2#1 *)") == 35 * DAY  # the first Monday
    assert longest_gap("cron(0 3 ? * 6L *)") == 35 * DAY  # the last Friday


def test_the_nearest_weekday_can_move_a_day_either_way() -> None:
    # The 15th on a Saturday runs on Friday the 14th; a month later on a Sunday, on Monday the 16th.
    assert longest_gap("cron(0 3 15W * ? *)") == 32 * DAY


def test_a_zone_with_daylight_saving_time_adds_its_shift() -> None:
    assert longest_gap("cron(0 3 * * ? *)", "Europe/Berlin") == DAY + timedelta(hours=1)
    assert longest_gap("cron(0 3 * * ? *)", "Asia/Tokyo") == DAY


def test_a_rate_ignores_the_time_zone() -> None:
    assert longest_gap("rate(2 hours)", "Europe/Berlin") == timedelta(hours=2)


def test_a_schedule_limited_to_some_years_has_no_bound() -> None:
    with pytest.raises(UnboundedSchedule, match="starts only in the years 2026"):
        longest_gap("cron(0 3 * * ? 2026)")


def test_a_day_that_never_comes_has_no_bound() -> None:
    with pytest.raises(UnboundedSchedule, match="fewer than two days"):
        longest_gap("cron(0 3 30 2 ? *)")  # February 30th


def test_the_plans_file_refuses_a_schedule_that_stops_naming_the_plan_and_field() -> None:
    text = """
plans:
  - name: photos
    sources: [{type: s3, bucket: my-photos}]
    schedule: {expression: "cron(0 3 * * ? 2026-2027)"}
"""
    with pytest.raises(PlansFileError, match=r"^<plans>: plan 'photos': schedule: expression: .*2026-2027"):
        parse_plans(text)


def test_a_plan_may_set_its_alarm_margin() -> None:
    text = """
plans:
  - name: photos
    sources: [{type: s3, bucket: my-photos}]
    schedule: {expression: "rate(1 day)", alarm_margin_minutes: 90}
"""
    assert parse_plans(text).plans[0].schedule.alarm_margin_minutes == 90
