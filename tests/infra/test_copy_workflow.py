"""The Copy state machine: Prepare, a Distributed Map over the staged batches, Commit, Abort on a failure after
Prepare; started after each backup of a plan with copy_to and on its schedule; its functions reach exactly the
plans' copy targets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infra.conftest import Synth, actions_of, resolve, resources_of, statements, synthesize
from tests.infra.test_maintenance import _function_ref

COPY_PLANS = """\
version: 1
plans:
  - name: photos
    sources: [{type: s3, bucket: photo-originals}]
    schedule: {expression: "rate(1 day)"}
    copy_to: {vault: "s3://dr-vault", role_arn: "arn:aws:iam::210987654321:role/dr-copy", region: us-west-2}
  - name: docs
    sources: [{type: s3, bucket: company-docs}, {type: s3, bucket: more-docs}]
    schedule: {expression: "rate(6 hours)"}
    copy_to:
      vault: s3://copies-bucket/docs
      keep: {keep_daily: 14}
      schedule: {expression: "cron(0 5 * * ? *)"}
"""
TO_ABORT = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CopyAbort"}]
FUNCTIONS = ("CopyPrepare", "CopyItem", "CopyCommit", "CopyAbort")


@pytest.fixture(scope="module")
def copy_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """A stack whose plans copy: one through another account's role, one into a bucket of this account."""
    plans = tmp_path_factory.mktemp("plans") / "plans.yaml"
    plans.write_text(COPY_PLANS)
    return synthesize({"plansFile": str(plans), "objectLockRetentionDays": 0}, nag=True)


@pytest.fixture(scope="module")
def states(copy_synth: Synth) -> dict[str, Any]:
    _, machine = copy_synth.only("AWS::StepFunctions::StateMachine", "CopyStateMachine")
    return dict(json.loads(resolve(machine["Properties"]["DefinitionString"]))["States"])


def test_the_copy_stack_passes_cdk_nag(copy_synth: Synth) -> None:
    assert copy_synth.synth_error is None, copy_synth.synth_error


def test_copy_runs_prepare_the_map_and_commit_then_announces(copy_synth: Synth, states: dict[str, Any]) -> None:
    assert states["CopyPrepare"]["Resource"] == _function_ref(copy_synth, "CopyPrepare")
    assert states["CopyPrepare"]["ResultPath"] == "$.copying"
    assert states["CopySkipped"]["Choices"] == [
        {"Variable": "$.copying.skipped", "BooleanEquals": True, "Next": "CopyCommit"}
    ]
    assert states["CopySkipped"]["Default"] == "CopyItems"
    items = states["CopyItems"]
    assert items["ItemReader"]["Parameters"]["Key.$"] == "$.copying.work_list_key"
    assert items["MaxConcurrencyPath"] == "$.copying.worker_concurrency"
    assert items["ToleratedFailureCount"] == 0
    assert items["ItemSelector"] == {
        "run_id.$": "$.copying.run_id",
        "item.$": "$$.Map.Item.Value",
        "target.$": "$.target",
    }
    processor = items["ItemProcessor"]
    assert processor["StartAt"] == "CopyItem"
    assert processor["States"]["CopyItem"]["Resource"] == _function_ref(copy_synth, "CopyItem")
    assert items["Next"] == "CopyCommit"
    assert states["CopyCommit"]["Next"] == "CopySucceeded"
    assert states["CopySucceeded"]["Parameters"]["Entries"][0]["DetailType"] == "Vaultline Copy Succeeded"
    assert states["CopySucceeded"]["Parameters"]["Entries"][0]["Detail.$"] == "$.committed"


def test_a_failure_after_prepare_unlocks_the_target_through_abort(copy_synth: Synth, states: dict[str, Any]) -> None:
    for name in ("CopyItems", "CopyCommit"):
        assert states[name]["Catch"] == TO_ABORT, name
    # A failed Prepare undoes itself: straight to the failure event.
    assert states["CopyPrepare"]["Catch"][0]["Next"] == "CopyFailed"
    assert ["VaultLocked"] in [r["ErrorEquals"] for r in states["CopyPrepare"]["Retry"]]
    abort = states["CopyAbort"]
    assert abort["Resource"] == _function_ref(copy_synth, "CopyAbort")
    assert abort["Next"] == "CopyFailed" and abort["Catch"][0]["Next"] == "CopyFailed"
    assert states["CopyFailed"]["Next"] == "Failed" and states["Failed"]["Type"] == "Fail"


