"""The Object Lock settings model: version 2 bounds, what a change may not lower, and the settings in force."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from vaultline.errors import ObjectLockRefused
from vaultline.repository.object_lock import MAX_DAYS, ObjectLockSettings, check_change, effective

GOV30 = ObjectLockSettings.bounded("GOVERNANCE", 30, min_days=14, max_days=90)


def test_version_1_stays_readable_and_has_no_bounds() -> None:
    old = ObjectLockSettings.model_validate_json('{"version": 1, "mode": "COMPLIANCE", "days": 7}')
    assert (old.version, old.min_days, old.max_days) == (1, None, None)
    with pytest.raises(ValidationError, match="need version 2"):
        ObjectLockSettings.model_validate({"version": 1, "mode": "GOVERNANCE", "days": 7, "min_days": 1})


def test_version_2_keeps_days_within_its_bounds() -> None:
    assert ObjectLockSettings.bounded("GOVERNANCE", 30) == ObjectLockSettings(
        version=2, mode="GOVERNANCE", days=30, min_days=30, max_days=MAX_DAYS
    )
    with pytest.raises(ValidationError, match="outside"):
        ObjectLockSettings.bounded("GOVERNANCE", 10, min_days=14, max_days=90)
    with pytest.raises(ValidationError, match="needs min_days"):
        ObjectLockSettings.model_validate({"version": 2, "mode": "GOVERNANCE", "days": 7})


@pytest.mark.parametrize(
    ("new", "refusal"),
    [
        (None, "cannot be removed"),
        (ObjectLockSettings.bounded("GOVERNANCE", 13, min_days=13, max_days=90), "below min_days 14"),
        (ObjectLockSettings.bounded("GOVERNANCE", 91, min_days=14, max_days=91), "above max_days 90"),
        (ObjectLockSettings.bounded("GOVERNANCE", 30, min_days=13, max_days=90), "min_days cannot be lowered"),
        (ObjectLockSettings.bounded("GOVERNANCE", 30, min_days=14, max_days=91), "max_days cannot be raised"),
        (ObjectLockSettings(mode="GOVERNANCE", days=30), "min_days cannot be lowered"),
    ],
)
def test_a_change_that_lowers_the_bounds_is_refused(new: ObjectLockSettings | None, refusal: str) -> None:
    with pytest.raises(ObjectLockRefused, match=refusal):
        check_change(GOV30, new)


def test_compliance_is_never_lowered_to_governance() -> None:
    with pytest.raises(ObjectLockRefused, match="cannot be lowered to GOVERNANCE"):
        check_change(ObjectLockSettings(mode="COMPLIANCE", days=7), ObjectLockSettings(mode="GOVERNANCE", days=7))


def test_tightening_and_moving_days_within_the_bounds_are_allowed() -> None:
    check_change(GOV30, ObjectLockSettings.bounded("COMPLIANCE", 20, min_days=20, max_days=60))
    check_change(GOV30, ObjectLockSettings.bounded("GOVERNANCE", 14, min_days=14, max_days=90))
    check_change(ObjectLockSettings(mode="GOVERNANCE", days=3), None)  # version 1 governance: unbounded
    check_change(None, ObjectLockSettings(mode="GOVERNANCE", days=1))


def test_the_settings_in_force_keep_the_strictest_bounds_any_record_set() -> None:
    loose = ObjectLockSettings(mode="GOVERNANCE", days=1)  # a plain overwrite, as an attacker could write it
    assert effective([GOV30, loose]) == ObjectLockSettings.bounded("GOVERNANCE", 14, min_days=14, max_days=90)
    assert effective([GOV30, None]) == GOV30  # deleted now (a delete marker): the locked version still counts
    assert effective([loose, None]) is None  # version 1 only: deleting it removes it
    assert effective([]) is None


settings = st.builds(
    lambda mode, low, span, at: ObjectLockSettings.bounded(
        mode, low + at % (span + 1), min_days=low, max_days=low + span
    ),
    st.sampled_from(["GOVERNANCE", "COMPLIANCE"]),
    st.integers(1, 400),
    st.integers(0, 400),
    st.integers(0, 10_000),
)


@given(st.lists(settings, min_size=1, max_size=5), settings)
def test_no_record_added_to_the_history_loosens_what_is_in_force(
    history: list[ObjectLockSettings], added: ObjectLockSettings
) -> None:
    before, after = effective(history), effective([*history, added])
    assert before is not None and after is not None
    assert after.min_days is not None and before.min_days is not None and after.min_days >= before.min_days
    assert after.days >= before.min_days  # records that contradict each other resolve to the longer lock
    assert not (before.mode == "COMPLIANCE" and after.mode == "GOVERNANCE")


@given(settings)
def test_settings_round_trip_through_their_json(value: ObjectLockSettings) -> None:
    assert ObjectLockSettings.model_validate_json(value.model_dump_json(exclude_none=True)) == value
