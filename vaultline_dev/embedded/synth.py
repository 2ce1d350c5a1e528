"""Synthesize the CDK app in a subprocess and read the template, keeping CDK out of the engine's imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from vaultline.errors import VaultlineError


def synthesize(
    project_dir: str | Path,
    stack_name: str = "Vaultline",
    outdir: str | Path | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``app.py`` (as ``cdk synth`` would) and return the stack's template as a dict.

    ``context`` overrides cdk.json's context as ``cdk synth -c key=value`` does: through ``CDK_CONTEXT_JSON``, which
    the CDK app reads after the context it was constructed with.
    """
    project = Path(project_dir).resolve()
    out = Path(outdir or project / "cdk.out").resolve()
    env = {
        **os.environ,
        "CDK_OUTDIR": str(out),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION": "1",
        # This one takes the end-of-life majors to silence, by number, not a flag.
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "18,20,22",
    }
    if context:
        env["CDK_CONTEXT_JSON"] = json.dumps(context)
    result = subprocess.run(
        [sys.executable, "app.py"], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise VaultlineError(f"cdk synth failed:\n{result.stderr.strip() or result.stdout.strip()}")
    template_path = out / f"{stack_name}.template.json"
    if not template_path.exists():
        raise VaultlineError(f"cdk synth wrote no {template_path.name} in {out}")
    template: dict[str, Any] = json.loads(template_path.read_text())
    return template
