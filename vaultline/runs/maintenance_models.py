"""The models of the Maintenance state machine's steps and of the backup's Retention step: what the schedule sends
(:class:`MaintenanceInput`, built by :func:`vaultline.runs.requests.maintenance_input`), and what each step returns
(lists capped at :data:`MAX_LISTED`, counts complete). The state machine (infra/maintenance.py) reads the same
models: one contract for sender, receiver and the definition's paths.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from vaultline.model import VaultlineModel
from vaultline.operations.check import CheckCursor, Findings, PackSubset
from vaultline.operations.drill import DrillCursor
from vaultline.operations.forget_run import ForgetRunReport
from vaultline.operations.lock_extension import LockExtendOptions
from vaultline.operations.prune import DEFAULT_REPACK_THRESHOLD, HeldObject
from vaultline.repository.manifest import ObjectEntry
from vaultline.runs.models import StepModel

# Errors and warnings beyond this many are counted, not listed: a state-machine payload is limited to 256 KiB.
MAX_LISTED = 50


class SourcePolicy(StepModel):
    """One plan source and the plan's keep rules."""

    source: str
    plan: str | None = None
    rules: dict[str, Any] = Field(default_factory=dict)


class VerifyOptions(StepModel):
    """Which packs to read: ``subset`` (``"n/m"``, part n of m, or ``"10%"``); otherwise part ``run % parts + 1``
    of ``parts`` (``run`` defaults to the day number, so ``parts`` consecutive daily runs read every pack once)."""

    subset: PackSubset | None = None
    parts: int = Field(default=7, ge=1)
    run: int | None = Field(default=None, ge=0)
    worker_concurrency: int = Field(default=10, ge=1, le=1000, description="verify items run at once")

    def pack_subset(self) -> PackSubset:
        """The subset this run reads."""
        return self.subset or PackSubset.rotating(self.parts, self.run)


class VerifyRun(StepModel):
    """The run document of a verify (sealed in staging): what the plan found itself, and what the items need."""

    subset: str
    items: int
    packs: int = 0
    blobs: int = 0
    findings: Findings = Field(default_factory=Findings)
    missing_packs: list[str] = Field(default_factory=list, description="indexed packs missing from storage")
    # The run's shared vault lock (vaultline.runs.protocol.RunLock reads it to release it on Abort).
    lock_id: str | None = None


class VerifyWorkItem(StepModel):
    """One item of a verify's work list: a staged batch of packs to read or of recovery points to check."""

    item: int
    kind: Literal["packs", "recovery_points"]
    key: str


class VerifyPlanned(StepModel):
    """What the plan returns (the state machine keeps it at ``$.verifying``)."""

    run_id: str
    vault_bucket: str
    work_list_key: str
    items: int
    pack_items: int
    worker_concurrency: int


class VerifyItemEvent(StepModel):
    """A verify item's input: the map's item, and the cursor of the invocation before when the item loops."""

    run_id: str
    item: VerifyWorkItem
    cursor: CheckCursor | None = None


class VerifyItemResult(VaultlineModel):
    """What one invocation of a verify item returns: ``done`` (its findings are staged as its result), or the
    ``next`` event to invoke it with (same item, the cursor carrying what it found so far)."""

    item: int
    done: bool
    next: VerifyItemEvent | None = None
    packs_read: int = 0
    objects: int = 0
    error_count: int = 0


class VerifySummaryEvent(StepModel):
    """The state as the summary runs: the plan's result and the map's output (its ResultWriter files)."""

    verifying: VerifyPlanned
    verify_map: dict[str, Any] | None = None


class DrillOptions(StepModel):
    enabled: bool = False
    scratch: str | None = Field(default=None, description="s3://bucket/prefix the drill may write under and clean")
    recovery_point: str | None = None
    worker_concurrency: int = Field(default=10, ge=1, le=1000, description="drill items run at once")


