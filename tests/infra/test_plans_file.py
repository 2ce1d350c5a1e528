"""An invalid plans file stops synth with one line that names the file, the plan and the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra import constants as c
from infra.app import build_app
from vaultline.plans import PlansFileError

BAD_PLANS = """\
plans:
  - name: photos
    sources: [{type: s3, bucket: photo-originals}]
    schedule: {expression: "cron(0 3 * * *)"}
"""


@pytest.fixture
def bad_plans(tmp_path: Path) -> Path:
    path = tmp_path / "plans.yaml"
    path.write_text(BAD_PLANS)
    return path


def test_build_app_rejects_an_invalid_plans_file_naming_file_plan_and_field(bad_plans: Path) -> None:
    with pytest.raises(PlansFileError) as raised:
        build_app({"plansFile": str(bad_plans)}, nag=False)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"{bad_plans}: plan 'photos': schedule.expression: ")


def test_cdk_app_exits_with_one_line_for_an_invalid_plans_file(bad_plans: Path) -> None:
    # The CDK CLI hands context to the app through CDK_CONTEXT_JSON; do the same.
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"plansFile": str(bad_plans)})}
    result = subprocess.run(
        [sys.executable, str(c.ROOT / "app.py")], capture_output=True, text=True, env=env, cwd=c.ROOT, check=False
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {bad_plans}: plan 'photos': schedule.expression: 'cron(0 3 * * *)' needs six fields: "
        "minutes hours day-of-month month day-of-week year"
    ]


def test_a_missing_plans_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PlansFileError, match=r"nowhere\.yaml: cannot read the plans file"):
        build_app({"plansFile": str(tmp_path / "nowhere.yaml")}, nag=False)


def test_plans_file_path_is_resolved_from_the_project_root_and_named_as_written() -> None:
    with pytest.raises(PlansFileError, match=r"^no-such-plans\.yaml: cannot read"):
        build_app({"plansFile": "no-such-plans.yaml"}, nag=False)
