"""Lambda handler: Start a prune: take the vault's exclusive lock (VaultLocked while a backup runs), stage the work."""

from maintenance_handler import maintenance_handler

from vaultline.runs import prune_steps
from vaultline.runs.prune_models import PruneStarted


def record(result: PruneStarted) -> None:
    """Start publishes nothing: Finish reports what the prune did."""


handler = maintenance_handler(prune_steps.start, record)
