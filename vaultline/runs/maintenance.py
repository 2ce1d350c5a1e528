"""The steps of the Maintenance workflow as plain functions with typed inputs and outputs.

A Lambda handler validates its event into the step's input model, calls the step, and returns the output model
(``model_dump(mode="json")``); each output is small enough for a Step Functions payload. Errors propagate by type:
``VaultLocked`` is retryable (a backup is running; retry later), ``IntegrityError`` means the vault is damaged.

Example::

    out = prune_step(PruneStepInput(vault="s3://backups/vault"))
    if out.held: ...
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from vaultline.operations.check import check_vault
from vaultline.operations.drill import restore_drill
from vaultline.operations.forget import forget
from vaultline.operations.prune import DEFAULT_REPACK_THRESHOLD, HeldObject, PruneOptions, prune
from vaultline.operations.retention import Decision, RetentionPolicy
from vaultline.repository.vault import Vault

# Errors and warnings beyond this many are counted, not listed: a state-machine payload is limited to 256 KiB.
MAX_LISTED = 50


class ForgetStepInput(BaseModel):
    vault: str
    policy: RetentionPolicy
    dry_run: bool = False
    sources: list[str] | None = Field(default=None, description="only these sources' recovery points (default: all)")


class ForgetStepOutput(BaseModel):
    removed: list[str] = Field(default_factory=list)
    kept: int = 0
    held: list[HeldObject] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)


def forget_step(event: ForgetStepInput) -> ForgetStepOutput:
    """Apply the plan's keep rules; delete the manifests of recovery points not kept."""
    report = forget(Vault.open(event.vault), event.policy, dry_run=event.dry_run, sources=event.sources)
    return ForgetStepOutput(
        removed=report.removed,
        kept=len(report.kept),
        held=report.held[:MAX_LISTED],
        decisions=[d for d in report.decisions if not d.keep][:MAX_LISTED],
    )


class PruneStepInput(BaseModel):
    vault: str
    repack_threshold: float = Field(default=DEFAULT_REPACK_THRESHOLD, ge=0.0, le=1.0)
    dry_run: bool = False


class PruneStepOutput(BaseModel):
    packs_before: int
    packs_after: int
    packs_deleted: int
    packs_repacked: int
    packs_written: int
    bytes_before: int
    bytes_after: int
    bytes_freed: int
    held: list[HeldObject] = Field(default_factory=list)
    held_count: int = 0
    seconds: float = 0.0


def prune_step(event: PruneStepInput) -> PruneStepOutput:
    """Delete unreferenced data and repack mostly-empty packs (raises VaultLocked while a backup runs)."""
    report = prune(
        Vault.open(event.vault), PruneOptions(repack_threshold=event.repack_threshold, dry_run=event.dry_run)
    )
    return PruneStepOutput(
        packs_before=report.packs_before,
        packs_after=report.packs_after,
        packs_deleted=report.packs_deleted + report.unindexed_packs_deleted,
        packs_repacked=report.packs_repacked,
        packs_written=report.packs_written,
        bytes_before=report.bytes_before,
        bytes_after=report.bytes_after,
        bytes_freed=report.bytes_freed,
        held=report.held[:MAX_LISTED],
        held_count=len(report.held),
        seconds=report.seconds,
    )


class VerifyStepInput(BaseModel):
    """Read ``part`` of ``parts`` of the packs; pass a counter (e.g. the run number) as ``run`` instead, and
    part ``run % parts + 1`` is read, so ``parts`` consecutive runs read every pack once."""

    vault: str
    parts: int = Field(default=7, ge=1)
    part: int | None = Field(default=None, ge=1)
    run: int | None = Field(default=None, ge=0)
    share: str | None = Field(default=None, description="a percentage such as '10%' instead of a part")


class VerifyStepOutput(BaseModel):
    ok: bool
    subset: str
    recovery_points: int
    packs_read: int
    bytes_read: int
    errors: list[str] = Field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0


def rotating_subset(parts: int, part: int | None = None, run: int | None = None, now: datetime | None = None) -> str:
    """The ``n/m`` spec of a rotating verification: the given part, or the run counter's, or the day's."""
    if part is None:
        counter = run if run is not None else (now or datetime.now()).toordinal()
        part = counter % parts + 1
    return f"{min(part, parts)}/{parts}"


def verify_step(event: VerifyStepInput) -> VerifyStepOutput:
    """Structure check plus read-data of a subset of the packs."""
    subset = event.share or rotating_subset(event.parts, event.part, event.run)
    report = check_vault(Vault.open(event.vault), read_data_subset=subset)
    return VerifyStepOutput(
        ok=report.ok,
        subset=subset,
        recovery_points=report.recovery_points,
        packs_read=report.packs_read,
        bytes_read=report.bytes_read,
        errors=report.errors[:MAX_LISTED],
        error_count=len(report.errors),
        warning_count=len(report.warnings),
    )


class DrillStepInput(BaseModel):
    vault: str
    scratch: str = Field(description="s3://bucket/prefix (or a directory) the drill may write under and clean")
    recovery_point: str | None = None
    cleanup: bool = True


class DrillStepOutput(BaseModel):
    ok: bool
    recovery_point: str
    scratch: str
    objects: int
    bytes: int
    verified: int
    mismatches: list[str] = Field(default_factory=list)
    cleaned_up: bool
    seconds: float


def drill_step(event: DrillStepInput) -> DrillStepOutput:
    """Restore a (sampled) recovery point into scratch space, compare it with its manifest, clean up."""
    report = restore_drill(Vault.open(event.vault), event.scratch, event.recovery_point, event.cleanup)
    return DrillStepOutput(
        ok=report.ok,
        recovery_point=report.recovery_point,
        scratch=report.scratch,
        objects=report.objects,
        bytes=report.bytes,
        verified=report.verified,
        mismatches=report.mismatches[:MAX_LISTED],
        cleaned_up=report.cleaned_up,
        seconds=report.seconds,
    )
