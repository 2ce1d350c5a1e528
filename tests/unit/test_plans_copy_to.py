"""A plan's copy_to: the target vault URL, an optional role and region, the target's own keep rules and an
optional schedule; validated with one-line errors, and carried into the Copy machine's input."""

from __future__ import annotations

import pytest

from vaultline.plans import PlansFileError, parse_plans
from vaultline.runs.copy_models import CopyRequest
from vaultline.runs.requests import copy_input

PLAN = """
plans:
  - name: p
    sources: [{type: s3, bucket: some-bucket}]
    schedule: {expression: rate(1 day)}
    copy_to: COPY_TO
"""


def test_copy_to_reaches_the_copy_input_with_its_keep_rules_and_only_what_is_set() -> None:
    plan = parse_plans(
        PLAN.replace(
            "COPY_TO",
            '{vault: "s3://dr-vault/photos/", role_arn: "arn:aws:iam::123456789012:role/dr", region: us-west-2, '
            'keep: {keep_daily: 7}, schedule: {expression: "cron(0 4 * * ? *)"}}',
        )
    ).plans[0]
    assert plan.copy_to is not None
    assert (plan.copy_to.vault, plan.copy_to.bucket, plan.copy_to.prefix) == (
        "s3://dr-vault/photos",
        "dr-vault",
        "photos",
    )
    assert plan.copy_to.schedule is not None and plan.copy_to.schedule.expression == "cron(0 4 * * ? *)"
    sent = copy_input(plan, recovery_point="rp-1")
    assert sent == {
        "target": {
            "vault": "s3://dr-vault/photos",
            "role_arn": "arn:aws:iam::123456789012:role/dr",
            "region": "us-west-2",
        },
        "plan": "p",
        "keep": {"keep_daily": 7},
        "recovery_point": "rp-1",
    }
    assert CopyRequest.model_validate(sent).target.region == "us-west-2"
    bare = parse_plans(PLAN.replace("COPY_TO", "{vault: s3://dr-vault}")).plans[0]
    assert copy_input(bare, source="s3://some-bucket") == {
        "target": {"vault": "s3://dr-vault"},
        "plan": "p",
        "keep": {},
        "source": "s3://some-bucket",
    }


def test_a_plan_without_copy_to_has_no_copy_input() -> None:
    plan = parse_plans(PLAN.replace("    copy_to: COPY_TO\n", "")).plans[0]
    assert plan.copy_to is None
    with pytest.raises(ValueError, match="no copy_to"):
        copy_input(plan)


@pytest.mark.parametrize(
    ("copy_to", "message"),
    [
        ("{vault: dr-vault}", r"copy_to\.vault: 'dr-vault' is not a vault URL \(s3://<bucket>\[/<prefix>\]\)"),
        ("{vault: s3://Bad_Bucket}", r"copy_to\.vault: 's3://Bad_Bucket' is not a vault URL"),
        ("{vault: 's3://b-vault//x'}", r"copy_to\.vault: .* empty path segment"),
        ("{vault: s3://dr-vault, role_arn: admin}", r"copy_to\.role_arn: 'admin' is not an IAM role ARN"),
        ("{vault: s3://dr-vault, region: mars}", r"copy_to\.region: 'mars' is not an AWS region name"),
        ("{vault: s3://dr-vault, keep: {keep_daily: -1}}", r"copy_to\.keep\.keep_daily"),
        ("{vault: s3://dr-vault, schedule: {expression: daily}}", r"copy_to\.schedule\.expression"),
        ("{vault: s3://dr-vault, rolearn: x}", r"copy_to\.rolearn"),
    ],
)
def test_a_bad_copy_to_is_one_line_naming_the_plan_and_the_field(copy_to: str, message: str) -> None:
    with pytest.raises(PlansFileError, match=f"plan 'p': {message}") as raised:
        parse_plans(PLAN.replace("COPY_TO", copy_to))
    assert "\n" not in str(raised.value)
