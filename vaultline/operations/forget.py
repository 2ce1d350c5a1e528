"""Forget: remove the recovery points that the keep rules do not keep (by deleting their manifests).

The data of a forgotten recovery point stays until a prune finds it unreferenced. A manifest under S3 Object Lock
retention is not deleted: it is reported as held, with its date, and a later forget removes it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from vaultline.operations.prune import HeldObject
from vaultline.operations.retention import Decision, PointInTime, RetentionPolicy, apply_policy
from vaultline.repository.layout import manifest_key
from vaultline.repository.manifest import iter_recovery_points
from vaultline.repository.vault import Vault


class ForgetReport(BaseModel):
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
    now = now or datetime.now(UTC)
    points = [
        PointInTime(id=rp.id, source=rp.source, time=rp.time, tags=rp.tags)
        for rp in iter_recovery_points(vault)
        if sources is None or rp.source in sources
    ]
    report = ForgetReport(dry_run=dry_run, decisions=apply_policy(points, policy))
    for decision in report.decisions:
        if decision.keep:
            report.kept.append(decision.id)
            continue
        key = manifest_key(decision.id)
        retention = vault.storage.retention(key)
        if retention is not None and retention.holds(now):
            report.held.append(
                HeldObject(
                    key=key,
                    mode=retention.mode,
                    retain_until=retention.retain_until,
                    legal_hold=retention.legal_hold,
                )
            )
            continue
        if not dry_run:
            vault.storage.delete(key)
        report.removed.append(decision.id)
    return report
