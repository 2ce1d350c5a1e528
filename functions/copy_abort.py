"""Lambda handler: Release the target's lock of a failed copy and delete its staging."""

from copy_handler import copy_handler

from vaultline.runs import copy_steps
from vaultline.runs.copy_models import CopyAbortEvent

handler = copy_handler(copy_steps.abort_event, CopyAbortEvent)
