"""The plans file: what to back up, when, how long to keep it, and with which options.

The CDK app reads and validates it at synth time; the CLI reads the same model back from the stack output.
A plans file is YAML (or JSON, which is YAML too) shaped like::

    version: 1
    plans:
      - name: photos
        sources:
          - {type: s3, bucket: my-photos, prefix: originals/, exclude: ["*.tmp"]}
          - {type: s3, bucket: my-logs, inventory: {destination: "s3://my-inventories/reports", configuration: daily}}
          - {type: dynamodb, table: photo-index, mode: scan, read_rate: 100}
        schedule: {expression: "cron(0 3 * * ? *)", timezone: Europe/Berlin, flexible_window_minutes: 30}
        retention: {keep_daily: 7, keep_monthly: 12}
        copy_to: {vault: "s3://dr-vault/photos", role_arn: "arn:aws:iam::123456789012:role/dr-copy",
                  region: us-west-2, keep: {keep_monthly: 24}, schedule: {expression: "rate(1 day)"}}

Every validation problem becomes one :class:`PlansFileError` whose message names the file, the plan and the field
on one line, e.g. ``plans.yaml: plan 'photos': schedule.expression: ...``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from vaultline.errors import VaultlineError
from vaultline.model import VaultlineModel
from vaultline.schedule_gaps import UnboundedSchedule, longest_gap
from vaultline.sources.dynamodb.model import ReadOptions
from vaultline.sources.s3_inventory_model import InventoryReport
from vaultline.sources.s3_options import ArchivedObjects, TagsRefresh

PLANS_FILE_VERSION: Literal[1] = 1

# Scheduler names are `vaultline-<plan>[-<n>]` and may be 64 characters long.
PLAN_NAME = r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$"
BUCKET_NAME = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
ROLE_ARN = r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"
TABLE_NAME = r"^[A-Za-z0-9_.-]{3,255}$"
REGION = r"^[a-z]{2}(-[a-z]+)+-[0-9]$"
KEEP_WITHIN = r"^([0-9]+y)?([0-9]+m)?([0-9]+w)?([0-9]+d)?([0-9]+h)?$"

_RATE = re.compile(r"^rate\((?P<value>[1-9]\d*) (?P<unit>minutes?|hours?|days?)\)$")
_CRON = re.compile(r"^cron\((?P<fields>[^()]*)\)$")
# Characters each of the six EventBridge cron fields may contain, in order:
# minutes, hours, day-of-month, month, day-of-week, year.
_CRON_FIELD_CHARS = (
    (r"^[0-9,*/-]+$", 0, 59),
    (r"^[0-9,*/-]+$", 0, 23),
    (r"^[0-9,*/?LW-]+$", 1, 31),
    (r"^([0-9,*/-]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)+$", 1, 12),
    (r"^([0-9,*/?L#-]|SUN|MON|TUE|WED|THU|FRI|SAT)+$", 1, 7),
    (r"^[0-9,*/-]+$", 1970, 2199),
)
_CRON_FIELD_NAMES = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")


class PlansFileError(VaultlineError):
    """The plans file is missing, unparsable or invalid. The message is one line naming file, plan and field."""


class _Model(VaultlineModel):
    # A typo in a plans file must fail loudly, never be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class S3SourcePlan(_Model):
    """One S3 bucket, optionally narrowed to a prefix and glob patterns, optionally read through a role."""

    type: Literal["s3"]
    bucket: str = Field(pattern=BUCKET_NAME)
    prefix: str = ""
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    role_arn: str | None = Field(default=None, pattern=ROLE_ARN)
    # List the bucket from its newest S3 Inventory report (a bucket of billions): the destination and id of an
    # inventory configuration on it, e.g. {destination: s3://inventories/reports, configuration: daily}.
    inventory: InventoryReport | None = None

    @field_validator("prefix")
    @classmethod
    def _relative_prefix(cls, value: str) -> str:
        if value.startswith("/"):
            raise ValueError("must not start with '/' (S3 keys are relative to the bucket)")
        return value

    @property
    def url(self) -> str:
        """``s3://bucket[/prefix]``, the form the engine's sources take."""
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


