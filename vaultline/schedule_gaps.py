"""The longest time between two starts of an EventBridge Scheduler expression, ``rate(...)`` or ``cron(...)``.

A source's freshness alarm (infra/freshness.py) fires when no recovery point arrived within this gap plus a margin,
so the gap must be an upper bound, never an average: ``cron(0 3 ? * MON-FRI *)`` starts daily on weekdays, but
Friday's start is followed by Monday's, 72 hours later.

Cron fields follow EventBridge: ``minutes hours day-of-month month day-of-week year`` with ``, - * / ?`` and the
``L``, ``W`` and ``#`` forms; day-of-week counts 1 (SUN) to 7 (SAT). A cron's starts are enumerated day by day over
a fixed 29-year span from 2024 (the Gregorian calendar's weekdays and leap days repeat every 28 years within a
century), in the schedule's own time zone; a zone with daylight saving time adds its shift, which can lengthen a gap
by that much. An expression that does not start forever (a year field other than ``*``) has no bound: refused.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from vaultline.errors import UsageError

_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"^rate\((?P<value>[1-9]\d*) (?P<unit>minute|hour|day)s?\)$")
_MONTH_NAMES = {
    name: n
    for n, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)
}
_WEEKDAY_NAMES = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}
SPAN_START = date(2024, 1, 1)
SPAN_YEARS = 29
_MINUTES_A_DAY = 1440


class UnboundedSchedule(UsageError):
    """A schedule whose starts have no longest gap (it stops, or never starts), so its freshness cannot be bound."""


def longest_gap(expression: str, timezone: str = "UTC") -> timedelta:
    """The longest time between two consecutive starts of ``expression`` (already validated by the plans file),
    in ``timezone``. Raises :class:`UnboundedSchedule` when there is none."""
    expression = expression.strip()
    rate = _RATE.match(expression)
    if rate:
        return timedelta(seconds=int(rate["value"]) * _RATE_UNITS[rate["unit"]])
    if expression.startswith("cron(") and expression.endswith(")"):
        return _cron_gap(expression, expression[5:-1].split(), ZoneInfo(timezone))
    raise UnboundedSchedule(f"{expression!r} is neither cron(...) nor rate(...)")


def _cron_gap(expression: str, fields: list[str], zone: ZoneInfo) -> timedelta:
    if len(fields) != 6:
        raise UnboundedSchedule(f"{expression!r} needs six fields")
    minutes_field, hours_field, dom, months_field, dow, year = (f.upper() for f in fields)
    if year != "*":
        raise UnboundedSchedule(
            f"{expression!r} starts only in the years {fields[5]}: a schedule that stops has no longest gap between "
            "backups, so no alarm can say one is missing (give '*' for the year)"
        )
    minutes = _values(minutes_field, 0, 59)
    hours = _values(hours_field, 0, 23)
    months = _values(months_field, 1, 12, _MONTH_NAMES)
    day_matches = _day_rule(dom, dow)
    starts = sorted(h * 60 + m for h in hours for m in minutes)
    days = [
        day
        for day in (SPAN_START + timedelta(days=n) for n in range(_span_days()))
        if day.month in months and day_matches(day)
    ]
    if len(days) < 2:
        raise UnboundedSchedule(f"{expression!r} starts on fewer than two days in {SPAN_YEARS} years")
    within = max((b - a for a, b in pairwise(starts)), default=0)
    # From the last start of one matching day to the first of the next.
    across = max((b - a).days * _MINUTES_A_DAY + starts[0] - starts[-1] for a, b in pairwise(days))
    return timedelta(minutes=max(within, across)) + _daylight_saving_shift(zone)


def _span_days() -> int:
    end = date(SPAN_START.year + SPAN_YEARS, 1, 1)
    return (end - SPAN_START).days


def _daylight_saving_shift(zone: ZoneInfo) -> timedelta:
    """How much the zone's UTC offset moves within a year (0 for UTC, an hour for most zones that observe DST)."""
    offsets = [
        datetime(SPAN_START.year, month, 1, 12, tzinfo=UTC).astimezone(zone).utcoffset() or timedelta()
        for month in range(1, 13)
    ]
    return max(offsets) - min(offsets)


