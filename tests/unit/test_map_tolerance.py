"""When the embedded Distributed Map fails a run, as AWS does: past ToleratedFailureCount or Percentage."""

from __future__ import annotations

import pytest

from vaultline_dev.embedded.map_tolerance import exceeds


def test_a_map_that_tolerates_nothing_fails_at_the_first_failed_item() -> None:
    assert not exceeds(failed=0, total=10, count=0, percentage=0)
    assert exceeds(failed=1, total=10_000, count=0, percentage=0)


@pytest.mark.parametrize(("failed", "fails"), [(2, False), (3, True)])
def test_a_count_alone_tolerates_that_many_failed_items(failed: int, fails: bool) -> None:
    assert exceeds(failed=failed, total=100, count=2, percentage=0) is fails


@pytest.mark.parametrize(("failed", "fails"), [(10, False), (11, True)])
def test_a_percentage_alone_tolerates_that_share_of_the_items(failed: int, fails: bool) -> None:
    assert exceeds(failed=failed, total=100, count=0, percentage=10) is fails


def test_with_both_set_the_run_fails_when_either_is_exceeded() -> None:
    assert exceeds(failed=6, total=100, count=5, percentage=50)
    assert exceeds(failed=3, total=4, count=5, percentage=50)
    assert not exceeds(failed=2, total=4, count=5, percentage=50)