class DynamoDBSourcePlan(ReadOptions):
    """One DynamoDB table, read by a parallel scan (default) or a point-in-time export, optionally through a role
    or in another region. Its read options (``mode``, ``read_rate``, ``read_share``, ``consistent_read``) are the
    engine's :class:`~vaultline.sources.dynamodb.model.ReadOptions`, spelled beside the table."""

    model_config = _Model.model_config

    type: Literal["dynamodb"]
    table: str = Field(pattern=TABLE_NAME)
    role_arn: str | None = Field(default=None, pattern=ROLE_ARN)
    region: str | None = Field(default=None, pattern=REGION)

    @model_validator(mode="after")
    def _options_fit_the_mode(self) -> DynamoDBSourcePlan:
        limited = self.read_rate is not None or self.read_share is not None
        if self.mode == "export" and (limited or self.consistent_read):
            raise ValueError(
                "read_rate, read_share and consistent_read apply to mode scan only (an export reads no capacity)"
            )
        return self

    @property
    def url(self) -> str:
        """``dynamodb://TABLE[?region=R&role=ARN]``, the form the engine's sources take."""
        query = {k: v for k, v in (("region", self.region), ("role", self.role_arn)) if v}
        return f"dynamodb://{self.table}" + (f"?{urlencode(query)}" if query else "")


# A discriminated union on `type`: new source kinds join without changing how files are read or errors named.
SourcePlan = Annotated[S3SourcePlan | DynamoDBSourcePlan, Field(discriminator="type")]


