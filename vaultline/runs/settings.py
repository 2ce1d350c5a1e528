"""The environment of the Lambda functions, as one typed model: infra builds every function's environment from it
(:meth:`FunctionSettings.environment`), and the handlers read it back once per cold start
(:meth:`FunctionSettings.from_environment`). The variable names are the fields' aliases, defined here only.

    settings = FunctionSettings.from_environment()   # functions/observability.py, at import
    vault = vault_from_environment(settings)          # a handler's step
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vaultline.errors import VaultError
from vaultline.model import VaultlineModel
from vaultline.repository.object_lock import ObjectLockSettings

VAULT_URL_ENV = "VAULT_URL"
# The vault's access-log bucket, which a restore must never write into (vaultline/targets/guard.py).
ACCESS_LOG_BUCKET_ENV = "VAULT_ACCESS_LOG_BUCKET"
VAULT_ENCRYPTION_ENV = "VAULT_ENCRYPTION"
VAULT_KMS_KEY_ENV = "VAULT_KMS_KEY_ID"
# Whether this step may create the vault (infra sets it true only for the Prepare steps of a backup).
VAULT_CREATE_ENV = "VAULT_CREATE"
# The deployed stack's Object Lock settings (cdk context objectLockMode, objectLockRetentionDays).
OBJECT_LOCK_MODE_ENV = "VAULT_OBJECT_LOCK_MODE"
OBJECT_LOCK_DAYS_ENV = "VAULT_OBJECT_LOCK_DAYS"
# Its bounds (cdk context objectLockMinDays, objectLockMaxDays): unset, min is the days and max the most S3 allows.
OBJECT_LOCK_MIN_DAYS_ENV = "VAULT_OBJECT_LOCK_MIN_DAYS"
OBJECT_LOCK_MAX_DAYS_ENV = "VAULT_OBJECT_LOCK_MAX_DAYS"
SERVICE_NAME_ENV = "POWERTOOLS_SERVICE_NAME"
METRICS_NAMESPACE_ENV = "POWERTOOLS_METRICS_NAMESPACE"
LOG_LEVEL_ENV = "LOG_LEVEL"


class FunctionSettings(VaultlineModel):
    """What the stack tells every function: which vault, how a new one is created, what its writes lock, and how
    the function logs. Unset variables take the defaults a function outside the stack (a test, the demo) needs."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    # s3://bucket[/prefix]; required by the steps that open the vault (vault_url checks it), not by the logger.
    vault_url: str | None = Field(default=None, alias=VAULT_URL_ENV)
    vault_encryption: Literal["kms", "none"] = Field(default="kms", alias=VAULT_ENCRYPTION_ENV)
    vault_kms_key_id: str | None = Field(default=None, alias=VAULT_KMS_KEY_ENV)
    vault_create: bool = Field(default=True, alias=VAULT_CREATE_ENV)
    # A restore into the vault or its access-log bucket is refused (vaultline/targets/guard.py reads it).
    access_log_bucket: str | None = Field(default=None, alias=ACCESS_LOG_BUCKET_ENV)
    # What the writers lock and for how long (vaultline/repository/object_lock.py): 0 days locks nothing; unset
    # leaves the vault's own object-lock object in charge.
    object_lock_mode: Literal["GOVERNANCE", "COMPLIANCE"] = Field(default="GOVERNANCE", alias=OBJECT_LOCK_MODE_ENV)
    object_lock_days: int | None = Field(default=None, ge=0, le=36500, alias=OBJECT_LOCK_DAYS_ENV)
    object_lock_min_days: int | None = Field(default=None, ge=1, le=36500, alias=OBJECT_LOCK_MIN_DAYS_ENV)
    object_lock_max_days: int | None = Field(default=None, ge=1, le=36500, alias=OBJECT_LOCK_MAX_DAYS_ENV)
    service_name: str = Field(default="vaultline", alias=SERVICE_NAME_ENV)
    metrics_namespace: str = Field(default="Vaultline", alias=METRICS_NAMESPACE_ENV)
    log_level: str = Field(default="INFO", alias=LOG_LEVEL_ENV)

    @field_validator(
        "object_lock_days", "object_lock_mode", "object_lock_min_days", "object_lock_max_days", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: Any, info: Any) -> Any:
        if value == "":
            return cls.model_fields[info.field_name].default
        return value

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> FunctionSettings:
        """The settings of this process; a malformed variable is a VaultError that names it."""
        try:
            return cls.model_validate({name: env[name] for name in cls.variable_names() if name in env})
        except ValidationError as exc:
            problems = "; ".join(f"{_alias(cls, e['loc'])}: {e['msg']}" for e in exc.errors())
            raise VaultError(f"invalid function environment ({problems})") from None

    @classmethod
    def variable_names(cls) -> list[str]:
        """Every environment variable the functions read."""
        return [field.alias or name for name, field in cls.model_fields.items()]

    def environment(self) -> dict[str, str]:
        """The variables to set on a function (what is unset stays unset), as Lambda takes them: strings."""
        values = self.model_dump(by_alias=True, exclude_unset=True, exclude_none=True)
        return {name: _text(value) for name, value in values.items()}

    def require_vault_url(self) -> str:
        """The deployed vault's URL; a VaultError when the stack did not set one."""
        if not self.vault_url or not self.vault_url.startswith("s3://"):
            raise VaultError(f"{VAULT_URL_ENV} must be set to the vault's s3://bucket[/prefix]")
        return self.vault_url

    def object_lock(self) -> tuple[bool, ObjectLockSettings | None]:
        """(whether the environment sets Object Lock at all, the settings it sets; None: no retention).

        They are bounded (version 2): a deployed vault records settings that no later command or overwrite of
        ``object-lock`` lowers. Bounds that exclude the days are a VaultError naming the variables."""
        if self.object_lock_days is None:
            return False, None
        if self.object_lock_days == 0:
            return True, None
        try:
            settings = ObjectLockSettings.bounded(
                self.object_lock_mode, self.object_lock_days, self.object_lock_min_days, self.object_lock_max_days
            )
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise VaultError(
                f"invalid function environment ({OBJECT_LOCK_DAYS_ENV}, {OBJECT_LOCK_MIN_DAYS_ENV}, "
                f"{OBJECT_LOCK_MAX_DAYS_ENV}: {problem})"
            ) from None
        return True, settings


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _alias(model: type[BaseModel], loc: tuple[Any, ...]) -> str:
    field = model.model_fields.get(str(loc[0])) if loc else None
    return (field.alias if field and field.alias else str(loc[0])) if loc else "environment"
