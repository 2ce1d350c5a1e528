"""Keep rules: which recovery points `forget` keeps, with restic's `forget` semantics.

Recovery points are grouped by source; each group is evaluated on its own, newest first:

* ``keep_last N``: the N newest recovery points.
* ``keep_hourly/daily/weekly/monthly/yearly N``: walking newest first, a recovery point is kept when its time bucket
  (hour, day, ISO week, month, year, in UTC) differs from the bucket of the previous one this rule kept, until the
  rule has kept N; so each rule keeps the newest recovery point of each of its N newest distinct buckets. While a
  rule still has count left, it also keeps the oldest recovery point of the group (restic >= 0.16: the history
  reaches as far back as the counts allow). ``-1`` means unlimited.
* ``keep_within DURATION`` (``1y2m3d4h``): every recovery point strictly newer than the group's newest recovery
  point minus the duration (calendar arithmetic, like Go's ``AddDate``).
* ``keep_tags``: every recovery point carrying all the tags of one entry (``"a,b=c"``: tag key ``a`` present and
  tag ``b`` equal to ``c``).

A recovery point that no rule keeps is removed. An empty policy is refused rather than read as "remove
everything" (restic refuses it too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from pydantic import Field, field_validator

from vaultline.errors import UsageError
from vaultline.model import VaultlineModel

_DURATION = re.compile(r"(\d+)([ymdh])")


class Duration(VaultlineModel):
    """A calendar duration as restic writes it: ``1y2m3d4h`` (any subset, in this order or not)."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    @classmethod
    def parse(cls, text: str) -> Duration:
        """Parse ``1y2m3d4h``; raise UsageError naming the text otherwise."""
        compact = text.strip()
        parts = _DURATION.findall(compact)
        if not compact or "".join(n + u for n, u in parts) != compact:
            raise UsageError(f"invalid duration {text!r}: expected a combination of Ny, Nm, Nd, Nh (e.g. 1y2m3d4h)")
        values = {"y": 0, "m": 0, "d": 0, "h": 0}
        for number, unit in parts:
            values[unit] += int(number)
        return cls(years=values["y"], months=values["m"], days=values["d"], hours=values["h"])

    def __str__(self) -> str:
        units = ((self.years, "y"), (self.months, "m"), (self.days, "d"), (self.hours, "h"))
        return "".join(f"{value}{unit}" for value, unit in units if value) or "0h"

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this duration, normalizing overflowing days like Go's ``time.AddDate`` does
        (March 31 minus one month is "February 31", which is March 3 or 2)."""
        month_index = moment.year * 12 + (moment.month - 1) - self.years * 12 - self.months
        year, month = divmod(month_index, 12)
        first = date(year, month + 1, 1)
        day = first + timedelta(days=moment.day - 1 - self.days)
        shifted = datetime.combine(day, moment.timetz()).replace(tzinfo=moment.tzinfo)
        return shifted - timedelta(hours=self.hours)


class RetentionPolicy(VaultlineModel):
    """Keep rules; counts of ``-1`` mean unlimited, ``0`` means the rule is off."""

    keep_last: int = Field(default=0, ge=-1)
    keep_hourly: int = Field(default=0, ge=-1)
    keep_daily: int = Field(default=0, ge=-1)
    keep_weekly: int = Field(default=0, ge=-1)
    keep_monthly: int = Field(default=0, ge=-1)
    keep_yearly: int = Field(default=0, ge=-1)
    keep_within: Duration | None = None
    keep_tags: list[str] = Field(default_factory=list)

    @field_validator("keep_within", mode="before")
    @classmethod
    def _parse_within(cls, value: object) -> object:
        return Duration.parse(value) if isinstance(value, str) else value

    def empty(self) -> bool:
        counts = (self.keep_last, self.keep_hourly, self.keep_daily, self.keep_weekly, self.keep_monthly)
        return not any(counts) and not self.keep_yearly and self.keep_within is None and not self.keep_tags


def keep_policy(rules: Mapping[str, Any]) -> RetentionPolicy:
    """The policy of the keep rules among ``rules`` (a plan's rules, or the CLI's arguments): other names are not
    rules, and a rule given as None is off."""
    given = {name: rules[name] for name in RetentionPolicy.model_fields if rules.get(name) is not None}
    return RetentionPolicy.model_validate(given)


class PointInTime(VaultlineModel):
    """What retention needs to know about a recovery point."""

    id: str
    source: str
    time: datetime
    tags: dict[str, str] = Field(default_factory=dict)


class Decision(VaultlineModel):
    """The verdict on one recovery point: kept (with the rules that keep it) or removed."""

    id: str
    source: str
    time: datetime
    keep: bool
    reasons: list[str] = Field(default_factory=list)


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso_week(t: datetime) -> int:
    year, week, _ = t.isocalendar()
    return year * 100 + week


# (rule name, reason shown, bucket of a time). keep-last's bucket is the position, so every point differs.
_BUCKETS: list[tuple[str, str, Callable[[datetime, int], int]]] = [
    ("keep_last", "last snapshot", lambda t, nr: nr),
    ("keep_hourly", "hourly snapshot", lambda t, nr: t.year * 1_000_000 + t.month * 10_000 + t.day * 100 + t.hour),
    ("keep_daily", "daily snapshot", lambda t, nr: t.year * 10_000 + t.month * 100 + t.day),
    ("keep_weekly", "weekly snapshot", lambda t, nr: _iso_week(t)),
    ("keep_monthly", "monthly snapshot", lambda t, nr: t.year * 100 + t.month),
    ("keep_yearly", "yearly snapshot", lambda t, nr: t.year),
]


class PointRow(NamedTuple):
    """A point as a compact row (a tuple: no per-instance dict), what a step that holds a whole history keeps:
    rows sort newest first with ``sort(reverse=True)`` (tags only break ties between copies of one point)."""

    time: datetime  # in UTC
    id: str
    tags: tuple[tuple[str, str], ...] = ()  # sorted items; the empty tuple is shared


def point_row(point: PointInTime) -> PointRow:
    return PointRow(_utc(point.time), point.id, tuple(sorted(point.tags.items())) if point.tags else ())


def _has_tags(tags: Mapping[str, str], spec: str) -> bool:
    for tag in (t.strip() for t in spec.split(",") if t.strip()):
        key, sep, value = tag.partition("=")
        if key not in tags or (sep and tags[key] != value):
            return False
    return True


# A keep mask's bits: each of _BUCKETS' rules (in order), then keep_within, then each of the policy's keep_tags.
_WITHIN_BIT = len(_BUCKETS)
_TAGS_BIT = _WITHIN_BIT + 1


def keep_masks(rows: Sequence[PointRow], policy: RetentionPolicy) -> list[int]:
    """Decide on the rows of one source, newest first: for each, the mask of the rules that keep it (0: removed).

    Small masks are Python's cached small ints, so the list costs a pointer a point."""
    if not rows:
        return []
    within_start = policy.keep_within.before(rows[0].time) if policy.keep_within else None
    counts = [getattr(policy, name) for name, _, _ in _BUCKETS]
    last: list[int | None] = [None] * len(_BUCKETS)
    oldest = len(rows) - 1
    masks = []
    for nr, row in enumerate(rows):
        moment = row.time
        mask = 0
        if policy.keep_tags and row.tags:
            tags = dict(row.tags)
            for index, spec in enumerate(policy.keep_tags):
                if _has_tags(tags, spec):
                    mask |= 1 << (_TAGS_BIT + index)
        if within_start is not None and moment > within_start:
            mask |= 1 << _WITHIN_BIT
        for rule, (_, _, bucket) in enumerate(_BUCKETS):
            if counts[rule] == 0:
                continue
            value = bucket(moment, nr)
            # The oldest point is kept while a rule has count left: the history reaches as far back as it can.
            if value != last[rule] or nr == oldest:
                last[rule] = value
                if counts[rule] > 0:
                    counts[rule] -= 1
                mask |= 1 << rule
        masks.append(mask)
    return masks


