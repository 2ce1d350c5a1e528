"""Lambda handler: Plan a lock extension: fix its dates, stage the batches of recovery points and the partitions."""

from maintenance_handler import maintenance_handler

from vaultline.runs import lock_steps
from vaultline.runs.lock_models import LockPlanned


def record(result: LockPlanned) -> None:
    """The plan publishes nothing: the summary reports the run's figures."""


handler = maintenance_handler(lock_steps.plan, record)
