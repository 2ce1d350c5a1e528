"""The state machines' JSONPaths are derived from the step models: a field that does not exist fails synthesis."""

from __future__ import annotations

import pytest

from infra.paths import PREPARED, fields_of, path, selector
from vaultline.runs.models import BackupRequest, BackupWorkerEvent, Prepared
from vaultline.runs.table_models import SegmentSummary


def test_a_path_names_the_field_where_the_state_keeps_the_model() -> None:
    assert path(Prepared, "work_list_key", at=PREPARED) == "$.prepared.work_list_key"
    assert path(BackupRequest, "source", "type") == "$.source.type"
    # An optional nested model (``next: SegmentWork | None``) is walked into like a required one.
    assert path(SegmentSummary, "next", "segment", at="$.part") == "$.part.next.segment"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (("work_list",), "Prepared has no field 'work_list'"),
        (("batches", "count"), "Prepared.batches has no field 'count'"),
    ],
)
def test_a_field_the_model_lacks_is_an_error_that_names_model_and_field(fields: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        path(Prepared, *fields)


def test_a_result_selector_keeps_the_fields_under_their_names() -> None:
    assert selector(Prepared, ("batches", "objects")) == {
        "batches": "$.Payload.batches",
        "objects": "$.Payload.objects",
    }
    with pytest.raises(ValueError, match="no field 'segments'"):
        selector(Prepared, ("segments",))


def test_parameters_must_build_the_event_the_next_step_reads() -> None:
    built = fields_of(BackupWorkerEvent, recovery_point="$.prepared.recovery_point", item="$$.Map.Item.Value")
    assert built == {"recovery_point": "$.prepared.recovery_point", "item": "$$.Map.Item.Value"}
    with pytest.raises(ValueError, match="BackupWorkerEvent has no field 'restore_id'"):
        fields_of(BackupWorkerEvent, restore_id="$.prepared.restore_id")
