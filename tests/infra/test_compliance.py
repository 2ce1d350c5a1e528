"""cdk-nag (AWS Solutions) and cfn-lint on the synthesized template."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.infra.conftest import Synth


def test_cdk_nag_aws_solutions_reports_no_unacknowledged_findings(synth: Synth) -> None:
    violations = [
        f"{v['ruleName']} ({v['severity']}) at {construct['constructPath']}"
        for plugin in (synth.validation_report or {}).get("pluginReports", [])
        for v in plugin["violations"]
        for construct in v["violatingConstructs"]
    ]
    assert violations == [], "\n".join(violations)
    assert synth.synth_error is None


def test_every_acknowledgment_carries_a_reason(synth: Synth) -> None:
    # Acknowledgments are recorded in the tree; our helper refuses short reasons, this checks none slipped past it.
    from infra.nag import MIN_REASON_LENGTH

    source = "\n".join(p.read_text() for p in (Path(__file__).parents[2] / "infra").glob("*.py"))
    assert "Acknowledgment(" not in source.replace("Acknowledgment(id=rule_id, reason=reason)", "")
    assert MIN_REASON_LENGTH >= 40


def test_cfn_lint_finds_nothing(synth: Synth) -> None:
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        # W3005 (redundant DependsOn) is how CDK orders a function after its role's policy; not ours to change.
        [str(cfn_lint), "--ignore-checks", "W3005", "--", str(synth.template_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
