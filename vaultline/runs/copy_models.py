"""Typed events and results of the copy steps (`vaultline.runs.copy_steps`): one model per contract, used by the
steps and by whatever invokes them."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from vaultline.repository.manifest import ObjectEntry
from vaultline.runs.models import StepModel
from vaultline.runs.protocol import RunLock

# The map's MaxConcurrency: each item reads source packs and writes target packs, RANGES_IN_FLIGHT at a time.
COPY_CONCURRENCY = 10


class CopyTarget(StepModel):
    """The vault a Copy machine writes into (a plan's ``copy_to``): its URL, the role to assume to reach it (None:
    the functions' own credentials, which the stack grants on that bucket) and the region of its bucket and key."""

    vault: str
    role_arn: str | None = None
    region: str | None = None


class CopyRequest(StepModel):
    """The Copy state machine's input: copy ``recovery_point`` (after a backup), or the newest recovery point of
    ``source`` (on a schedule), into ``target``; then forget the target's recovery points of that source that the
    ``keep`` rules (a plan's ``copy_to.keep``, as a dict) do not keep."""

    target: CopyTarget
    plan: str | None = None
    recovery_point: str | None = None
    source: str | None = None
    keep: dict[str, Any] = Field(default_factory=dict)


class CopyPrepareEvent(StepModel):
    """Copy one recovery point of the run's vault (the source) into the target vault the caller opened."""

    recovery_point: str


class CopyRun(RunLock):
    """The run document, staged in the source vault: the source is only read otherwise, and the map's work list
    must be readable by the state machine that runs in the source's account. ``lock_id`` stays empty: the lock
    this run holds is the target's (``target_lock``)."""

    recovery_point: str
    target_url: str
    target_vault_id: str
    target_lock: str
    reference: str | None = None
    items: int = 0


class CopyWorkItem(StepModel):
    """One staged batch of entries (`vaultline.operations.copy.CopyBatch`): what a map item copies."""

    item: int = Field(ge=0)
    key: str


class CopyPlanned(StepModel):
    """What Prepare staged; ``skipped``: the target holds the recovery point already (nothing staged, no lock)."""

    run_id: str | None = None
    recovery_point: str
    skipped: bool = False
    vault_bucket: str | None = None
    work_list_key: str | None = None
    items: int = 0
    worker_concurrency: int = COPY_CONCURRENCY


class CopyItemEvent(StepModel):
    run_id: str
    item: CopyWorkItem
    target: CopyTarget | None = None


class CopyItemResult(StepModel):
    """A map item's summary (its entries go to staging, not into the payload)."""

    item: int
    chunks_copied: int = 0
    chunks_present: int = 0
    bytes_transferred: int = 0
    bytes_read: int = 0


class CopiedEntries(StepModel):
    """A map item's staged result: its batch's entries with the target's chunk ids."""

    entries: list[ObjectEntry] = Field(default_factory=list)
    chunks_copied: int = 0
    bytes_transferred: int = 0


class CopyCommitEvent(StepModel):
    copying: CopyPlanned
    # The target's keep rules for the copied recovery point's source ({}: keep everything).
    keep: dict[str, Any] = Field(default_factory=dict)


class CopyCommitResult(StepModel):
    """Commit's result, and so the detail of the Copy machine's success event."""

    recovery_point: str
    copied: bool
    target: str | None = None
    entries: int = 0
    chunks_copied: int = 0
    bytes_transferred: int = 0
    # What the target's keep rules forgot there (its own maintenance prunes the data).
    forgotten: list[str] = Field(default_factory=list)
    forgotten_count: int = 0


class CopyAbortEvent(StepModel):
    """The state as the Catch leaves it: what Prepare staged (absent when Prepare itself failed) and the error."""

    copying: CopyPlanned | None = None
    error: dict[str, Any] | None = None


class CopyAborted(StepModel):
    run_id: str | None = None
    cleaned: int = 0
