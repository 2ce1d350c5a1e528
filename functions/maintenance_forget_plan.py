"""Lambda handler: Plan a forget: fix its moment and each source's rounds of keep rules, stage the batches."""

from maintenance_handler import maintenance_handler

from vaultline.runs import forget_steps
from vaultline.runs.forget_models import ForgetPlanned


def record(result: ForgetPlanned) -> None:
    """The plan publishes nothing: the summary reports the run's figures."""


handler = maintenance_handler(forget_steps.plan, record)
