"""The executions' inputs, built as the models their first steps validate, by every sender: the schedules and the
stack's ``Plans`` output (infra), and the CLI's ``plan run`` and remote ``restore``.

What a sender sets is what is sent (the models are dumped with ``exclude_unset``): optional fields such as a
source's ``role_arn`` or ``archived_objects`` appear only when a plan gives them, so the common case stays exactly
the documented contract (docs/state-machines.md), and an input read back from a stack dumps as it was deployed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from vaultline.model import VaultlineModel
from vaultline.plans import DynamoDBSourcePlan, Plan, PlansFile, S3SourcePlan
from vaultline.runs.copy_models import CopyRequest, CopyTarget
from vaultline.runs.maintenance_models import DrillOptions, MaintenanceInput, SourcePolicy, VerifyOptions
from vaultline.runs.models import BackupRequest, RestoreRequest, SourceSpec
from vaultline.runs.table_models import TableBackupRequest, TableRestoreRequest, TableSourceSpec
from vaultline.sources.dynamodb.model import BackupOptions

# The read options a plan gives a table source (the rest of BackupOptions is CLI-only tuning).
PLANNED_READ_OPTIONS = frozenset({"mode", "consistent_read", "read_rate", "read_share"})
# The S3 options sent only when a plan sets them otherwise than their default.
PLANNED_S3_OPTIONS = frozenset({"archived_objects", "tags_refresh"})


class _KeepRules(VaultlineModel):
    # The plan's keep rules, which the backup's Retention step applies after a successful commit
    # (vaultline.runs.maintenance_models.RetentionEvent.retention); {} keeps everything.
    retention: dict[str, Any] = Field(default_factory=dict)


class PlannedBackup(BackupRequest, _KeepRules):
    """The backup state machine's input for an S3 source of a plan."""


class PlannedTableBackup(TableBackupRequest, _KeepRules):
    """The backup state machine's input for a DynamoDB source of a plan (``source.type`` is what it branches on)."""


def execution_input(request: BaseModel) -> dict[str, Any]:
    """The JSON an execution is started with: the fields the sender set."""
    return request.model_dump(mode="json", exclude_unset=True)


def planned_backup(plan: Plan, source: S3SourcePlan | DynamoDBSourcePlan) -> PlannedBackup | PlannedTableBackup:
    """The backup input for one source of a plan (what its schedule sends)."""
    common = {
        "plan": plan.name,
        "compression_level": plan.compression_level,
        "worker_concurrency": plan.worker_concurrency,
        "tags": dict(plan.tags),
        "retention": plan.retention.rules(),
    }
    if isinstance(source, DynamoDBSourcePlan):
        # The table's region and role travel in its dynamodb:// URL, as the CLI's do.
        read = BackupOptions.model_validate(source.model_dump(include=set(PLANNED_READ_OPTIONS), exclude_none=True))
        return PlannedTableBackup(source=TableSourceSpec(type="dynamodb", url=source.url, options=read), **common)
    spec = SourceSpec.model_validate(
        {
            "type": "s3",
            "url": source.url,
            **source.model_dump(include={"include", "exclude", "role_arn", "inventory"}, exclude_none=True),
        }
    )
    options = plan.model_dump(include=set(PLANNED_S3_OPTIONS), exclude_defaults=True)
    return PlannedBackup(source=spec, **common, **options)


def plan_input(plan: Plan, source: S3SourcePlan | DynamoDBSourcePlan) -> dict[str, Any]:
    """The backup state machine's execution input for one source of a plan, as JSON."""
    return execution_input(planned_backup(plan, source))


def plan_inputs(plans: PlansFile) -> dict[str, list[dict[str, Any]]]:
    """Plan name -> one execution input per source: the stack's ``Plans`` output, what ``vaultline plan run`` starts."""
    return {plan.name: [plan_input(plan, source) for source in plan.sources] for plan in plans.plans}


def deployed_backup(payload: dict[str, Any]) -> PlannedBackup | PlannedTableBackup:
    """A backup input read back from a stack's ``Plans`` output, validated as the state machine will."""
    source = payload.get("source")
    table = isinstance(source, dict) and source.get("type") == "dynamodb"
    return (PlannedTableBackup if table else PlannedBackup).model_validate(payload)


def maintenance_policies(plans: PlansFile) -> list[SourcePolicy]:
    """Every plan source with its plan's keep rules. A source of several plans appears once per plan."""
    return [
        SourcePolicy(source=source.url, plan=plan.name, rules=plan.retention.rules())
        for plan in plans.plans
        for source in plan.sources
    ]


def maintenance_input(plans: PlansFile, *, drill: bool, scratch: str, verify_parts: int) -> dict[str, Any]:
    """The Maintenance state machine's input as its daily schedule sends it: forget by every plan's keep rules,
    prune, verify one part of ``verify_parts`` a day, and a restore drill into ``scratch`` when ``drill``."""
    request = MaintenanceInput(
        policies=maintenance_policies(plans),
        prune=True,
        verify=VerifyOptions(parts=verify_parts),
        drill=DrillOptions(enabled=drill, scratch=scratch),
    )
    return execution_input(request)


def copy_input(plan: Plan, *, source: str | None = None, recovery_point: Any = None) -> dict[str, Any]:
    """The Copy state machine's input for a plan with ``copy_to``: its target and keep rules, and either the
    ``recovery_point`` a backup committed (after a backup; an EventBridge input path may stand in for it) or the
    ``source`` whose newest recovery point to copy (on ``copy_to.schedule``). ValueError if the plan has no copy_to."""
    if plan.copy_to is None:
        raise ValueError(f"plan {plan.name!r} has no copy_to")
    given = plan.copy_to.model_dump(include={"vault", "role_arn", "region"}, exclude_none=True)
    request = CopyRequest(target=CopyTarget(**given), plan=plan.name, keep=plan.copy_to.keep.rules())
    sent = execution_input(request)
    if source is not None:
        sent["source"] = source
    if recovery_point is not None:
        sent["recovery_point"] = recovery_point
    return sent


def restore_input(
    recovery_point: str,
    target: str,
    *,
    include: list[str],
    overwrite: str | None,
    write_rate: float | None,
    worker_concurrency: int,
) -> dict[str, Any]:
    """The restore state machine's input; it branches on the target (``dynamodb://`` takes the table path, which
    restores a whole table, at ``write_rate`` when given)."""
    given: dict[str, Any] = {
        "recovery_point": recovery_point,
        "target": target,
        "worker_concurrency": worker_concurrency,
    }
    if target.startswith("dynamodb://"):
        rate = {"write_rate": write_rate} if write_rate else {}
        return execution_input(TableRestoreRequest.model_validate(given | rate))
    return execution_input(
        RestoreRequest.model_validate(given | {"include": include, "overwrite": overwrite or "never"})
    )
