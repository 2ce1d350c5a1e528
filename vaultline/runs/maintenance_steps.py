"""The Maintenance state machine's single steps (prune in one process, compact) and the backup's Retention step; the
staged stages' steps are in :mod:`vaultline.runs.forget_steps`, :mod:`vaultline.runs.prune_steps`,
:mod:`vaultline.runs.lock_steps`, :mod:`vaultline.runs.verify_steps` and :mod:`vaultline.runs.drill_steps`.

Every step is ``(Vault, model) -> model``, like the backup and restore steps; the models are in
:mod:`vaultline.runs.maintenance_models`. A Maintenance step receives the whole execution state: the input
(:class:`MaintenanceInput`, built from the plans by :func:`vaultline.runs.requests.maintenance_policies`) plus the
results of the steps before it under ``results``, which it ignores. Each returns a small result (lists capped at
``MAX_LISTED``, counts complete) that the state machine stores at ``$.results.<step>`` and, at the end, sends as the
detail of the ``Vaultline Maintenance Succeeded`` event. Errors propagate by type: ``VaultLocked`` is retryable (a
backup is running), ``IntegrityError`` means the vault is damaged.

Example::

    result = prune(Vault.open("s3://backups/vault"), MaintenanceInput(repack_threshold=0.3))
    if result.held: ...
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel

from vaultline.errors import UsageError
from vaultline.operations.compact import compact_index
from vaultline.operations.forget_run import ForgetRunReport, forget_staged
from vaultline.operations.prune import PruneOptions
from vaultline.operations.prune import prune as prune_vault
from vaultline.operations.retention import RetentionPolicy, keep_policy
from vaultline.repository.layout import MANIFEST_PREFIX
from vaultline.repository.vault import Vault
from vaultline.runs.maintenance_models import (
    MAX_LISTED,
    CompactResult,
    MaintenanceInput,
    PruneResult,
    RetentionEvent,
    RetentionResult,
)
from vaultline.runs.models import filled_from

Result = TypeVar("Result", bound=BaseModel)

_UNITS = re.compile(r"(\d+)([ymwdh])")


def retention_policy(rules: dict[str, Any]) -> RetentionPolicy | None:
    """A plan's retention rules (``vaultline.plans.KeepRules`` as a dict) as the engine's policy; None if empty.

    Plans allow weeks in ``keep_within`` (``2w``); the engine's durations count days, so weeks become days.
    """
    given = {name: value for name, value in rules.items() if value != ""}
    within = given.get("keep_within")
    if isinstance(within, str) and "w" in within:
        units = {unit: int(number) for number, unit in _UNITS.findall(within)}
        units["d"] = units.get("d", 0) + 7 * units.pop("w", 0)
        given["keep_within"] = "".join(f"{units[u]}{u}" for u in "ymdh" if units.get(u))
    policy = keep_policy(given)
    return None if policy.empty() else policy


def _capped(model: type[Result], report: BaseModel, **fields: Any) -> Result:
    """A step's result from an operation's report: the fields they share, lists cut to ``MAX_LISTED``."""
    lists = {
        name: value[:MAX_LISTED]
        for name in model.model_fields
        if isinstance(value := getattr(report, name, None), list)
    }
    return filled_from(model, report, **lists, **fields)


def _forget_source(vault: Vault, rules: dict[str, Any], source: str) -> ForgetRunReport | None:
    """Apply a plan's keep rules to one source's recovery points by the forget steps in this process, staging in
    a temporary directory (the step writes no staging in the vault); None when the plan keeps everything."""
    policy = retention_policy(rules)
    return None if policy is None else forget_staged(vault, [(source, policy)], scratch=True)


# -- prune ------------------------------------------------------------------------------------------------------


def prune(vault: Vault, event: MaintenanceInput) -> PruneResult:
    """Delete unreferenced data and repack mostly-empty packs (raises VaultLocked while a backup runs)."""
    report = prune_vault(vault, PruneOptions(repack_threshold=event.repack_threshold))
    deleted = report.packs_deleted + report.unindexed_packs_deleted
    return _capped(PruneResult, report, packs_deleted=deleted, held_count=len(report.held))


# -- compact ----------------------------------------------------------------------------------------------------


def compact(vault: Vault, event: MaintenanceInput) -> CompactResult:
    """Consolidate the index into a new sharded generation (docs/vault-format.md, 9.5), as ``vaultline index
    compact`` does, so that the next backup's workers load its filter and the recent index objects rather than the
    whole index; writes nothing when the current generation consolidates every index object already.

    Takes the vault's shared lock (raises ``VaultLocked`` while a prune holds the exclusive one). Memory: the pack
    table and the filter, the rows sorted in pieces spilled to /tmp (``sharded_index.compact``): /tmp's 34 bytes a
    row is this step's ceiling.
    """
    return filled_from(CompactResult, compact_index(vault))


# -- the backup's Retention step --------------------------------------------------------------------------------

# Headers the Retention step reads at most (about 20 s of GETs on S3); past it the maintenance applies the rules.
RETENTION_STEP_MAX_POINTS = 20_000


def apply_retention(vault: Vault, event: RetentionEvent) -> RetentionResult:
    """After a commit: forget the committed source's recovery points that the plan's keep rules do not keep.

    A source's recovery points are found by reading every manifest header of the vault (the source is in the
    header, not the key), one GET each, 32 in flight. Past ``RETENTION_STEP_MAX_POINTS`` the step leaves the rules
    to the daily maintenance, whose forget reads the headers across a Distributed Map (``deferred``): one backup's
    Retention step stays within seconds however many recovery points the vault holds, at the cost of a day's delay.
    """
    source = str(event.committed.get("source") or "")
    if not source:
        raise UsageError("the committed recovery point names no source")
    if retention_policy(event.retention) is None:
        return RetentionResult(source=source, applied=False)
    points = sum(1 for _ in vault.storage.list(MANIFEST_PREFIX))  # one LIST per 1,000, nothing held
    if points > RETENTION_STEP_MAX_POINTS:
        return RetentionResult(source=source, applied=False, deferred=True, recovery_points=points)
    report = _forget_source(vault, event.retention, source)
    if report is None:
        return RetentionResult(source=source, applied=False)
    removed = report.removed[:MAX_LISTED]
    return RetentionResult(source=source, applied=True, removed=removed, kept=report.kept, held_count=report.held_count)
