"""An inventory report's rows come in no promised order: they leave sorted by key, through spilled runs when there
are more than one run holds."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from vaultline.sources.s3_inventory import Row, sorted_rows

_rows = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=10),
        st.integers(0, 2**50),
        st.none() | st.just('"e"'),
        st.none() | st.text(max_size=5),
        st.just("2026-01-02T03:04:05.000Z"),
        st.none() | st.sampled_from(["STANDARD", "GLACIER"]),
    ),
    unique_by=lambda row: row[0],
    max_size=60,
)


@settings(max_examples=50, deadline=None)
@given(_rows, st.integers(1, 25))
def test_rows_leave_in_key_order_whatever_the_run_size(rows: list[Row], run_rows: int) -> None:
    assert list(sorted_rows(iter(rows), run_rows)) == sorted(rows, key=lambda row: row[0])


def test_the_spilled_runs_are_removed_once_the_rows_are_read(tmp_path: Path) -> None:
    rows: list[Row] = [(f"k{n:03d}", n, None, None, "2026-01-02T03:04:05.000Z", None) for n in reversed(range(50))]
    stream = sorted_rows(iter(rows), 10, spill_dir=str(tmp_path))
    first = next(stream)
    assert first[0] == "k000" and len(list(tmp_path.glob("*/run-*.zst"))) == 5
    assert len(list(stream)) == 49
    assert list(tmp_path.iterdir()) == []