class DrillRun(StepModel):
    """The run document of a drill (sealed in staging)."""

    recovery_point: str
    scratch: str = Field(description="this drill's own fresh prefix under the scratch base")
    items: int
    started: float = Field(description="when the plan started (seconds since the epoch)")


class DrillBatch(StepModel):
    """The entries one drill item restores and compares."""

    entries: list[ObjectEntry]


class DrillWorkItem(StepModel):
    item: int
    key: str


class DrillPlanned(StepModel):
    """What the drill's plan returns (the state machine keeps it at ``$.drilling``)."""

    run_id: str
    recovery_point: str
    scratch: str
    vault_bucket: str
    work_list_key: str
    items: int
    worker_concurrency: int


class DrillItemEvent(StepModel):
    run_id: str
    item: DrillWorkItem
    cursor: DrillCursor | None = None


class DrillItemResult(VaultlineModel):
    """One invocation of a drill item: ``done`` (its tally is staged as its result) or the ``next`` event."""

    item: int
    done: bool
    next: DrillItemEvent | None = None
    verified: int = 0
    mismatch_count: int = 0


class DrillSummaryEvent(StepModel):
    drilling: DrillPlanned
    drill_map: dict[str, Any] | None = None


class MaintenanceInput(StepModel):
    """The Maintenance state machine's input (what its schedule sends)."""

    policies: list[SourcePolicy] = Field(default_factory=list)
    prune: bool = True
    repack_threshold: float = Field(default=DEFAULT_REPACK_THRESHOLD, ge=0.0, le=1.0)
    verify: VerifyOptions = Field(default_factory=VerifyOptions)
    drill: DrillOptions = Field(default_factory=DrillOptions)
    lock: LockExtendOptions = Field(default_factory=LockExtendOptions)


# ForgetSummary's result is the engine's own report, as LockSummary's is.
ForgetResult = ForgetRunReport


class PruneResult(VaultlineModel):
    """What prune deleted and repacked (``$.results.prune``), and the objects Object Lock kept it from deleting."""

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
    held_until: datetime | None = None
    seconds: float = 0.0


class CompactResult(VaultlineModel):
    """The index generation compaction wrote (``$.results.compact``), or the current one when it was complete
    already (``up_to_date``: nothing written)."""

    generation: str | None = None
    up_to_date: bool = False
    index_objects: int = 0
    blobs: int = 0
    packs: int = 0
    shards: int = 0
    bytes_written: int = 0
    seconds: float = 0.0


class VerifyResult(VaultlineModel):
    """The structure check and the read of this run's subset of packs (``$.results.verify``); ``ok`` false fails
    the run and fires the integrity alarm."""

    ok: bool
    subset: str
    recovery_points: int
    objects: int = 0
    items: int = 0
    packs_read: int
    bytes_read: int
    errors: list[str] = Field(default_factory=list)
    error_count: int = 0
    warnings: list[str] = Field(default_factory=list)
    warning_count: int = 0


class DrillResult(VaultlineModel):
    """A restore drill (``$.results.drill``): which recovery point was restored into scratch space, how much of it
    matched its manifest, and whether the scratch space was cleaned."""

    ok: bool
    recovery_point: str
    scratch: str
    objects: int
    bytes: int
    verified: int
    mismatches: list[str] = Field(default_factory=list)
    mismatch_count: int = 0
    cleaned_up: bool
    seconds: float


class RetentionEvent(StepModel):
    """The backup state after Commit: the plan's rules (``retention``, from ``plan_input``) and what was committed."""

    plan: str | None = None
    retention: dict[str, Any] = Field(default_factory=dict)
    committed: dict[str, Any]


class RetentionResult(VaultlineModel):
    """The backup's Retention step: what it forgot of the committed source, or why it applied nothing (no rules,
    or ``deferred`` to the maintenance because the vault holds more recovery points than the step reads)."""

    source: str
    applied: bool
    deferred: bool = False
    recovery_points: int = Field(default=0, description="the vault's, counted when the step deferred")
    removed: list[str] = Field(default_factory=list)
    kept: int = 0
    held_count: int = 0