def _values(field: str, low: int, high: int, names: dict[str, int] | None = None) -> set[int]:
    """The numbers a cron field of plain items (``*``, ``a``, ``a-b``, each optionally ``/step``, comma-separated)
    names."""
    found: set[int] = set()
    for item in field.split(","):
        item_range, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise UnboundedSchedule(f"cron field {field!r}: step {step_text!r} must be at least 1")
        if item_range in ("*", "?"):
            first, last = low, high
        elif "-" in item_range:
            a, b = item_range.split("-", 1)
            first, last = _number(a, names), _number(b, names)
        else:
            first = _number(item_range, names)
            last = high if step_text else first
        if first > last:
            # EventBridge reads a wrapping range (FRI-MON, 22-2) as running through the end of the field's cycle.
            found |= set(range(first, high + 1, step)) | set(range(low, last + 1, step))
        else:
            found |= set(range(first, last + 1, step))
    return {value for value in found if low <= value <= high}


def _number(text: str, names: dict[str, int] | None) -> int:
    if names and text in names:
        return names[text]
    if not text.isdigit():
        raise UnboundedSchedule(f"cron value {text!r} is not a number")
    return int(text)


def _aws_weekday(day: date) -> int:
    """1 (SUN) .. 7 (SAT), as cron's day-of-week counts."""
    return (day.weekday() + 1) % 7 + 1


def _last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _nearest_weekday(day: date, target: int) -> int:
    """The day of ``day``'s month that ``<target>W`` names: the weekday nearest to ``target``, in the same month."""
    target = min(target, _last_day(day))
    weekday = date(day.year, day.month, target).weekday()
    if weekday == 5:  # Saturday: Friday before, or Monday after when the 1st is a Saturday
        return target - 1 if target > 1 else target + 2
    if weekday == 6:  # Sunday: Monday after, or Friday before when it is the month's last day
        return target + 1 if target < _last_day(day) else target - 2
    return target


def _day_rule(dom: str, dow: str) -> Callable[[date], bool]:
    """Whether a day matches the day-of-month or the day-of-week field (exactly one of them is ``?``)."""
    if dom != "?":
        return _dom_rule(dom)
    return _dow_rule(dow)


def _dom_rule(field: str) -> Callable[[date], bool]:
    if field == "L":
        return lambda day: day.day == _last_day(day)
    if field == "LW":
        return lambda day: day.day == _last_weekday(day)
    if field.endswith("W"):
        target = _number(field[:-1], None)
        return lambda day: day.day == _nearest_weekday(day, target)
    values = _values(field, 1, 31)
    return lambda day: day.day in values


def _last_weekday(day: date) -> int:
    last = date(day.year, day.month, _last_day(day))
    return last.day - max(0, last.weekday() - 4)


def _dow_rule(field: str) -> Callable[[date], bool]:
    if field == "L":
        field = "7L"  # the last Saturday: cron's last day of the week
    if field.endswith("L"):
        weekday = _number(field[:-1], _WEEKDAY_NAMES)
        return lambda day: _aws_weekday(day) == weekday and day.day + 7 > _last_day(day)
    if "#" in field:
        weekday_text, _, nth_text = field.partition("#")
        weekday, nth = _number(weekday_text, _WEEKDAY_NAMES), int(nth_text)
        return lambda day: _aws_weekday(day) == weekday and (day.day - 1) // 7 + 1 == nth
    values = _values(field, 1, 7, _WEEKDAY_NAMES)
    return lambda day: _aws_weekday(day) in values


__all__ = ["UnboundedSchedule", "longest_gap"]
