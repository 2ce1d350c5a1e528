"""Lambda handler: Lock the copy target and stage the batches of the recovery point to copy."""

from copy_handler import copy_handler

from vaultline.runs import copy_steps
from vaultline.runs.copy_models import CopyRequest

handler = copy_handler(copy_steps.prepare_request, CopyRequest)
