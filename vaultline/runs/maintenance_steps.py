"""The Maintenance state machine's steps and the backup's Retention step, over :mod:`vaultline.runs.maintenance`.

Every Maintenance step receives the whole execution state: the input (:class:`MaintenanceInput`, built from the
plans by :func:`vaultline.plans.maintenance_input`) plus the results of the steps before it under ``results``.
Each returns a small result that the state machine stores at ``$.results.<step>`` and, at the end, sends as the
detail of the ``Vaultline Maintenance Succeeded`` event.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vaultline.errors import UsageError
from vaultline.operations.prune import DEFAULT_REPACK_THRESHOLD, HeldObject
from vaultline.operations.retention import RetentionPolicy
from vaultline.runs.maintenance import (
    MAX_LISTED,
    DrillStepInput,
    DrillStepOutput,
    ForgetStepInput,
    PruneStepInput,
    PruneStepOutput,
    VerifyStepInput,
    VerifyStepOutput,
    drill_step,
    forget_step,
    prune_step,
    verify_step,
)

_UNITS = re.compile(r"(\d+)([ymwdh])")
_SUBSET = re.compile(r"^(?P<part>[1-9]\d*)/(?P<parts>[1-9]\d*)$")
_SHARE = re.compile(r"^(100|[1-9]?\d)(\.\d+)?%$")


def vault_url_from_environment() -> str:
    """The deployed vault (``VAULT_URL``, set on every function by the stack)."""
    url = os.environ.get("VAULT_URL", "")
    if not url.startswith("s3://"):
        raise UsageError("VAULT_URL must be set to the vault's s3://bucket[/prefix]")
    return url


class _Event(BaseModel):
    # The whole execution state arrives, results of earlier steps included; read only what the step needs.
    model_config = ConfigDict(extra="ignore")


def retention_policy(rules: dict[str, Any]) -> RetentionPolicy | None:
    """A plan's retention rules (``vaultline.plans.KeepRules`` as a dict) as the engine's policy; None if empty.

    Plans allow weeks in ``keep_within`` (``2w``); the engine's durations count days, so weeks become days.
    """
    given = {key: value for key, value in rules.items() if value not in (None, [], "")}
    within = given.get("keep_within")
    if isinstance(within, str) and "w" in within:
        units = {unit: int(number) for number, unit in _UNITS.findall(within)}
        units["d"] = units.get("d", 0) + 7 * units.pop("w", 0)
        given["keep_within"] = "".join(f"{units[u]}{u}" for u in "ymdh" if units.get(u))
    policy = RetentionPolicy.model_validate(given)
    return None if policy.empty() else policy


class SourcePolicy(_Event):
    """One plan source and the plan's keep rules."""

    source: str
    plan: str | None = None
    rules: dict[str, Any] = Field(default_factory=dict)


class VerifyOptions(_Event):
    """Which packs to read: ``subset`` ``"n/m"`` (part n of m) or ``"10%"``; otherwise part ``run % parts + 1``
    of ``parts`` (``run`` defaults to the day number, so ``parts`` consecutive daily runs read every pack once)."""

    subset: str | None = None
    parts: int = Field(default=7, ge=1)
    run: int | None = Field(default=None, ge=0)

    @field_validator("subset")
    @classmethod
    def _valid_subset(cls, value: str | None) -> str | None:
        if value is not None and not (_SUBSET.match(value) or _SHARE.match(value)):
            raise ValueError(f"{value!r} is neither n/m nor a percentage such as 10%")
        return value


class DrillOptions(_Event):
    enabled: bool = False
    scratch: str | None = Field(default=None, description="s3://bucket/prefix the drill may write under and clean")
    recovery_point: str | None = None


class MaintenanceInput(_Event):
    """The Maintenance state machine's input (what its schedule sends)."""

    policies: list[SourcePolicy] = Field(default_factory=list)
    prune: bool = True
    repack_threshold: float = Field(default=DEFAULT_REPACK_THRESHOLD, ge=0.0, le=1.0)
    verify: VerifyOptions = Field(default_factory=VerifyOptions)
    drill: DrillOptions = Field(default_factory=DrillOptions)


class ForgetResult(BaseModel):
    """What forget removed, per run; lists are capped, counts are not."""

    sources: int = 0
    removed: list[str] = Field(default_factory=list)
    removed_count: int = 0
    kept: int = 0
    held: list[HeldObject] = Field(default_factory=list)
    held_count: int = 0
    skipped: list[str] = Field(default_factory=list, description="sources without keep rules: nothing forgotten")


def forget(vault_url: str, event: dict[str, Any]) -> ForgetResult:
    """Apply every plan source's keep rules to that source's recovery points."""
    request = MaintenanceInput.model_validate(event)
    result = ForgetResult()
    for item in request.policies:
        policy = retention_policy(item.rules)
        if policy is None:
            result.skipped.append(item.source)
            continue
        out = forget_step(ForgetStepInput(vault=vault_url, policy=policy, sources=[item.source]))
        result.sources += 1
        result.removed += out.removed
        result.removed_count += len(out.removed)
        result.kept += out.kept
        result.held += out.held
        result.held_count += len(out.held)
    result.removed = result.removed[:MAX_LISTED]
    result.held = result.held[:MAX_LISTED]
    return result


def prune(vault_url: str, event: dict[str, Any]) -> PruneStepOutput:
    request = MaintenanceInput.model_validate(event)
    return prune_step(PruneStepInput(vault=vault_url, repack_threshold=request.repack_threshold))


def verify(vault_url: str, event: dict[str, Any]) -> VerifyStepOutput:
    options = MaintenanceInput.model_validate(event).verify
    step = VerifyStepInput(vault=vault_url, parts=options.parts, run=options.run)
    if options.subset and _SHARE.match(options.subset):
        step.share = options.subset
    elif options.subset and (match := _SUBSET.match(options.subset)):
        step.part, step.parts = int(match["part"]), int(match["parts"])
    return verify_step(step)


def drill(vault_url: str, event: dict[str, Any]) -> DrillStepOutput:
    options = MaintenanceInput.model_validate(event).drill
    if not options.scratch:
        raise UsageError("drill.scratch is required: the s3://bucket/prefix a restore drill may write under")
    return drill_step(DrillStepInput(vault=vault_url, scratch=options.scratch, recovery_point=options.recovery_point))


class RetentionEvent(_Event):
    """The backup state after Commit: the plan's rules (``retention``, from ``plan_input``) and what was committed."""

    plan: str | None = None
    retention: dict[str, Any] = Field(default_factory=dict)
    committed: dict[str, Any]


class RetentionResult(BaseModel):
    source: str
    applied: bool
    removed: list[str] = Field(default_factory=list)
    kept: int = 0
    held_count: int = 0


def apply_retention(vault_url: str, event: dict[str, Any]) -> RetentionResult:
    """After a commit: forget the committed source's recovery points that the plan's keep rules do not keep."""
    request = RetentionEvent.model_validate(event)
    source = str(request.committed.get("source") or "")
    if not source:
        raise UsageError("the committed recovery point names no source")
    policy = retention_policy(request.retention)
    if policy is None:
        return RetentionResult(source=source, applied=False)
    out = forget_step(ForgetStepInput(vault=vault_url, policy=policy, sources=[source]))
    return RetentionResult(
        source=source, applied=True, removed=out.removed[:MAX_LISTED], kept=out.kept, held_count=len(out.held)
    )
