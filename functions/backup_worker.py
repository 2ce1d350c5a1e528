"""Lambda handler: Back up one batch of objects into packs."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics, settings

from vaultline.runs import backup_steps
from vaultline.runs.models import BackupWorkerEvent
from vaultline.runs.staging import vault_from_environment


def step(event: dict[str, Any]) -> Any:
    """Back up one batch of objects into packs."""
    result = backup_steps.work(vault_from_environment(settings), BackupWorkerEvent.model_validate(event))
    metrics.add_metric(name="BytesRead", unit=MetricUnit.Bytes, value=result.bytes_read)
    metrics.add_metric(name="BytesStored", unit=MetricUnit.Bytes, value=result.bytes_stored)
    return result


handler = lambda_handler(step)
