"""Typed events and results of the copy steps (`vaultline.runs.copy_steps`): one model per contract, used by the
steps and by whatever invokes them."""

from __future__ import annotations

from pydantic import Field

from vaultline.repository.manifest import ObjectEntry
from vaultline.runs.models import StepModel
from vaultline.runs.protocol import RunLock


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


class CopyItemEvent(StepModel):
    run_id: str
    item: CopyWorkItem


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


class CopyCommitResult(StepModel):
    recovery_point: str
    copied: bool
    entries: int = 0
    chunks_copied: int = 0
    bytes_transferred: int = 0