class Schedule(_Model):
    """When EventBridge Scheduler starts the plan."""

    expression: str
    timezone: str = "UTC"
    flexible_window_minutes: int = Field(default=0, ge=0, le=1440)
    # How long a backup may take, and start late, beyond the schedule's longest gap before its source's freshness
    # alarm says a recovery point is missing (docs/deploy.md, "Alarms"); default: a quarter of that gap, at least
    # an hour.
    alarm_margin_minutes: int | None = Field(default=None, ge=0, le=7 * 1440)

    @field_validator("expression")
    @classmethod
    def _valid_expression(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("rate("):
            _check_rate(value)
        elif value.startswith("cron("):
            _check_cron(value)
        else:
            raise ValueError(f"{value!r} is neither cron(...) nor rate(...)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _bounded(self) -> Schedule:
        # A schedule that stops has no longest gap: no alarm could tell a missing backup from the end of the plan.
        try:
            self.longest_gap()
        except UnboundedSchedule as exc:
            raise ValueError(f"expression: {exc}") from None
        return self

    def longest_gap(self) -> timedelta:
        """The longest time between two starts of this schedule (vaultline/schedule_gaps.py)."""
        return longest_gap(self.expression, self.timezone)


def _check_rate(value: str) -> None:
    match = _RATE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not rate(<n> minute(s)|hour(s)|day(s))")
    # EventBridge wants the singular exactly when the value is 1.
    singular = match["value"] == "1"
    if singular == match["unit"].endswith("s"):
        expected = match["unit"].rstrip("s") if singular else match["unit"] + "s"
        raise ValueError(f"{value!r}: write rate({match['value']} {expected})")


def _check_cron(value: str) -> None:
    match = _CRON.match(value)
    fields = match["fields"].split() if match else []
    if len(fields) != 6:
        raise ValueError(f"{value!r} needs six fields: minutes hours day-of-month month day-of-week year")
    for text, (chars, low, high), name in zip(fields, _CRON_FIELD_CHARS, _CRON_FIELD_NAMES, strict=True):
        if not re.match(chars, text.upper()):
            raise ValueError(f"{value!r}: {name} field {text!r} is not valid")
        for number in re.findall(r"(?<![/#])\b\d+\b", text):
            if not low <= int(number) <= high:
                raise ValueError(f"{value!r}: {name} value {number} is outside {low}-{high}")
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError(f"{value!r}: exactly one of day-of-month and day-of-week must be '?'")


class KeepRules(_Model):
    """Which recovery points to keep (restic's keep rules). Stored with the plan; applied by maintenance."""

    keep_last: int | None = Field(default=None, ge=0)
    keep_hourly: int | None = Field(default=None, ge=0)
    keep_daily: int | None = Field(default=None, ge=0)
    keep_weekly: int | None = Field(default=None, ge=0)
    keep_monthly: int | None = Field(default=None, ge=0)
    keep_yearly: int | None = Field(default=None, ge=0)
    keep_within: str | None = Field(default=None, pattern=KEEP_WITHIN, description="e.g. 30d, 1y6m, 12h")
    keep_tags: list[str] = Field(default_factory=list)

    def rules(self) -> dict[str, Any]:
        """Only the rules given (``{}`` when none: nothing is forgotten), as execution inputs carry them."""
        return self.model_dump(exclude_defaults=True)

    @field_validator("keep_within")
    @classmethod
    def _non_empty_duration(cls, value: str | None) -> str | None:
        if value == "":
            raise ValueError("give a duration such as 30d, 1y6m or 12h")
        return value


class CopyTo(_Model):
    """Where a plan's recovery points are copied after each backup (or on ``schedule``): another vault, perhaps in
    another region or account (``role_arn`` is assumed to reach it), kept by its own ``keep`` rules there."""

    vault: str
    role_arn: str | None = Field(default=None, pattern=ROLE_ARN)
    region: str | None = Field(default=None, pattern=REGION)
    keep: KeepRules = Field(default_factory=KeepRules)
    schedule: Schedule | None = None

    @field_validator("vault")
    @classmethod
    def _vault_url(cls, value: str) -> str:
        bucket, _, prefix = value.removeprefix("s3://").partition("/")
        if not value.startswith("s3://") or not re.match(BUCKET_NAME, bucket):
            raise ValueError(f"{value!r} is not a vault URL (s3://<bucket>[/<prefix>])")
        if prefix.startswith("/") or "//" in prefix:
            raise ValueError(f"{value!r}: the prefix has an empty path segment")
        return value.rstrip("/")

    @property
    def bucket(self) -> str:
        """The target vault's bucket."""
        return self.vault.removeprefix("s3://").partition("/")[0]

    @property
    def prefix(self) -> str:
        """The target vault's prefix in its bucket ('' for the bucket's root)."""
        return self.vault.removeprefix("s3://").partition("/")[2]


class Plan(_Model):
    """One backup plan: sources, schedule, retention and options."""

    name: str = Field(pattern=PLAN_NAME)
    sources: list[SourcePlan] = Field(min_length=1)
    schedule: Schedule
    retention: KeepRules = Field(default_factory=KeepRules)
    worker_concurrency: int = Field(default=10, ge=1, le=1000)
    compression_level: int = Field(default=3, ge=1, le=22)
    encryption: Literal["none", "kms"] = "kms"
    tags: dict[str, str] = Field(default_factory=dict)
    # S3 sources only (docs/cli.md, "Plan options"): skip or fail on archived objects; how often tags are re-read.
    archived_objects: ArchivedObjects = "skip"
    tags_refresh: TagsRefresh = "always"
    # Copy every recovery point of the plan into another vault (docs/deploy.md, "Vault copies").
    copy_to: CopyTo | None = None


class PlansFile(_Model):
    """The whole file: a format version and the plans."""

    version: Literal[1] = PLANS_FILE_VERSION
    plans: list[Plan] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> PlansFile:
        seen: set[str] = set()
        for plan in self.plans:
            if plan.name in seen:
                raise _PlanFieldError(plan.name, "name", "another plan has the same name")
            seen.add(plan.name)
        # One vault holds one encryption mode (its config says how to read everything), so plans must agree.
        first = self.plans[0] if self.plans else None
        for plan in self.plans:
            if first and plan.encryption != first.encryption:
                raise _PlanFieldError(
                    plan.name,
                    "encryption",
                    f"{plan.encryption!r} differs from plan {first.name!r} ({first.encryption!r}); "
                    "all plans share one vault and its encryption mode",
                )
        return self

    @property
    def encryption(self) -> Literal["none", "kms"]:
        """The vault's encryption mode: the plans' common one, ``kms`` when there are no plans."""
        return self.plans[0].encryption if self.plans else "kms"

    def get(self, name: str) -> Plan:
        for plan in self.plans:
            if plan.name == name:
                return plan
        raise PlansFileError(f"no plan named {name!r} (plans: {', '.join(p.name for p in self.plans) or 'none'})")


class _PlanFieldError(ValueError):
    """Raised by cross-plan checks so the one-line message still names the plan and the field."""

    def __init__(self, plan: str, field: str, message: str) -> None:
        super().__init__(message)
        self.plan, self.field, self.message = plan, field, message


def load_plans(path: str | Path) -> PlansFile:
    """Read and validate a plans file (YAML, or JSON when it ends in ``.json``)."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlansFileError(f"{where}: cannot read the plans file ({exc.strerror or exc})") from None
    return parse_plans(text, where, as_json=where.endswith(".json"))


def parse_plans(text: str, where: str = "<plans>", as_json: bool = False) -> PlansFile:
    """Validate plans from text; ``where`` names the file in error messages."""
    raw = _parse(text, where, as_json)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PlansFileError(f"{where}: expected a mapping with a 'plans' list at the top, got {type(raw).__name__}")
    try:
        return PlansFile.model_validate(raw)
    except ValidationError as exc:
        raise PlansFileError(_describe(exc, raw, where)) from None


def _parse(text: str, where: str, as_json: bool) -> Any:
    if as_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlansFileError(f"{where}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    # Only a plans file is YAML: the runs' models import this module for its types, and a handler reads no file.
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlansFileError(f"{where}: {line}not valid YAML ({problem})") from None


def _describe(exc: ValidationError, raw: dict[str, Any], where: str) -> str:
    """The first error as ``<file>: plan '<name>': <field>: <message>``, on one line."""
    errors = exc.errors()
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    cause = first.get("ctx", {}).get("error")
    if isinstance(cause, _PlanFieldError):
        return f"{where}: plan {cause.plan!r}: {cause.field}: {cause.message}{more}"
    loc = list(first["loc"])
    message = _clean(first["msg"])
    if first["type"] == "string_pattern_mismatch" and loc and loc[-1] in _PATTERN_HINTS:
        message = f"{first['input']!r} {_PATTERN_HINTS[str(loc[-1])]}"
    if len(loc) >= 2 and loc[0] == "plans" and isinstance(loc[1], int):
        plan = _plan_label(raw, loc[1])
        field = _field_path(loc[2:]) or "(plan)"
        return f"{where}: {plan}: {field}: {message}{more}"
    return f"{where}: {_field_path(loc) or '(file)'}: {message}{more}"


def _plan_label(raw: dict[str, Any], index: int) -> str:
    plans = raw.get("plans")
    entry = plans[index] if isinstance(plans, list) and index < len(plans) else None
    name = entry.get("name") if isinstance(entry, dict) else None
    return f"plan {name!r}" if isinstance(name, str) and name else f"plan #{index + 1}"


def _field_path(loc: Sequence[int | str]) -> str:
    """('sources', 0, 's3', 'bucket') -> 'sources[0].bucket' (the union tag is pydantic's, not the user's)."""
    parts: list[str] = []
    previous: int | str | None = None
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"]
        elif not (isinstance(previous, int) and item in _SOURCE_TYPES):
            parts.append(item)
        previous = item
    return ".".join(parts)


def _clean(message: str) -> str:
    return message.removeprefix("Value error, ").replace("\n", " ")


_SOURCE_TYPES = {"s3", "dynamodb"}
# Say what a pattern means rather than print the regular expression.
_PATTERN_HINTS = {
    "name": "is not a plan name: lowercase letters, digits and '-', at most 48 characters",
    "bucket": "is not an S3 bucket name",
    "table": "is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)",
    "region": "is not an AWS region name (e.g. eu-west-1)",
    "role_arn": "is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
    "keep_within": "is not a duration such as 30d, 1y6m or 12h",
}


__all__ = [
    "CopyTo",
    "DynamoDBSourcePlan",
    "InventoryReport",
    "KeepRules",
    "Plan",
    "PlansFile",
    "PlansFileError",
    "S3SourcePlan",
    "Schedule",
    "SourcePlan",
    "load_plans",
    "parse_plans",
]