def test_each_backup_of_a_plan_with_copy_to_starts_a_copy_of_its_recovery_point(copy_synth: Synth) -> None:
    rules = {
        k: v
        for k, v in copy_synth.resources("AWS::Events::Rule").items()
        if v["Properties"].get("EventPattern", {}).get("detail-type") == ["Vaultline Backup Succeeded"]
    }
    assert len(rules) == 2
    by_plan = {rule["Properties"]["EventPattern"]["detail"]["plan"][0]: rule for rule in rules.values()}
    target = by_plan["photos"]["Properties"]["Targets"][0]
    assert target["InputTransformer"]["InputPathsMap"] == {"recovery_point": "$.detail.recovery_point"}
    sent = json.loads(target["InputTransformer"]["InputTemplate"].replace("<recovery_point>", "RP"))
    assert sent == {
        "target": {
            "vault": "s3://dr-vault",
            "role_arn": "arn:aws:iam::210987654321:role/dr-copy",
            "region": "us-west-2",
        },
        "plan": "photos",
        "keep": {},
        "recovery_point": "RP",
    }


def test_copy_to_schedule_copies_each_source_s_newest_recovery_point(copy_synth: Synth) -> None:
    schedules = {
        v["Properties"]["Name"]: v["Properties"]
        for v in copy_synth.resources("AWS::Scheduler::Schedule").values()
        if v["Properties"]["Name"].startswith("vaultline-copy-")
    }
    assert sorted(schedules) == ["vaultline-copy-docs-1", "vaultline-copy-docs-2"]
    first = schedules["vaultline-copy-docs-1"]
    assert first["ScheduleExpression"] == "cron(0 5 * * ? *)"
    assert json.loads(first["Target"]["Input"]) == {
        "keep": {"keep_daily": 14},
        "plan": "docs",
        "source": "s3://company-docs",
        "target": {"vault": "s3://copies-bucket/docs"},
    }


def _copy_statements(synth: Synth, function: str) -> list[dict[str, Any]]:
    return statements(synth, f"Functions{function}ServiceRole")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_copy_functions_may_assume_only_the_named_roles(copy_synth: Synth, function: str) -> None:
    assumes = [s for s in _copy_statements(copy_synth, function) if "sts:AssumeRole" in actions_of(s)]
    assert [resources_of(s) for s in assumes] == [["arn:aws:iam::210987654321:role/dr-copy"]]
    others = [s for s in statements(copy_synth, "Functions") if "sts:AssumeRole" in actions_of(s)]
    assert all(s in assumes or "dr-copy" not in str(s) for s in others)


@pytest.mark.parametrize(
    ("function", "writes", "deletes"),
    [
        ("CopyPrepare", ["locks/"], ["locks/"]),
        ("CopyItem", ["data/", "index/", "locks/"], []),
        ("CopyCommit", ["data/", "index/", "recovery-points/"], ["locks/", "recovery-points/"]),
        ("CopyAbort", [], ["locks/"]),
    ],
)
def test_a_target_without_a_role_is_granted_by_its_url_exactly(
    copy_synth: Synth, function: str, writes: list[str], deletes: list[str]
) -> None:
    target = "arn:REF_AWS__Partition:s3:::copies-bucket"
    found = {
        s["Sid"]: (sorted(actions_of(s)), resources_of(s))
        for s in _copy_statements(copy_synth, function)
        if "CopyTarget" in s.get("Sid", "") and "Roles" not in s["Sid"]
    }
    expected: dict[str, Any] = {
        "CopyTargetListCopiesBucket": (["s3:ListBucket"], [target]),
        "CopyTargetReadCopiesBucket": (["s3:GetObject"], [f"{target}/docs/*"]),
        # Every write into the target asks its Object Lock settings: the versions of that one key.
        "CopyTargetLockSettingsCopiesBucket": (["s3:ListBucketVersions"], [target]),
        "CopyTargetLockSettingsReadCopiesBucket": (["s3:GetObjectVersion"], [f"{target}/docs/object-lock"]),
    }
    if writes:
        expected["CopyTargetWriteCopiesBucket"] = (
            ["s3:AbortMultipartUpload", "s3:PutObject"],
            [f"{target}/docs/{p}*" for p in writes],
        )
    if deletes:
        expected["CopyTargetDeleteCopiesBucket"] = (["s3:DeleteObject"], [f"{target}/docs/{p}*" for p in deletes])
    if "recovery-points/" in deletes:
        expected["CopyTargetLockReadCopiesBucket"] = (
            ["s3:GetObjectLegalHold", "s3:GetObjectRetention"],
            [f"{target}/docs/recovery-points/*"],
        )
    assert found == expected
    listing = next(s for s in _copy_statements(copy_synth, function) if s.get("Sid") == "CopyTargetListCopiesBucket")
    assert "Condition" not in listing  # a HeadObject of a missing key must be a 404, not a 403


@pytest.mark.parametrize("function", FUNCTIONS)
def test_copy_functions_write_the_source_vault_only_under_staging(copy_synth: Synth, function: str) -> None:
    (write,) = [s for s in _copy_statements(copy_synth, function) if s.get("Sid") == "VaultWrite"]
    assert [r.rsplit("/", 1)[-1] for r in resources_of(write)] == ["*"]
    assert all(r.endswith("/staging/*") for r in resources_of(write))
