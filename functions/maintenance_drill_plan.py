"""Lambda handler: Plan a restore drill: sample a recovery point, stage its entries in batches and the work list."""

from maintenance_handler import maintenance_handler

from vaultline.runs import drill_steps
from vaultline.runs.maintenance_models import DrillPlanned


def record(result: DrillPlanned) -> None:
    """The plan publishes nothing: the summary reports the drill's figures."""


handler = maintenance_handler(drill_steps.plan, record)
