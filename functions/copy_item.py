"""Lambda handler: Copy one staged batch's missing chunks into the target vault."""

from copy_handler import copy_handler

from vaultline.runs import copy_steps
from vaultline.runs.copy_models import CopyItemEvent

handler = copy_handler(copy_steps.item, CopyItemEvent)
