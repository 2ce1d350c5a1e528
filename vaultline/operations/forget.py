"""Forget in one process, for one source at a time: the backup's Retention step (up to
``RETENTION_STEP_MAX_POINTS`` headers) and a copy's keep rules on its target. ``vaultline forget`` and the
Maintenance state machine run the staged steps of :mod:`vaultline.operations.forget_run` instead, whose memory is
one partition's points, not the vault's.

Forget removes the recovery points that the keep rules do not keep (by deleting their manifests).

The data of a forgotten recovery point stays until a prune finds it unreferenced. A manifest under S3 Object Lock
retention is not deleted: it is reported as held, with its date, and a later forget removes it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime

from pydantic import Field

from vaultline.model import VaultlineModel
from vaultline.operations.prune import DELETE_BATCH, HeldObject, held_objects
from vaultline.operations.retention import Decision, PointInTime, RetentionPolicy, apply_policy
from vaultline.repository.layout import MANIFEST_PREFIX, manifest_key
from vaultline.repository.manifest import iter_recovery_points
from vaultline.repository.vault import Vault


class ForgetReport(VaultlineModel):
    """Every decision (newest first per source), what was removed, and what Object Lock holds."""

    dry_run: bool = False
    decisions: list[Decision] = Field(default_factory=list)
    kept: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    held: list[HeldObject] = Field(default_factory=list)


def forget(
    vault: Vault,
    policy: RetentionPolicy,
    dry_run: bool = False,
    now: datetime | None = None,
    sources: Collection[str] | None = None,
) -> ForgetReport:
    """Apply ``policy`` to every source's recovery points (or only those of ``sources``, when given: a plan's
    rules apply to its own sources); delete the manifests of those not kept."""
    if policy.empty():
        apply_policy([], policy)  # refuses an empty policy before anything is read
    chosen = None if sources is None else set(sources)
    reports = forget_by_source(
        vault, lambda source: policy if chosen is None or source in chosen else None, dry_run, now
    )
    merged = ForgetReport(dry_run=dry_run)
    for source in sorted(reports):
        report = reports[source]
        merged.decisions += report.decisions
        merged.kept += report.kept
        merged.removed += report.removed
        merged.held += report.held
    return merged


def forget_by_source(
    vault: Vault,
    policy_of: Callable[[str], RetentionPolicy | None],
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict[str, ForgetReport]:
    """Apply each source's policy (``policy_of(source)``; None leaves the source alone) to its recovery points,
    reading every manifest header once whatever the number of sources; delete the manifests not kept,
    ``DELETE_BATCH`` a request.

    Ceiling: the points of the sources with a policy are held (about 1 KiB each with their decisions: a million
    recovery points in about 1 GiB) and every header is read (32 at a time: about 250,000 an invocation).
    """
    now = now or datetime.now(UTC)
    # Only the few fields the rules read are kept of each header: a header names its entry blobs, which grow with
    # the object count, so holding every header would grow with the vault's history times its sources' sizes.
    groups: dict[str, list[PointInTime]] = {}
    policies: dict[str, RetentionPolicy] = {}
    for rp in iter_recovery_points(vault):
        if rp.source not in policies:
            policy = policy_of(rp.source)
            if policy is None:
                continue
            policies[rp.source] = policy
        groups.setdefault(rp.source, []).append(PointInTime(id=rp.id, source=rp.source, time=rp.time, tags=rp.tags))
    reports = {}
    for source in sorted(groups):
        report = ForgetReport(dry_run=dry_run, decisions=apply_policy(groups.pop(source), policies[source]))
        doomed = []
        for decision in report.decisions:
            if decision.keep:
                report.kept.append(decision.id)
            else:
                doomed.append(decision.id)
        for key, held in held_objects(vault, [manifest_key(rp_id) for rp_id in doomed], now):
            if held is not None:
                report.held.append(held)
            else:
                report.removed.append(key[len(MANIFEST_PREFIX) :])
        if not dry_run:
            for start in range(0, len(report.removed), DELETE_BATCH):
                vault.storage.delete_many([manifest_key(i) for i in report.removed[start : start + DELETE_BATCH]])
        reports[source] = report
    return reports
