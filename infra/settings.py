"""Deployment settings read from CDK context (cdk.json or `cdk synth -c key=value`), validated on the way in."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from constructs import Node
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from infra import constants as c
from infra.air_gap_settings import AirGapSettings
from vaultline.plans import Schedule

# One address, as SNS accepts it: local part, @, a dotted domain; no spaces or display names.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})+$")


class SettingsError(ValueError):
    """A context value is invalid; the message names the context key."""


class StackSettings(BaseModel):
    """Everything a deployment may tune without editing code."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plans_file: str = c.DEFAULT_PLANS_FILE
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    # 0 keeps Object Lock enabled on the bucket (it can only be turned on at creation) without a default retention.
    object_lock_retention_days: int = Field(default=c.DEFAULT_OBJECT_LOCK_DAYS, ge=0, le=36500)
    # The bounds a deployed vault records (version 2 object-lock, AWS Backup Vault Lock's minimum and maximum):
    # no later change goes below min or above max. Unset: min is the retention days, max the most S3 allows.
    object_lock_min_days: int | None = Field(default=None, ge=1, le=36500)
    object_lock_max_days: int | None = Field(default=None, ge=1, le=36500)
    noncurrent_version_expiration_days: int = Field(default=c.DEFAULT_NONCURRENT_DAYS, ge=1)
    restore_target_buckets: tuple[str, ...] = Field(default=c.DEFAULT_RESTORE_TARGETS, min_length=1)
    # Table-name patterns DynamoDB restores may create and write (IAM wildcards: * and ?).
    restore_target_tables: tuple[str, ...] = Field(default=c.DEFAULT_RESTORE_TARGET_TABLES, min_length=1)
    # When the Maintenance state machine runs (an EventBridge Scheduler cron or rate expression, UTC), and whether
    # its scheduled runs include a restore drill.
    maintenance_schedule: str = c.DEFAULT_MAINTENANCE_SCHEDULE
    maintenance_drill: bool = False
    # How long the backup state machine waits between DescribeExport polls of a DynamoDB export (exports take
    # minutes to hours; each poll is two state transitions and one Lambda invocation).
    export_poll_seconds: int = Field(default=c.EXPORT_POLL_SECONDS, ge=1, le=3600)
    # Where the topic's notifications (failed runs, alarms) go by email; AWS asks the address to confirm first.
    notification_email: str | None = None
    # Reserved concurrency of each worker function (constants.WORKER_RESERVED_CONCURRENCY; 0: none reserved).
    worker_reserved_concurrency: int = Field(default=c.WORKER_RESERVED_CONCURRENCY, ge=0)
    # The vault in its own account (infra/air_gap.py); None: one stack in one account.
    vault_account: AirGapSettings | None = None

    @field_validator("maintenance_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        try:
            return Schedule(expression=value).expression
        except ValidationError as exc:
            raise ValueError(_clean_message(exc.errors()[0]["msg"])) from None

    @model_validator(mode="after")
    def _lock_bounds_hold_the_days(self) -> StackSettings:
        days = self.object_lock_retention_days
        low, high = self.object_lock_min_days, self.object_lock_max_days
        if days and not (low or days) <= days <= (high or days):
            raise ValueError(
                f"{c.CTX_OBJECT_LOCK_DAYS} {days} is outside [{c.CTX_OBJECT_LOCK_MIN_DAYS} {low}, "
                f"{c.CTX_OBJECT_LOCK_MAX_DAYS} {high}]"
            )
        return self

    @field_validator("notification_email")
    @classmethod
    def _valid_email(cls, value: str | None) -> str | None:
        if value is not None and not EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address (one address, like ops@example.com)")
        return value

    @classmethod
    def from_context(cls, node: Node) -> StackSettings:
        keys = {
            "plans_file": c.CTX_PLANS_FILE,
            "object_lock_mode": c.CTX_OBJECT_LOCK_MODE,
            "object_lock_retention_days": c.CTX_OBJECT_LOCK_DAYS,
            "object_lock_min_days": c.CTX_OBJECT_LOCK_MIN_DAYS,
            "object_lock_max_days": c.CTX_OBJECT_LOCK_MAX_DAYS,
            "noncurrent_version_expiration_days": c.CTX_NONCURRENT_DAYS,
            "restore_target_buckets": c.CTX_RESTORE_TARGETS,
            "restore_target_tables": c.CTX_RESTORE_TARGET_TABLES,
            "maintenance_schedule": c.CTX_MAINTENANCE_SCHEDULE,
            "maintenance_drill": c.CTX_MAINTENANCE_DRILL,
            "export_poll_seconds": c.CTX_EXPORT_POLL_SECONDS,
            "notification_email": c.CTX_NOTIFICATION_EMAIL,
            "worker_reserved_concurrency": c.CTX_WORKER_RESERVED_CONCURRENCY,
            "vault_account": c.CTX_VAULT_ACCOUNT,
        }
        raw: dict[str, Any] = {}
        for field, key in keys.items():
            value = node.try_get_context(key)
            if value is not None:
                raw[field] = _coerce(value)
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = keys.get(str(first["loc"][0]), str(first["loc"][0])) if first["loc"] else "(context)"
            key += "".join(f".{part}" for part in first["loc"][1:])
            raise SettingsError(f"cdk context {key}: {first['msg']}") from None


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ")


def _coerce(value: Any) -> Any:
    """`-c key=value` on the command line always yields strings; accept JSON there (numbers, lists)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
