"""Lambda handler: Write the copy's manifest in the target (the commit point), then apply the target's keep rules."""

from copy_handler import copy_handler

from vaultline.runs import copy_steps
from vaultline.runs.copy_models import CopyCommitEvent

handler = copy_handler(copy_steps.commit, CopyCommitEvent)
