"""Lambda handler: After a commit, forget the source's recovery points the plan's keep rules do not keep."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from observability import lambda_handler, metrics

from vaultline.repository.vault import Vault
from vaultline.runs import maintenance_steps


def step(event: dict[str, Any]) -> Any:
    """After a commit, forget the source's recovery points the plan's keep rules do not keep."""
    result = maintenance_steps.apply_retention(
        Vault.open(maintenance_steps.vault_url_from_environment()),
        maintenance_steps.RetentionEvent.model_validate(event),
    )
    metrics.add_metric(name="RecoveryPointsForgotten", unit=MetricUnit.Count, value=len(result.removed))
    return result


handler = lambda_handler(step)
