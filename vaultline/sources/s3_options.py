"""How a backup reads an S3 source, as a plan or the CLI spells it: what to do with archived objects and how often
to re-read the tags of unchanged ones.

Apart from the plans module that offers them in a plans file: a backup's options need neither the plans' schedule
and retention models nor the DynamoDB models a plan's table source carries.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

ArchivedObjects = Literal["skip", "fail"]
"""What a backup does with an object that must be restored from an archive tier before it can be read."""
TagsRefresh = Literal["always", "never"] | Annotated[int, Field(ge=1)]
"""How often a backup re-reads the tags of objects it does not read again: every backup, every N-th, or never."""
