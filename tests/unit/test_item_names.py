"""Work item names: six digits, in item order, and a run too large for them is refused, not mis-merged."""

from __future__ import annotations

import pytest

from vaultline.errors import VaultError
from vaultline.runs.protocol import MAX_ITEMS, item_name


def test_names_list_in_item_order_up_to_the_last_one() -> None:
    numbers = [0, 1, 9, 10, 99_999, 100_000, MAX_ITEMS - 1]
    names = [item_name(n) for n in numbers]
    assert names == sorted(names) and names[-1] == "999999"


@pytest.mark.parametrize("number", [MAX_ITEMS, -1])
def test_a_work_item_past_the_names_is_refused(number: int) -> None:
    with pytest.raises(VaultError, match="at most 1,000,000 work items"):
        item_name(number)
