"""Lambda handler: Plan a verify: stage batches of packs to read and of recovery points to check, and the work list."""

from maintenance_handler import maintenance_handler

from vaultline.runs import verify_steps
from vaultline.runs.maintenance_models import VerifyPlanned


def record(result: VerifyPlanned) -> None:
    """The plan publishes nothing: the summary reports the run's figures."""


handler = maintenance_handler(verify_steps.plan, record)