def reasons(mask: int, policy: RetentionPolicy) -> list[str]:
    """The rules a keep mask names, as a decision lists them: tags, within, then the count rules."""
    named = [f"has tags {spec}" for index, spec in enumerate(policy.keep_tags) if mask >> (_TAGS_BIT + index) & 1]
    if mask >> _WITHIN_BIT & 1:
        named.append(f"within {policy.keep_within}")
    return named + [reason for rule, (_, reason, _) in enumerate(_BUCKETS) if mask >> rule & 1]


def apply_group(points: Iterable[PointInTime], policy: RetentionPolicy) -> list[Decision]:
    """Decide on the recovery points of one source, returned newest first."""
    ordered = sorted(points, key=lambda p: (_utc(p.time), p.id), reverse=True)
    masks = keep_masks([point_row(p) for p in ordered], policy)
    return [
        Decision(id=p.id, source=p.source, time=p.time, keep=bool(mask), reasons=reasons(mask, policy))
        for p, mask in zip(ordered, masks, strict=True)
    ]


def apply_policy(points: Iterable[PointInTime], policy: RetentionPolicy) -> list[Decision]:
    """Decide on every recovery point, group by group (by source); sources in name order, newest first in each."""
    if policy.empty():
        raise UsageError("no keep rule given: refusing to forget every recovery point (pass at least one --keep-*)")
    groups: dict[str, list[PointInTime]] = {}
    for point in points:
        groups.setdefault(point.source, []).append(point)
    return [decision for source in sorted(groups) for decision in apply_group(groups[source], policy)]
